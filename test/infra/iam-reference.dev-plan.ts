// Every action and condition key of the dev stack's IAM policy documents exists (test/support/iam-reference.ts):
// those of its plan, and with agent-stack:ci and flowLogs set, those of the CI roles and the flow logs' role too.
import assert from "node:assert/strict";
import { test } from "node:test";
import { iamNamesOf } from "../support/iam-reference.ts";
import { stackPlan, WITH_CI_AND_FLOW_LOGS } from "../support/stack-plan.ts";

const plans = [await stackPlan("dev"), await stackPlan("dev", WITH_CI_AND_FLOW_LOGS)];

test("dev: every IAM action and condition key of every policy document is in the Service Authorization Reference", async (t) => {
  const names = await iamNamesOf(plans);
  t.diagnostic(`${names.documents} documents, ${names.actions.length} actions, ${names.conditionKeys.length} condition keys`);
  assert.ok(
    names.documents >= 27 && names.actions.length >= 250 && names.conditionKeys.length >= 19,
    "fewer than the stack has: is a policy document no longer found?",
  );
  assert.deepEqual(names.unknown, []);
});
