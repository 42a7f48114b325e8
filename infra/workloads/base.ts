// What every workload sits on: the `agent` and `monitoring` namespaces and the default StorageClass
// (encrypted gp3 through the EBS CSI driver, bound where the pod lands).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { NAMESPACES, STORAGE_CLASS } from "./names.ts";

export interface ClusterBaseArgs {
  /** Dev: volumes go with their claims; elsewhere they outlive them (data is never deleted by accident). */
  disposable: boolean;
}

export class ClusterBase extends pulumi.ComponentResource {
  readonly agentNamespace: pulumi.Output<string>;
  readonly monitoringNamespace: pulumi.Output<string>;
  readonly storageClassName: pulumi.Output<string>;

  constructor(name: string, args: ClusterBaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ClusterBase", name, {}, opts);
    const o = { parent: this };

    const agent = new k8s.core.v1.Namespace(NAMESPACES.agent, {
      metadata: {
        name: NAMESPACES.agent,
        labels: {
          // Baseline, not restricted: the official Ollama image runs as root.
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

    const storageClass = new k8s.storage.v1.StorageClass(STORAGE_CLASS, {
      metadata: {
        name: STORAGE_CLASS,
        annotations: { "storageclass.kubernetes.io/is-default-class": "true" },
      },
      provisioner: "ebs.csi.aws.com",
      parameters: { type: "gp3", encrypted: "true", "csi.storage.k8s.io/fstype": "ext4" },
      volumeBindingMode: "WaitForFirstConsumer",
      allowVolumeExpansion: true,
      reclaimPolicy: args.disposable ? "Delete" : "Retain",
    }, o);

    this.agentNamespace = agent.metadata.name;
    this.monitoringNamespace = monitoring.metadata.name;
    this.storageClassName = storageClass.metadata.name;
    this.registerOutputs({ agentNamespace: this.agentNamespace, monitoringNamespace: this.monitoringNamespace });
  }
}
