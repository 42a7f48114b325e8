// The stack's default path to a person, with no third-party account: one SNS topic with an e-mail
// subscription per configured address. AWS Budgets and Alertmanager (SNS receiver, SigV4 through its own
// IRSA role) publish to it, and EventBridge rules of AWS service events (failed AWS Backup jobs: backups.ts); Slack and
// PagerDuty stay optional extras on the Alertmanager side.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { sourceCondition } from "./iam.ts";

export interface NotificationsArgs {
  /** Topic name: `<project>-<stack>-notifications`. */
  prefix: string;
  accountId: pulumi.Input<string>;
  /** Each gets an e-mail subscription (AWS mails a confirmation link first). */
  emails: string[];
  /** EventBridge rules whose matches the topic sends on, by a short name (the target's). */
  eventAlerts: Record<string, EventAlert>;
}

/** An EventBridge rule on the default bus and the text its input transformer makes of each matched event. */
export interface EventAlert {
  rule: aws.cloudwatch.EventRule;
  message: aws.types.input.cloudwatch.EventTargetInputTransformer;
}

export class Notifications extends pulumi.ComponentResource {
  readonly topicArn: pulumi.Output<string>;
  /** Addresses subscribed, for the stack outputs. */
  readonly subscribers: string[];

  constructor(name: string, args: NotificationsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Notifications", name, {}, opts);
    const o = { parent: this };

    // Not encrypted with a KMS key: AWS Budgets cannot publish to a topic under the AWS-managed SNS key, and
    // alert texts carry no data beyond alert names and runbook links. TLS protects them in transit.
    const topic = new aws.sns.Topic(name, { name: `${args.prefix}-notifications` }, o);
    const alerts = Object.entries(args.eventAlerts);
    const policy = new aws.sns.TopicPolicy(
      name,
      {
        arn: topic.arn,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "BudgetsPublish",
              Effect: "Allow",
              Principal: { Service: "budgets.amazonaws.com" },
              Action: "SNS:Publish",
              Resource: topic.arn,
              // AWS Cost Management guide, "Cross-service confused deputy prevention": for Budgets, aws:SourceArn "must be
              // arn:aws:budgets::<account>:budget/*" (its page "Creating an Amazon SNS topic for budget notifications"
              // shows the wider arn:aws:budgets::<account>:*; every budget notification comes from a budget).
              Condition: sourceCondition({
                account: args.accountId,
                arn: pulumi.interpolate`arn:aws:budgets::${args.accountId}:budget/*`,
              }),
            },
            ...(alerts.length > 0
              ? [
                  {
                    Sid: "EventRulesPublish",
                    Effect: "Allow",
                    Principal: { Service: "events.amazonaws.com" },
                    Action: "SNS:Publish",
                    Resource: topic.arn,
                    // EventBridge guide, "Cross-service confused deputy prevention": for event bus rule targets,
                    // aws:SourceArn "must be the rule ARN" (which names the account).
                    Condition: { ArnEquals: { "aws:SourceArn": alerts.map(([, a]) => a.rule.arn) } },
                  },
                ]
              : []),
            {
              Sid: "AccountManages",
              Effect: "Allow",
              Principal: { AWS: pulumi.interpolate`arn:aws:iam::${args.accountId}:root` },
              Action: [
                "SNS:Publish",
                "SNS:Subscribe",
                "SNS:GetTopicAttributes",
                "SNS:SetTopicAttributes",
                "SNS:ListSubscriptionsByTopic",
              ],
              Resource: topic.arn,
            },
          ],
        }),
      },
      o,
    );
    for (const [key, alert] of alerts) {
      // After the policy: it is EventBridge's only right to publish.
      new aws.cloudwatch.EventTarget(
        `${name}-${key}`,
        { rule: alert.rule.name, arn: topic.arn, inputTransformer: alert.message },
        { ...o, dependsOn: [policy] },
      );
    }
    // Named by address, not by position. endpoint is ForceNew (terraform-provider-aws internal/service/sns/topic_subscription.go)
    // and SNS keeps one subscription per topic, protocol and endpoint (Subscribe answers the existing one's ARN): by
    // position, an address taken out of the middle of the list (or two swapped) replaced the subscriptions after it, each
    // new Subscribe handing back the subscription another resource held, whose delete (the list's last, or the swapped
    // one's) then unsubscribed it, while the state still showed it subscribed. Each alias is the name the subscription had
    // by its position, so a stack deployed before keeps its subscriptions: change notifyEmail in a later `pulumi up`, not
    // in the one that first runs this (an alias then follows the new list's order, not the deployed one's).
    for (const [i, endpoint] of args.emails.entries()) {
      new aws.sns.TopicSubscription(
        `${name}-email-${endpoint}`,
        { topic: topic.arn, protocol: "email", endpoint },
        { ...o, aliases: [{ name: `${name}-email-${i}` }] },
      );
    }

    this.topicArn = topic.arn;
    this.subscribers = args.emails;
    this.registerOutputs({ topicArn: this.topicArn });
  }

  /** IAM policy that lets a role publish to the topic and nothing else (Alertmanager's IRSA role). */
  publishPolicy(): pulumi.Output<string> {
    return pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "sns:Publish", Resource: this.topicArn }],
    });
  }
}
