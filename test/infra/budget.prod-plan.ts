// The prod stack's budget with both notification channels configured.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import type { PolicyReport } from "../../infra/plan/types.ts";
import { review } from "../../infra/review/review.ts";
import { runPolicies } from "../../policy/offline.ts";
import { TIERS } from "../../infra/tiers.ts";
import { inputs, one } from "../support/plan.ts";
import { stackPlan } from "../support/stack-plan.ts";

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

test("alerts at 80 % of actual and 100 % of forecast spend go to the extra topic, and to the address the stack's topic mails", () => {
  assert.deepEqual(
    budget.notifications.map((n: any) => [n.notificationType, n.comparisonOperator, n.threshold, n.thresholdType]),
    [
      ["ACTUAL", "GREATER_THAN", 80, "PERCENTAGE"],
      ["FORECASTED", "GREATER_THAN", 100, "PERCENTAGE"],
    ],
  );
  // Budgets API Reference, CreateBudget NotificationsWithSubscribers: "each notification can have one SNS subscriber and
  // up to 10 email subscribers"; the stack's topic and the extra one together were refused.
  for (const n of budget.notifications) {
    assert.deepEqual(n.subscriberSnsTopicArns, [TOPIC]);
    assert.deepEqual(n.subscriberEmailAddresses, [EMAIL], "the address the stack's topic would have mailed, once");
  }
  assert.equal(inputs(one(plan, "aws:sns/topicSubscription:TopicSubscription")).endpoint, EMAIL);
  assert.equal((plan.outputs.budget as any).notifies, `${TOPIC}, ${EMAIL}`);
});

test("without an extra topic the alerts go to the stack's topic alone, which mails the address", async () => {
  // The stack file's plan: its notifyEmail is EMAIL, and it names no other topic.
  const own = await stackPlan("prod");
  const topic = `arn:aws:mock:us-east-1:123456789012:Topic/${one(own, "aws:sns/topic:Topic").name}`;
  for (const n of inputs(one(own, "aws:budgets/budget:Budget")).notifications) {
    assert.deepEqual(n.subscriberSnsTopicArns, [topic]);
    assert.equal(n.subscriberEmailAddresses, undefined, "e-mail goes through the topic, not twice");
  }
  assert.equal((own.outputs.budget as any).notifies, `the stack's SNS topic (${EMAIL})`);
});

test("AWS Budgets may publish to the stack's topic only for this account's budgets", () => {
  // AWS Cost Management guide, "Cross-service confused deputy prevention": for Budgets, aws:SourceArn
  // "must be arn:aws:budgets::123456789012:budget/*".
  const policy = JSON.parse(inputs(one(plan, "aws:sns/topicPolicy:TopicPolicy")).policy);
  const budgets = policy.Statement.filter((s: any) => s.Principal.Service === "budgets.amazonaws.com");
  assert.deepEqual(
    budgets.map((s: any) => s.Condition),
    [
      {
        StringEquals: { "aws:SourceAccount": "123456789012" },
        ArnLike: { "aws:SourceArn": "arn:aws:budgets::123456789012:budget/*" },
      },
    ],
  );
});

test("under the engine the budget policy prices the stack as the plan does: its tier's usage, its off-peak schedules", async () => {
  // A budget between the plan's estimate ($5,464) and what the policy priced under the engine, where it sees the
  // resources but not the stack's config: $3,786 without the tier's usage assumptions, and with the GPU group's
  // off-peak schedules unlinked from it (the source of their Auto Scaling group names not read). It passed there.
  const config = { "agent-stack:overrides": JSON.stringify({ budget: { monthlyUsd: 5_000 } }) };
  const planned = await runPlan({ stack: "prod", config });
  const estimateIn = (policies: PolicyReport) => {
    const over = policies.violations.filter((v) => v.policy === "stack-within-budget");
    assert.equal(over.length, 1, over.map((v) => v.message).join("; "));
    return /estimated (\$[\d,]+)\/month exceeds the \$5,000 budget/.exec(over[0]!.message)![1]!;
  };
  const reviewed = review(planned);
  const offline = estimateIn(reviewed.policies!);
  assert.equal(offline, `$${Math.round(reviewed.cost!.monthlyUsd).toLocaleString("en-US")}`);
  // A later preview: every value known, and no estimate or resolved config handed to the policy.
  assert.equal(estimateIn(runPolicies({ ...planned, config: null })), offline);
  // The first one: still over the budget; only its Kubernetes volumes go unpriced (the review lists it as unjudged).
  const first = review(await runPlan({ stack: "prod", config, firstPreview: true }));
  assert.ok(Number(estimateIn(first.policies!).replace(/[$,]/g, "")) > 5_000);
  assert.ok(first.policies!.blindOnFirstPreview!.some((b) => b.policy === "stack-within-budget"));
});
