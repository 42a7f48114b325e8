// The pack over the real dev stack (tier dev) under mocks: no mandatory violation, and dev's leniency is
// exactly the tier-relaxed policies.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { runPolicies } from "../../policy/offline.ts";

const plan = await stackPlan("dev");
const report = runPolicies(plan);

test("dev has no mandatory policy violation", () => {
  const mandatory = report.violations.filter((v) => v.level === "mandatory");
  assert.deepEqual(
    mandatory.map((v) => `${v.policy} ${v.resource.split("::").pop()}: ${v.message}`),
    [],
  );
});

test("dev passes the durability policies only because its tier is relaxed", () => {
  assert.equal(plan.tier, "dev");
  const asMedium = runPolicies(plan, {
    config: { "rds-multi-az": { tier: "medium" }, "rds-deletion-protection": { tier: "medium" } },
  });
  const policies = new Set(asMedium.violations.filter((v) => v.level === "mandatory").map((v) => v.policy));
  assert.ok(policies.has("rds-multi-az"), "dev's database is single-AZ");
  assert.ok(policies.has("rds-deletion-protection"), "dev's database is disposable");
});

test("dev's instance, database and cache types are within the dev allow-list", () => {
  assert.ok(
    plan.resources.some((r) => r.type === "aws:eks/nodeGroup:NodeGroup"),
    "the plan has node groups to check",
  );
  assert.deepEqual(
    report.violations.filter((v) => v.policy === "instance-types-allowed"),
    [],
  );
});
