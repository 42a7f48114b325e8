// A budget override on dev: the budget still notifies the stack's topic and the stack output says who is told.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await runPlan({
  stack: "dev",
  config: { "agent-stack:overrides": JSON.stringify({ budget: { monthlyUsd: 400 } }) },
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
