// What every workload sits on: the `agent`, `monitoring` and `monitoring-host` namespaces, each with its Pod
// Security level, and the StorageClasses: the default one (encrypted gp3 through the EBS CSI driver, bound
// where the pod lands) and the same with the AWS Backup selection tag on every volume, for data that must be
// backed up (Qdrant).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { BACKED_UP_STORAGE_CLASS, NAMESPACES, STORAGE_CLASS } from "./names.ts";

export interface ClusterBaseArgs {
  /** Dev: volumes go with their claims; elsewhere they outlive them (data is never deleted by accident). */
  disposable: boolean;
  /** Tag AWS Backup selects volumes by. */
  backupTag: { key: string; value: string };
}

export type PodSecurityLevel = "restricted" | "baseline" | "privileged";

/**
 * Pod Security Standards level each of our namespaces enforces. agent: every pod there meets "restricted".
 * monitoring: the stack's charts run as "baseline" pods. monitoring-host: node-exporter and the DCGM exporter
 * read the node (host network/PID, hostPath, GPU devices), so their namespace says "privileged" openly.
 */
export const POD_SECURITY: Record<string, PodSecurityLevel> = {
  [NAMESPACES.agent]: "restricted",
  [NAMESPACES.monitoring]: "baseline",
  [NAMESPACES.monitoringHost]: "privileged",
};

/** enforce at the level; warn and audit at "restricted", so every gap below it shows at deploy time. */
export function podSecurityLabels(level: PodSecurityLevel): Record<string, string> {
  return {
    "pod-security.kubernetes.io/enforce": level,
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
  };
}

/**
 * `name`, the name `resource` was given, as an Output that depends on it. Its own `metadata.name` is unknown until
 * the cluster exists: on a stack's first preview every namespace and storage class read from it was unknown, so was
 * every object's namespace, and the cost estimate left out the backed-up Qdrant volumes (their class unknown). The
 * URN is known as soon as the resource is registered, and, like its outputs, only once it exists on `up`.
 */
const givenName = (resource: pulumi.Resource, name: string): pulumi.Output<string> => resource.urn.apply(() => name);

/**
 * Options of every StorageClass. The API server refuses to update a class's reclaimPolicy and volumeBindingMode
 * (pkg/apis/storage/validation ValidateStorageClassUpdate), and pulumi-kubernetes replaces a class only when its
 * parameters or provisioner change (provider/pkg/provider/diff.go): a stack moved to or from the dev tier (reclaimPolicy
 * Delete, elsewhere Retain) failed on the update. Replaced instead, first deleted (its name is fixed); volumes already
 * provisioned keep the reclaim policy they were given (`kubectl patch pv`, docs/operations-runbook.md).
 */
export const STORAGE_CLASS_OPTIONS = {
  replaceOnChanges: ["reclaimPolicy", "volumeBindingMode"],
  deleteBeforeReplace: true,
} satisfies pulumi.CustomResourceOptions;

export class ClusterBase extends pulumi.ComponentResource {
  readonly agentNamespace: pulumi.Output<string>;
  readonly monitoringNamespace: pulumi.Output<string>;
  readonly monitoringHostNamespace: pulumi.Output<string>;
  readonly storageClassName: pulumi.Output<string>;
  readonly backedUpStorageClassName: pulumi.Output<string>;

  constructor(name: string, args: ClusterBaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ClusterBase", name, {}, opts);
    const o = { parent: this };

    const namespace = (name: string, extraLabels: Record<string, string> = {}) =>
      new k8s.core.v1.Namespace(
        name,
        {
          metadata: { name, labels: { ...podSecurityLabels(POD_SECURITY[name]), ...extraLabels } },
        },
        o,
      );
    const agent = namespace(NAMESPACES.agent, {
      // The ALB controller holds API pods back from Ready until the ALB reports them healthy.
      "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
    });
    const monitoring = namespace(NAMESPACES.monitoring);
    const monitoringHost = namespace(NAMESPACES.monitoringHost);

    const gp3 = (className: string, annotations: Record<string, string>, extraParameters: Record<string, string>) =>
      new k8s.storage.v1.StorageClass(
        className,
        {
          metadata: { name: className, annotations },
          provisioner: "ebs.csi.aws.com",
          parameters: { type: "gp3", encrypted: "true", "csi.storage.k8s.io/fstype": "ext4", ...extraParameters },
          volumeBindingMode: "WaitForFirstConsumer",
          allowVolumeExpansion: true,
          reclaimPolicy: args.disposable ? "Delete" : "Retain",
        },
        { ...o, ...STORAGE_CLASS_OPTIONS },
      );
    const storageClass = gp3(STORAGE_CLASS, { "storageclass.kubernetes.io/is-default-class": "true" }, {});
    const backedUp = gp3(BACKED_UP_STORAGE_CLASS, {}, { tagSpecification_1: `${args.backupTag.key}=${args.backupTag.value}` });

    this.agentNamespace = givenName(agent, NAMESPACES.agent);
    this.monitoringNamespace = givenName(monitoring, NAMESPACES.monitoring);
    this.monitoringHostNamespace = givenName(monitoringHost, NAMESPACES.monitoringHost);
    this.storageClassName = givenName(storageClass, STORAGE_CLASS);
    this.backedUpStorageClassName = givenName(backedUp, BACKED_UP_STORAGE_CLASS);
    this.registerOutputs({ agentNamespace: this.agentNamespace, monitoringNamespace: this.monitoringNamespace });
  }
}
