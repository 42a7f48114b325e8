// Dev's monitoring under mocks: the whole stack on the one node, 7 days of metrics, Loki on a volume.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { assertMonitoringDeployed } from "../support/observability.ts";
import { ofType } from "../support/plan.ts";

const plan = await stackPlan("dev");

test("dev deploys the pinned monitoring releases, rules, dashboards and monitors at dev size", () => {
  assertMonitoringDeployed(plan, { retentionDays: 7, storageGb: 20, loki: "filesystem", gpu: false });
});

test("dev has no log bucket: Loki keeps its logs on its volume", () => {
  assert.equal(ofType(plan, "aws:s3/bucket:Bucket").filter((b) => b.name.includes("logs")).length, 0);
});
