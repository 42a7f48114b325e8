// Cluster add-ons the workloads need, as pinned Helm releases in kube-system: the AWS Load Balancer
// Controller (turns the API's Ingress into an ALB; IRSA role with the upstream IAM policy), metrics-server
// (CPU/memory metrics for the API's HPA) and, in tiers with GPUs, NVIDIA's device plugin.
import { readFileSync } from "node:fs";
import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../config.ts";
import { EVICTABLE, NODE_ROLE_LABEL } from "../platform/cluster.ts";
import { irsaRole, type OidcProvider } from "../platform/iam.ts";
import { CHARTS, CLUSTER_AUTOSCALER, parseImageRef } from "../versions.ts";
import { type Chart, helmRelease } from "./helm.ts";
import { GPU_TOLERATION, placement, resources } from "./pod.ts";

/** docs/install/iam_policy.json of kubernetes-sigs/aws-load-balancer-controller v2.14. */
const ALB_CONTROLLER_POLICY = JSON.stringify(
  JSON.parse(readFileSync(new URL("./alb-controller-iam-policy.json", import.meta.url), "utf8")),
);
const ALB_SERVICE_ACCOUNT = "aws-load-balancer-controller";
const AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler";
const SYSTEM_NAMESPACE = "kube-system";

export interface ClusterAddonsArgs {
  clusterName: pulumi.Input<string>;
  /** The cluster's minor version: the autoscaler's image must match it. */
  kubernetesVersion: string;
  region: string;
  vpcId: pulumi.Input<string>;
  oidc: OidcProvider;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
  /** Installs the NVIDIA device plugin on the gpu nodes. */
  gpu: boolean;
  /** Dev: one controller replica instead of two. */
  disposable: boolean;
  /** Tags for every AWS resource the ALB controller creates (the budget filters on `stack`). */
  resourceTags: Record<string, string>;
}

export class ClusterAddons extends pulumi.ComponentResource {
  /** The ALB controller; its webhooks must be up before Ingresses and agent pods are created. */
  readonly albController: k8s.helm.v3.Release;

