// Prod's monitoring under mocks: 30 days of metrics on the monitoring nodes, Loki in S3, GPU metrics.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { MOCK_SECRET_PREFIX } from "../../infra/plan/mocks.ts";
import { assertMonitoringDeployed } from "../support/observability.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await runPlan({
  stack: "prod",
  config: { "agent-stack:alertSlackWebhookUrl": "https://hooks.slack.test/T000/B000/XXXX" },
});

test("prod deploys the pinned monitoring releases, rules, dashboards and monitors at the guide's 30 days", () => {
  assertMonitoringDeployed(plan, { retentionDays: 30, storageGb: 100, loki: "s3", gpu: true });
});

test("monitoring runs on the monitoring nodes", () => {
  const spec = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-kube-prometheus-stack")).values.prometheus
    .prometheusSpec;
  assert.deepEqual(spec.nodeSelector, { role: "monitoring" });
});

test("exporter credentials and the Slack webhook reach Kubernetes only as secrets", () => {
  const text = JSON.stringify(plan.resources);
  assert.ok(!text.includes(MOCK_SECRET_PREFIX), "a generated password appears in plain text");
  assert.ok(!text.includes("hooks.slack.test"), "the Slack webhook appears in plain text");
  assert.equal(inputs(one(plan, "kubernetes:core/v1:Secret", "observability-postgres-exporter")).stringData, "[secret]");
});

test("the Postgres exporter logs in once its role exists: its Secret waits for the roles' Job, its release for the Secret", () => {
  const job = one(plan, "kubernetes:batch/v1:Job", "db-roles").urn;
  const secret = one(plan, "kubernetes:core/v1:Secret", "observability-postgres-exporter");
  assert.ok(secret.propertyDependencies?.stringData?.includes(job), "the login waits for the Job that makes the role");
  const release = one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-postgres-exporter");
  assert.ok(Object.values(release.propertyDependencies ?? {}).some((urns) => urns.includes(secret.urn)));
  // The engine waits for the Job as long as it may run: pulumi-kubernetes' default is 10 minutes (await/job.go).
  const roles = one(plan, "kubernetes:batch/v1:Job", "db-roles");
  const minutes = (t: string | undefined) => Number(/^(\d+)m$/.exec(t ?? "")?.[1] ?? 10);
  const deadline = inputs(roles).spec.activeDeadlineSeconds / 60;
  assert.ok(minutes(roles.options.customTimeouts?.create) > deadline && minutes(roles.options.customTimeouts?.update) > deadline);
});
