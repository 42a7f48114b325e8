// The pack over the real prod stack (tier medium) under mocks: no mandatory violation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { runPolicies } from "../../policy/offline.ts";

const plan = await stackPlan("prod");
const report = runPolicies(plan);
const describe = (level: string) =>
  report.violations.filter((v) => v.level === level).map((v) => `${v.policy} ${v.resource.split("::").pop()}: ${v.message}`);

test("prod has no mandatory policy violation", () => {
  assert.deepEqual(describe("mandatory"), []);
});

test("prod is checked as tier medium: the tier-relaxed policies apply to its database", () => {
  assert.equal(plan.tier, "medium");
  // The same database judged with dev's leniency removed from the config still passes: prod is compliant by itself.
  const strict = runPolicies(plan, {
    config: { "rds-multi-az": { relaxedTiers: [] }, "rds-deletion-protection": { relaxedTiers: [] } },
  });
  assert.deepEqual(
    strict.violations.filter((v) => v.policy.startsWith("rds-")),
    [],
  );
});

test("prod has no advisory either: its endpoint is private, its API HTTPS-only", () => {
  assert.deepEqual(describe("advisory"), []);
});
