// Publishes the plan's own cost estimate into Prometheus: the committed monitoring/cost/<stack>.json as a
// PrometheusRule of constant recording rules (monitoring/cost-estimate.ts), read by the cost-per-query rules.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { costEstimateRuleSpec, readCostEstimate } from "../../monitoring/cost-estimate.ts";

export interface CostMetricsArgs {
  namespace: pulumi.Input<string>;
  /** Labels the Prometheus Operator selects PrometheusRules by. */
  labels: Record<string, string>;
  stack: string;
}

export class CostMetrics extends pulumi.ComponentResource {
  constructor(name: string, args: CostMetricsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:CostMetrics", name, {}, opts);
    const estimate = readCostEstimate(args.stack);
    if (!estimate) {
      pulumi.log.warn(
        `no monitoring/cost/${args.stack}.json: cost per 1,000 queries has no estimate to divide; run \`npm run cost:metrics\``,
        this,
      );
      return;
    }
    new k8s.apiextensions.CustomResource(
      `${name}-estimate`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { name: "agent-stack-cost-estimate", namespace: args.namespace, labels: args.labels },
        spec: costEstimateRuleSpec(estimate),
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
