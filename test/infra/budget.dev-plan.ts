// A budget override on dev, in a member account of an organization: the budget still notifies the stack's topic and
// the stack output says who is told; the cost allocation tag is left to the payer account.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, one, ofType } from "../support/plan.ts";

const plan = await runPlan({
  stack: "dev",
  config: {
    "agent-stack:overrides": JSON.stringify({ budget: { monthlyUsd: 400 } }),
    "agent-stack:activateCostTag": "false",
  },
});
const budget = inputs(one(plan, "aws:budgets/budget:Budget"));

test("overrides.budget.monthlyUsd replaces the tier's amount", () => {
  assert.equal(Number(budget.limitAmount), 400);
  assert.equal((plan.outputs.budget as any).monthlyUsd, 400);
});

test("the budget always notifies the stack's SNS topic, which mails dev's address; the output says so", () => {
  const topic = one(plan, "aws:sns/topic:Topic");
  assert.equal(budget.notifications.length, 2);
  for (const n of budget.notifications)
    assert.deepEqual(n.subscriberSnsTopicArns, [`arn:aws:mock:us-east-1:123456789012:Topic/${topic.name}`]);
  const summary = plan.outputs.budget as { notifies: string; alerts: string[] };
  assert.equal(summary.notifies, "the stack's SNS topic (dev-alerts@example.com)");
  assert.deepEqual(summary.alerts, ["80 % actual", "100 % forecasted"]);
});

test("activateCostTag false: no cost allocation tag activated here (a member account may not), the budget still on the tag", () => {
  assert.equal(ofType(plan, "aws:costexplorer/costAllocationTag:CostAllocationTag").length, 0);
  assert.deepEqual(budget.costFilters, [{ name: "TagKeyValue", values: ["user:stack$dev"] }]);
  assert.match((plan.outputs.budget as { scope: string }).scope, /activated by the payer account/);
});
