// Every action and condition key of the prod stack's IAM policy documents exists (test/support/iam-reference.ts):
// those of its plan, and with agent-stack:ci and flowLogs set, those of the CI roles and the flow logs' role too.
import assert from "node:assert/strict";
import { test } from "node:test";
import { iamNamesOf } from "../support/iam-reference.ts";
import { stackPlan, WITH_CI_AND_FLOW_LOGS } from "../support/stack-plan.ts";

const plans = [await stackPlan("prod"), await stackPlan("prod", WITH_CI_AND_FLOW_LOGS)];

test("prod: every IAM action and condition key of every policy document is in the Service Authorization Reference", async (t) => {
  const names = await iamNamesOf(plans);
  t.diagnostic(`${names.documents} documents, ${names.actions.length} actions, ${names.conditionKeys.length} condition keys`);
  assert.ok(
    names.documents >= 28 && names.actions.length >= 250 && names.conditionKeys.length >= 19,
    "fewer than the stack has: is a policy document no longer found?",
  );
  assert.deepEqual(names.unknown, []);
});
