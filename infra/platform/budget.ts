// Monthly cost budget per stack: alerts at 80 % of actual and 100 % of forecast spend (tiers.ts `budget`,
// overridable with `agent-stack:overrides {"budget": {"monthlyUsd": N}}`), sent to the stack's SNS topic, or to
// agent-stack:budgetSnsTopicArn and the stack's e-mail addresses.
// It counts costs tagged stack=<stack>: the tag is activated for cost allocation here, and it reaches the
// EC2 instances and volumes (launch templates), the ALB (controller default tags) and the EBS volumes of
// volume claims (EBS CSI extra tags) besides everything Pulumi creates (provider default tags).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface BudgetArgs {
  name: string;
  monthlyUsd: number;
  /** Only costs tagged `stack=<stack>` count. */
  stack: string;
  /** The stack's notifications topic (platform/notifications.ts) and who is subscribed to it. */
  topic: { arn: pulumi.Input<string>; subscribers: string[] };
  /** Another SNS topic to notify (agent-stack:budgetSnsTopicArn): in the stack's topic's place, its addresses mailed directly. */
  extraSnsTopicArn?: string;
  /** Activate the cost allocation tag here (agent-stack:activateCostTag); a member account's payer does it. */
  activateCostTag: boolean;
}

/** The tag the budget filters on. */
export const COST_TAG = "stack";

const BUDGET_ALERTS = [
  { thresholdPercent: 80, notificationType: "ACTUAL" },
  { thresholdPercent: 100, notificationType: "FORECASTED" },
] as const;

export class Budget extends pulumi.ComponentResource {
  /** What the budget watches and who hears about it, for the `budget` stack output. */
  readonly summary: { monthlyUsd: number; scope: string; alerts: string[]; notifies: string };

  constructor(name: string, args: BudgetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Budget", name, {}, opts);
    // AWS Budgets takes one SNS topic per notification ("Each notification can have one SNS subscriber and up to 10 email
    // subscribers": CreateBudget NotificationsWithSubscribers, Budgets API Reference); both topics were refused. With
    // another topic the budget notifies it, and the addresses the stack's topic mails directly instead.
    // At most MAX_BUDGET_EMAILS of them (config.ts refuses more).
    const people = args.topic.subscribers;
    const other = args.extraSnsTopicArn;

    // Account-wide: every stack in the account declares the same activation, and none may deactivate it for
    // the others on destroy. AWS only knows a tag key once tagged usage has reached billing (up to 24 h after
    // the first tagged resource): a first `pulumi up` in a fresh account may fail here; run it again a day later.
    // Only a management (payer) account may activate one: a member account leaves it to its payer.
    const tag = args.activateCostTag
      ? new aws.costexplorer.CostAllocationTag(
          `${name}-tag`,
          { tagKey: COST_TAG, status: "Active" },
          { parent: this, retainOnDelete: true },
        )
      : undefined;

    new aws.budgets.Budget(
      name,
      {
        name: args.name,
        budgetType: "COST",
        limitAmount: args.monthlyUsd.toFixed(2),
        limitUnit: "USD",
        timeUnit: "MONTHLY",
        costFilters: [{ name: "TagKeyValue", values: [`user:${COST_TAG}$${args.stack}`] }],
        notifications: BUDGET_ALERTS.map((a) => ({
          comparisonOperator: "GREATER_THAN",
          threshold: a.thresholdPercent,
          thresholdType: "PERCENTAGE",
          notificationType: a.notificationType,
          subscriberSnsTopicArns: [other ?? args.topic.arn],
          subscriberEmailAddresses: other && people.length > 0 ? people : undefined,
        })),
      },
      { parent: this, dependsOn: tag ? [tag] : [] },
    );

    // With another topic the budget reaches it whoever is subscribed to the stack's.
    if (!other && people.length === 0)
      pulumi.log.warn(
        `budget ${args.name}: the SNS topic has no e-mail subscriber; set agent-stack:notifyEmail to hear about it`,
        this,
      );
    this.summary = {
      monthlyUsd: args.monthlyUsd,
      scope: `costs tagged ${COST_TAG}=${args.stack} (cost allocation tag "${COST_TAG}" activated by ${args.activateCostTag ? "this stack" : "the payer account"})`,
      alerts: BUDGET_ALERTS.map((a) => `${a.thresholdPercent} % ${a.notificationType.toLowerCase()}`),
      notifies: other
        ? [other, ...people].join(", ")
        : `the stack's SNS topic (${people.length ? people.join(", ") : "no e-mail subscriber"})`,
    };
    this.registerOutputs({ summary: this.summary });
  }
}
