// A budget override and no notification channel: the budget still exists and the stack output says who is
// (not) told.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await runPlan({ stack: "dev", config: { "agent-stack:overrides": JSON.stringify({ budget: { monthlyUsd: 400 } }) } });
const budget = inputs(one(plan, "aws:budgets/budget:Budget"));

test("overrides.budget.monthlyUsd replaces the tier's amount", () => {
  assert.equal(Number(budget.limitAmount), 400);
  assert.equal((plan.outputs.budget as any).monthlyUsd, 400);
});

test("without notifyEmail or budgetSnsTopicArn the budget has no notification, and the output says how to add one", () => {
  assert.deepEqual(budget.notifications, []);
  const summary = plan.outputs.budget as { notifies: string; alerts: string[] };
  assert.match(summary.notifies, /^nobody: set agent-stack:notifyEmail or agent-stack:budgetSnsTopicArn/);
  assert.deepEqual(summary.alerts, ["80 % actual", "100 % forecasted"]);
});