  constructor(name: string, args: ClusterAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ClusterAddons", name, {}, opts);
    const o = { parent: this };

    const alb = roleWithPolicy(`${name}-alb-controller`, args, ALB_SERVICE_ACCOUNT, ALB_CONTROLLER_POLICY, o);
    this.albController = release(
      `${name}-alb-controller`,
      CHARTS.albController,
      {
        clusterName: args.clusterName,
        region: args.region,
        vpcId: args.vpcId,
        replicaCount: args.disposable ? 1 : 2,
        // The chart renders no budget unless given one (1.14.0 templates/pdb.yaml, default `{}`, and only above one
        // replica): a node drain or a scale-in of several nodes could evict both replicas at once, and the pod
        // webhook, failurePolicy Ignore, then gave the API's new pods no readiness gate.
        podDisruptionBudget: { maxUnavailable: 1 },
        serviceAccount: {
          create: true,
          name: ALB_SERVICE_ACCOUNT,
          annotations: { "eks.amazonaws.com/role-arn": alb.role.arn },
        },
        // No mutating webhook on Services (chart 1.14.0 webhook.yaml `mservice`): a `type: LoadBalancer` Service is left
        // to the in-tree controller unless it opts in (annotation or loadBalancerClass); this stack creates none.
        enableServiceMutatorWebhook: false,
        // --default-tags on every ALB, target group and security group (chart templates/deployment.yaml).
        defaultTags: args.resourceTags,
        ...placement("general"),
        resources: resources({ cpuRequest: "100m", memoryRequest: "128Mi", cpuLimit: "500m", memoryLimit: "256Mi" }),
      },
      { ...o, dependsOn: alb.policies },
    );

    this.clusterAutoscaler(name, args);

    release(
      `${name}-metrics-server`,
      CHARTS.metricsServer,
      {
        ...placement("general"),
        // Its `tmp` emptyDir (chart 3.12.2 templates/deployment.yaml) would keep its node from every scale-down.
        podAnnotations: EVICTABLE,
        resources: resources({ cpuRequest: "100m", memoryRequest: "200Mi", cpuLimit: "500m", memoryLimit: "400Mi" }),
      },
      o,
    );

    if (args.gpu) {
      release(
        `${name}-nvidia-device-plugin`,
        CHARTS.nvidiaDevicePlugin,
        {
          // Replaces the chart's default affinity, which wants node-feature-discovery labels EKS nodes lack.
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: NODE_ROLE_LABEL, operator: "In", values: ["gpu"] }] }],
              },
            },
          },
          tolerations: [GPU_TOLERATION, { key: "CriticalAddonsOnly", operator: "Exists" }],
          resources: resources({ cpuRequest: "50m", memoryRequest: "64Mi", cpuLimit: "200m", memoryLimit: "128Mi" }),
        },
        o,
      );
    }
    this.registerOutputs({});
  }

  /**
   * Grows a node group (up to its max) when pods are pending and shrinks idle nodes. Managed node groups tag
   * their ASGs for auto-discovery; the role may only resize ASGs of this cluster. Schedules move min/desired
   * (and max, when a work-hours tier is off), and the autoscaler stays inside whatever they set.
   */
  private clusterAutoscaler(name: string, args: ClusterAddonsArgs) {
    const o = { parent: this };
    if (args.kubernetesVersion !== CLUSTER_AUTOSCALER.kubernetesMinor) {
      throw new ConfigError(
        `agent-stack:kubernetesVersion ${args.kubernetesVersion}: the pinned cluster autoscaler (${CLUSTER_AUTOSCALER.image}) serves ` +
          `Kubernetes ${CLUSTER_AUTOSCALER.kubernetesMinor} only. Set agent-stack:kubernetesVersion to ` +
          `${CLUSTER_AUTOSCALER.kubernetesMinor}, or bump CLUSTER_AUTOSCALER and CHARTS.clusterAutoscaler together in infra/versions.ts.`,
      );
    }
    const autoscaler = roleWithPolicy(
      `${name}-cluster-autoscaler`,
      args,
      AUTOSCALER_SERVICE_ACCOUNT,
      pulumi.output(args.clusterName).apply((cluster) =>
        JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Action: ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
              Resource: "*",
              Condition: { StringEquals: { [`aws:ResourceTag/k8s.io/cluster-autoscaler/${cluster}`]: "owned" } },
            },
            {
              Effect: "Allow",
              Action: [
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations",
                "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions",
                "ec2:GetInstanceTypesFromInstanceRequirements",
                "eks:DescribeNodegroup",
              ],
              Resource: "*",
            },
          ],
        }),
      ),
      o,
    );
    const image = parseImageRef(CLUSTER_AUTOSCALER.image);
    release(
      `${name}-cluster-autoscaler`,
      CHARTS.clusterAutoscaler,
      {
        cloudProvider: "aws",
        awsRegion: args.region,
        autoDiscovery: { clusterName: args.clusterName },
        image: { repository: `${image.registry}/${image.repository}`, tag: image.tag },
        rbac: {
          serviceAccount: {
            name: AUTOSCALER_SERVICE_ACCOUNT,
            annotations: { "eks.amazonaws.com/role-arn": autoscaler.role.arn },
          },
        },
        extraArgs: {
          // Per-zone node groups of a role (platform/cluster.ts) scale together; they share one launch
          // template, so their nodes' labels match (processors/nodegroupset/aws_nodegroups.go ignores
          // eks.amazonaws.com/nodegroup and the zone labels) and the autoscaler treats them as one set.
          "balance-similar-node-groups": true,
          expander: "least-waste",
          "skip-nodes-with-system-pods": false,
          "scale-down-unneeded-time": "10m",
        },
        ...placement("general"),
        resources: resources({ cpuRequest: "100m", memoryRequest: "300Mi", cpuLimit: "500m", memoryLimit: "600Mi" }),
      },
      { ...o, dependsOn: autoscaler.policies },
    );
  }
}

/** An IRSA role for a kube-system service account with its inline policy; the controller's release depends on `policies`. */
function roleWithPolicy(
  name: string,
  { oidc, permissionsBoundary }: Pick<ClusterAddonsArgs, "oidc" | "permissionsBoundary">,
  serviceAccount: string,
  inlinePolicy: pulumi.Input<string>,
  opts: pulumi.CustomResourceOptions,
) {
  return irsaRole(name, { oidc, permissionsBoundary, namespace: SYSTEM_NAMESPACE, serviceAccount, inlinePolicy }, opts);
}

/** Charts of this file go into kube-system under their chart's name. */
function release(name: string, chart: Chart, values: pulumi.Inputs, opts: pulumi.CustomResourceOptions): k8s.helm.v3.Release {
  return helmRelease(name, { name: chart.chart, namespace: SYSTEM_NAMESPACE, chart, values, timeoutSeconds: 600 }, opts);
}
