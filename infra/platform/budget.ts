// Monthly cost budget per stack: alerts at 80 % of actual and 100 % of forecast spend (tiers.ts `budget`,
// overridable with `agent-stack:overrides {"budget": {"monthlyUsd": N}}`).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface BudgetArgs {
  name: string;
  monthlyUsd: number;
  /** Only costs tagged `stack=<stack>` count (the provider's default tags put it on every resource). */
  stack: string;
  notifyEmail?: string;
  snsTopicArn?: string;
}

const BUDGET_ALERTS = [
  { thresholdPercent: 80, notificationType: "ACTUAL" },
  { thresholdPercent: 100, notificationType: "FORECASTED" },
] as const;

export class Budget extends pulumi.ComponentResource {
  /** What the budget watches and who hears about it, for the `budget` stack output. */
  readonly summary: { monthlyUsd: number; scope: string; alerts: string[]; notifies: string };

  constructor(name: string, args: BudgetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Budget", name, {}, opts);
    const emails = args.notifyEmail ? [args.notifyEmail] : [];
    const topics = args.snsTopicArn ? [args.snsTopicArn] : [];
    const subscribed = emails.length + topics.length > 0;

    new aws.budgets.Budget(name, {
      name: args.name,
      budgetType: "COST",
      limitAmount: args.monthlyUsd.toFixed(2),
      limitUnit: "USD",
      timeUnit: "MONTHLY",
      costFilters: [{ name: "TagKeyValue", values: [`user:stack$${args.stack}`] }],
      // AWS rejects a notification without a subscriber, so none are declared until one is configured.
      notifications: subscribed
        ? BUDGET_ALERTS.map((a) => ({
            comparisonOperator: "GREATER_THAN",
            threshold: a.thresholdPercent,
            thresholdType: "PERCENTAGE",
            notificationType: a.notificationType,
            subscriberEmailAddresses: emails,
            subscriberSnsTopicArns: topics,
          }))
        : [],
    }, { parent: this });

    const howToSubscribe = "set agent-stack:notifyEmail or agent-stack:budgetSnsTopicArn to receive the alerts";
    if (!subscribed) pulumi.log.warn(`budget ${args.name}: no alert is sent; ${howToSubscribe}`, this);
    this.summary = {
      monthlyUsd: args.monthlyUsd,
      // Cost allocation tags count only once activated in the Billing console (once per account).
      scope: `costs tagged stack=${args.stack} (activate the "stack" cost allocation tag once per account)`,
      alerts: BUDGET_ALERTS.map((a) => `${a.thresholdPercent} % ${a.notificationType.toLowerCase()}`),
      notifies: subscribed ? [...emails, ...topics].join(", ") : `nobody: ${howToSubscribe}`,
    };
    this.registerOutputs({ summary: this.summary });
  }
}
