// The AWS WAF web ACL in front of the API's ALB (the Ingress names it in alb.ingress.kubernetes.io/wafv2-acl-arn,
// checked in the controller's docs/guide/ingress/annotations.md at v2.14.0; the chart's enableWafv2 defaults to
// true and the controller's IAM policy already allows wafv2:AssociateWebACL). One rate-based rule: a client IP
// over its limit gets WAF's own 429 with a JSON {error, code} body, like the API's other 4xx, and its requests never
// reach a pod. Rate-based rule settings (AWS WAF developer guide, "Rate-based rule high-level settings"): limits
// of at least 10, evaluation windows of 60, 120, 300 or 600 s. Requests the ALB answers itself (health checks)
// are not inspected. A custom response's headers are sent as named (any name but content-type; only headers WAF
// inserts into requests get the x-amzn-waf- prefix): AWS WAF developer guide, "Custom responses for Block actions".
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { errorBody } from "../../app/src/errors.ts";
import { ANY_ORIGIN } from "../../app/src/origins.ts";

/** The window the per-IP limit counts over: the shortest WAF has, so a limit per minute means what it says. */
const EVALUATION_WINDOW_SECONDS = 60;
const RATE_LIMITED_BODY = "rate-limited";
/** How long WAF usually takes to stop limiting an address whose rate fell under the limit (rateLimitedHeaders). */
const RATE_DROP_NOTICED_SECONDS = 30;

/**
 * CloudWatch metric names (AWS/WAFV2 dimensions WebACL and Rule: the visibility configs' metric names). The web ACL's
 * carries the stack, so the Edge dashboard (monitoring/grafana/dashboards/edge.json) can tell two stacks of one
 * account and region apart; it queries the rule by its name, which is per web ACL already.
 */
export const FIREWALL_METRICS = { webAclPrefix: "agent-api", rateLimitRule: "per-ip-rate-limit" } as const;

export interface ApiFirewallArgs {
  /** Requests per minute one client IP may send (tier network.perIpRequestsPerMinute). */
  perIpRequestsPerMinute: number;
  /** Config `corsOrigins`, the API's CORS_ORIGINS: the pages that may read its answers, this 429 included. */
  corsOrigins: readonly string[];
}

/**
 * The 429's headers, as the API's own 429 has them. Retry-After: the window, so an address that waits it out has
 * nothing left counted against it, and the delay before WAF sees its rate fall ("usually below 30 seconds": AWS WAF
 * developer guide, Rate-based rule caveats). CORS: WAF answers before the API does, so without them a page of an
 * allowed origin saw a network error, not the 429. A custom response's headers are fixed: one origin (or `*`) is named;
 * with several, WAF cannot echo the request's Origin, and none is (README, "Security defaults"). The rule counts and
 * blocks preflights (OPTIONS) too, and a browser takes only a 2xx for one: a page reads this 429 only for a URL whose
 * preflight it still has cached (up to 2 hours, the app's PREFLIGHT_MAX_AGE_SECONDS).
 */
export function rateLimitedHeaders(corsOrigins: readonly string[]): Array<{ name: string; value: string }> {
  const headers = [{ name: "Retry-After", value: String(EVALUATION_WINDOW_SECONDS + RATE_DROP_NOTICED_SECONDS) }];
  if (corsOrigins.length !== 1) return headers;
  const origin = corsOrigins[0]!;
  headers.push({ name: "Access-Control-Allow-Origin", value: origin });
  headers.push({ name: "Access-Control-Expose-Headers", value: "Retry-After" });
  // As the app's answers, which differ by Origin: a cache must not give one to another origin.
  if (origin !== ANY_ORIGIN) headers.push({ name: "Vary", value: "Origin" });
  return headers;
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
          action: {
            block: {
              customResponse: {
                responseCode: 429,
                customResponseBodyKey: RATE_LIMITED_BODY,
                responseHeaders: rateLimitedHeaders(args.corsOrigins),
              },
            },
          },
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
