// What every workload sits on: the `agent` and `monitoring` namespaces and the StorageClasses: the default
// one (encrypted gp3 through the EBS CSI driver, bound where the pod lands) and the same with the AWS Backup
// selection tag on every volume, for data that must be backed up (Qdrant).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { BACKED_UP_STORAGE_CLASS, NAMESPACES, STORAGE_CLASS } from "./names.ts";

export interface ClusterBaseArgs {
  /** Dev: volumes go with their claims; elsewhere they outlive them (data is never deleted by accident). */
  disposable: boolean;
  /** Tag AWS Backup selects volumes by. */
  backupTag: { key: string; value: string };
}

export class ClusterBase extends pulumi.ComponentResource {
  readonly agentNamespace: pulumi.Output<string>;
  readonly monitoringNamespace: pulumi.Output<string>;
  readonly storageClassName: pulumi.Output<string>;
  readonly backedUpStorageClassName: pulumi.Output<string>;

  constructor(name: string, args: ClusterBaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ClusterBase", name, {}, opts);
    const o = { parent: this };

    const agent = new k8s.core.v1.Namespace(NAMESPACES.agent, {
      metadata: {
        name: NAMESPACES.agent,
        labels: {
          // Our pods meet "restricted"; enforcing only "baseline" keeps other teams' jobs here from being
          // rejected at night, while `warn` shows every violation at deploy time.
          "pod-security.kubernetes.io/enforce": "baseline",
          "pod-security.kubernetes.io/warn": "restricted",
          "pod-security.kubernetes.io/audit": "restricted",
          // The ALB controller holds API pods back from Ready until the ALB reports them healthy.
          "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
        },
      },
    }, o);
    const monitoring = new k8s.core.v1.Namespace(NAMESPACES.monitoring, {
      metadata: { name: NAMESPACES.monitoring },
    }, o);

    const gp3 = (className: string, annotations: Record<string, string>, extraParameters: Record<string, string>) =>
      new k8s.storage.v1.StorageClass(className, {
        metadata: { name: className, annotations },
        provisioner: "ebs.csi.aws.com",
        parameters: { type: "gp3", encrypted: "true", "csi.storage.k8s.io/fstype": "ext4", ...extraParameters },
        volumeBindingMode: "WaitForFirstConsumer",
        allowVolumeExpansion: true,
        reclaimPolicy: args.disposable ? "Delete" : "Retain",
      }, o);
    const storageClass = gp3(STORAGE_CLASS, { "storageclass.kubernetes.io/is-default-class": "true" }, {});
    const backedUp = gp3(BACKED_UP_STORAGE_CLASS, {}, { tagSpecification_1: `${args.backupTag.key}=${args.backupTag.value}` });

    this.agentNamespace = agent.metadata.name;
    this.monitoringNamespace = monitoring.metadata.name;
    this.storageClassName = storageClass.metadata.name;
    this.backedUpStorageClassName = backedUp.metadata.name;
    this.registerOutputs({ agentNamespace: this.agentNamespace, monitoringNamespace: this.monitoringNamespace });
  }
}
