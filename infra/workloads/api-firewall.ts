// The AWS WAF web ACL in front of the API's ALB (the Ingress names it in alb.ingress.kubernetes.io/wafv2-acl-arn,
// checked in the controller's docs/guide/ingress/annotations.md at v2.14.0; the chart's enableWafv2 defaults to
// true and the controller's IAM policy already allows wafv2:AssociateWebACL). One rate-based rule: a client IP
// over its limit gets WAF's own 429 with a JSON {error, code} body, like the API's other 4xx, and its requests never
// reach a pod. Rate-based rule settings (AWS WAF developer guide, "Rate-based rule high-level settings"): limits
// of at least 10, evaluation windows of 60, 120, 300 or 600 s. Requests the ALB answers itself (health checks)
// are not inspected.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { errorBody } from "../../app/src/errors.ts";

/** The window the per-IP limit counts over: the shortest WAF has, so a limit per minute means what it says. */
const EVALUATION_WINDOW_SECONDS = 60;
const RATE_LIMITED_BODY = "rate-limited";

/**
 * CloudWatch metric names (AWS/WAFV2 dimensions WebACL and Rule: the visibility configs' metric names). The web ACL's
 * carries the stack, so the Edge dashboard (monitoring/grafana/dashboards/edge.json) can tell two stacks of one
 * account and region apart; it queries the rule by its name, which is per web ACL already.
 */
export const FIREWALL_METRICS = { webAclPrefix: "agent-api", rateLimitRule: "per-ip-rate-limit" } as const;

export interface ApiFirewallArgs {
  /** Requests per minute one client IP may send (tier network.perIpRequestsPerMinute). */
  perIpRequestsPerMinute: number;
}

export function apiWebAcl(name: string, args: ApiFirewallArgs, opts: pulumi.CustomResourceOptions): aws.wafv2.WebAcl {
  const metrics = (metricName: string) => ({ cloudwatchMetricsEnabled: true, metricName, sampledRequestsEnabled: true });
  return new aws.wafv2.WebAcl(
    name,
    {
      description: "Agent API: per-client-IP rate limit in front of the ALB",
      scope: "REGIONAL",
      defaultAction: { allow: {} },
      customResponseBodies: [
        {
          key: RATE_LIMITED_BODY,
          contentType: "APPLICATION_JSON",
          content: JSON.stringify(
            errorBody("rate_limited", `too many requests from this address: at most ${args.perIpRequestsPerMinute} per minute`),
          ),
        },
      ],
      rules: [
        {
          name: FIREWALL_METRICS.rateLimitRule,
          priority: 0,
          action: { block: { customResponse: { responseCode: 429, customResponseBodyKey: RATE_LIMITED_BODY } } },
          statement: {
            rateBasedStatement: {
              aggregateKeyType: "IP",
              limit: args.perIpRequestsPerMinute,
              evaluationWindowSec: EVALUATION_WINDOW_SECONDS,
            },
          },
          visibilityConfig: metrics(FIREWALL_METRICS.rateLimitRule),
        },
      ],
      visibilityConfig: metrics(`${FIREWALL_METRICS.webAclPrefix}-${pulumi.getStack()}`),
    },
    opts,
  );
}
