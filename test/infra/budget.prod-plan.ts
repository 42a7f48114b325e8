// The prod stack's budget with both notification channels configured.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { TIERS } from "../../infra/tiers.ts";
import { inputs, one } from "../support/plan.ts";

const EMAIL = "oncall@example.com";
const TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts";
const plan = await runPlan({
  stack: "prod",
  config: { "agent-stack:notifyEmail": EMAIL, "agent-stack:budgetSnsTopicArn": TOPIC },
});
const budget = inputs(one(plan, "aws:budgets/budget:Budget"));

test("a monthly USD cost budget of the tier's amount, for this stack's costs only", () => {
  assert.deepEqual([budget.budgetType, budget.timeUnit, budget.limitUnit], ["COST", "MONTHLY", "USD"]);
  assert.equal(Number(budget.limitAmount), TIERS.medium.budget.monthlyUsd);
  assert.equal(budget.name, "agent-stack-prod");
  assert.deepEqual(budget.costFilters, [{ name: "TagKeyValue", values: ["user:stack$prod"] }]);
  // Activated by the stack (activateCostTag's default), and kept for the account's other stacks on destroy.
  const tag = one(plan, "aws:costexplorer/costAllocationTag:CostAllocationTag");
  assert.deepEqual([inputs(tag).tagKey, inputs(tag).status], ["stack", "Active"]);
  assert.equal(tag.options.retainOnDelete, true);
});

test("alerts at 80 % of actual and 100 % of forecast spend go to the stack's topic (which mails the address) and the extra topic", () => {
  assert.deepEqual(
    budget.notifications.map((n: any) => [n.notificationType, n.comparisonOperator, n.threshold, n.thresholdType]),
    [
      ["ACTUAL", "GREATER_THAN", 80, "PERCENTAGE"],
      ["FORECASTED", "GREATER_THAN", 100, "PERCENTAGE"],
    ],
  );
  const own = `arn:aws:mock:us-east-1:123456789012:Topic/${one(plan, "aws:sns/topic:Topic").name}`;
  for (const n of budget.notifications) {
    assert.equal(n.subscriberEmailAddresses, undefined, "e-mail goes through the topic, not twice");
    assert.deepEqual(n.subscriberSnsTopicArns, [own, TOPIC]);
  }
  assert.equal(inputs(one(plan, "aws:sns/topicSubscription:TopicSubscription")).endpoint, EMAIL);
  assert.equal((plan.outputs.budget as any).notifies, `the stack's SNS topic (${EMAIL}), ${TOPIC}`);
});
