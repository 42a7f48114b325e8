// The API's HorizontalPodAutoscaler, per guide 000 "Scaling Strategies > Auto-Scaling Rules": replicas
// between the tier's min and max, CPU 70 %, memory 80 %, scale up 50 %/60 s after 60 s, scale down
// 10 %/60 s after 300 s. (The guide's requests-per-second metric needs a custom-metrics adapter; not used.)
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Tier } from "../tiers.ts";
import { API } from "./names.ts";
import { labelsFor } from "./pod.ts";

export const HPA_RULES = {
  cpuUtilization: 70,
  memoryUtilization: 80,
  scaleUp: { stabilizationWindowSeconds: 60, percent: 50, periodSeconds: 60 },
  scaleDown: { stabilizationWindowSeconds: 300, percent: 10, periodSeconds: 60 },
} as const;

export interface ApiAutoscalerArgs {
  namespace: pulumi.Input<string>;
  sizes: Pick<Tier["api"], "minReplicas" | "maxReplicas">;
  /** The Deployment it scales; named so the HPA is created after it. */
  deployment: k8s.apps.v1.Deployment;
  /** The tier scales down off-peak (offpeak.ts): its CronJobs own minReplicas once the HPA exists. */
  scaledOffPeak: boolean;
}

export class ApiAutoscaler extends pulumi.ComponentResource {
  constructor(name: string, args: ApiAutoscalerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ApiAutoscaler", name, {}, opts);
    const utilization = (resource: string, averageUtilization: number) => ({
      type: "Resource",
      resource: { name: resource, target: { type: "Utilization", averageUtilization } },
    });
    const rule = (r: { stabilizationWindowSeconds: number; percent: number; periodSeconds: number }) => ({
      stabilizationWindowSeconds: r.stabilizationWindowSeconds,
      policies: [{ type: "Percent", value: r.percent, periodSeconds: r.periodSeconds }],
    });

    new k8s.autoscaling.v2.HorizontalPodAutoscaler(
      API.name,
      {
        metadata: { name: API.name, namespace: args.namespace, labels: labelsFor(API.name) },
        spec: {
          scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: args.deployment.metadata.name },
          minReplicas: args.sizes.minReplicas,
          maxReplicas: args.sizes.maxReplicas,
          metrics: [utilization("cpu", HPA_RULES.cpuUtilization), utilization("memory", HPA_RULES.memoryUtilization)],
          behavior: { scaleUp: rule(HPA_RULES.scaleUp), scaleDown: rule(HPA_RULES.scaleDown) },
        },
      },
      // The off-peak CronJob lowers minReplicas at night; `pulumi up` must not undo it. A tier without the CronJobs
      // (dev) has Pulumi set it: ignored there too, a new minReplicas (an override, a new tier) never reached the HPA.
      { parent: this, ignoreChanges: args.scaledOffPeak ? ["spec.minReplicas"] : [] },
    );
    this.registerOutputs({});
  }
}
