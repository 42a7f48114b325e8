// Helm releases the way every chart of the stack is installed: pinned chart version from its upstream
// repository, atomic (a failed install or upgrade rolls back and cleans up after itself).
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

export interface Chart {
  chart: string;
  version: string;
  repo: string;
}

export interface ReleaseArgs {
  /** Helm's release name (what `helm list` shows). */
  name: string;
  namespace: pulumi.Input<string>;
  chart: Chart;
  values: pulumi.Inputs;
  timeoutSeconds: number;
}

export function helmRelease(resourceName: string, args: ReleaseArgs, opts: pulumi.CustomResourceOptions): k8s.helm.v3.Release {
  return new k8s.helm.v3.Release(
    resourceName,
    {
      name: args.name,
      chart: args.chart.chart,
      version: args.chart.version,
      repositoryOpts: { repo: args.chart.repo },
      namespace: args.namespace,
      values: args.values,
      atomic: true,
      cleanupOnFail: true,
      timeout: args.timeoutSeconds,
    },
    opts,
  );
}
