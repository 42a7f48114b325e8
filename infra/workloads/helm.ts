// Helm releases the way every chart of the stack is installed: pinned chart version from its upstream
// repository, atomic (a failed install or upgrade rolls back and cleans up after itself), a bounded history.
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

/**
 * Revisions Helm keeps per release, one Secret each holding the whole rendered release. pulumi-kubernetes keeps all of
 * them unless told (provider/pkg/provider/helm_release.go helmUpdate: MaxHistory 0, no limit, when maxHistory is
 * unset), so every `pulumi up` that changes a chart's values left one more in etcd for good; the helm CLI keeps 10
 * (pkg/cli/environment.go defaultMaxHistory). An atomic upgrade rolls back to the last deployed one, which stays.
 */
export const RELEASE_HISTORY = 10;

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
      maxHistory: RELEASE_HISTORY,
      timeout: args.timeoutSeconds,
    },
    opts,
  );
}
