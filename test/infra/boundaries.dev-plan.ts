// The dev stack's roles carry the workload boundary too (infra/platform/boundaries.ts): a dev deploy role may share
// its account with prod.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ofType, rolesOutsideWorkloadBoundary } from "../support/plan.ts";
import { stackPlan } from "../support/stack-plan.ts";

const plan = await stackPlan("dev");

test("dev: every role carries the workload boundary, the database scheduler's too, named through the policy's ARN output", () => {
  assert.ok(ofType(plan, "aws:iam/role:Role").some((r) => r.name === "schedules-rds-scheduler"));
  assert.deepEqual(rolesOutsideWorkloadBoundary(plan), []);
});
