// Pod building blocks shared by the workloads: labels, placement on node groups, hardening, resources.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { NodeRole } from "../node-zones.ts";
import { GPU_TAINT, NODE_ROLE_LABEL, VECTOR_TAINT } from "../platform/cluster.ts";
import { NAME_LABEL } from "./names.ts";

type Toleration = k8s.types.input.core.v1.Toleration;

export function labelsFor(name: string): Record<string, string> {
  return { [NAME_LABEL]: name, "app.kubernetes.io/part-of": "agent-stack", "app.kubernetes.io/managed-by": "pulumi" };
}

export function selectorFor(name: string): { matchLabels: Record<string, string> } {
  return { matchLabels: { [NAME_LABEL]: name } };
}

/** EKS spells taint effects NO_SCHEDULE; Kubernetes spells them NoSchedule. */
const TAINT_EFFECT = { NO_SCHEDULE: "NoSchedule", NO_EXECUTE: "NoExecute", PREFER_NO_SCHEDULE: "PreferNoSchedule" } as const;

function toleration(taint: { key: string; value: string; effect: keyof typeof TAINT_EFFECT }): Toleration {
  return { key: taint.key, operator: "Equal", value: taint.value, effect: TAINT_EFFECT[taint.effect] };
}

export const GPU_TOLERATION: Toleration = toleration(GPU_TAINT);
export const VECTOR_TOLERATION: Toleration = toleration(VECTOR_TAINT);
const TOLERATIONS: Partial<Record<NodeRole, Toleration>> = { gpu: GPU_TOLERATION, vector: VECTOR_TOLERATION };

/** Pins a pod to one node group (`role` label); GPU and vector nodes are tainted, so their pods tolerate that. */
export function placement(role: NodeRole): { nodeSelector: Record<string, string>; tolerations?: Toleration[] } {
  const t = TOLERATIONS[role];
  return { nodeSelector: { [NODE_ROLE_LABEL]: role }, ...(t ? { tolerations: [t] } : {}) };
}

/** Container hardening every workload gets. */
export function lockedDown(): k8s.types.input.core.v1.SecurityContext {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

export function nonRootPod(uid: number, gid = uid): k8s.types.input.core.v1.PodSecurityContext {
  return { runAsNonRoot: true, runAsUser: uid, runAsGroup: gid, fsGroup: gid, seccompProfile: { type: "RuntimeDefault" } };
}

export interface Sizes {
  cpuRequest: string;
  memoryRequest: string;
  /** Omitted for latency-bound servers (Ollama, Qdrant): a CPU limit throttles them and buys nothing. */
  cpuLimit?: string;
  memoryLimit: string;
}

export function resources(s: Sizes, extended: Record<string, string> = {}): k8s.types.input.core.v1.ResourceRequirements {
  return {
    requests: { cpu: s.cpuRequest, memory: s.memoryRequest, ...extended },
    limits: { ...(s.cpuLimit ? { cpu: s.cpuLimit } : {}), memory: s.memoryLimit, ...extended },
  };
}

/** Spec of a ReadWriteOnce volume claim of `gb` GiB. */
export function claimSpec(storageClassName: pulumi.Input<string>, gb: number): k8s.types.input.core.v1.PersistentVolumeClaimSpec {
  return { accessModes: ["ReadWriteOnce"], storageClassName, resources: { requests: { storage: `${gb}Gi` } } };
}

/** Writable scratch space for containers with a read-only root filesystem. */
export const TMP = {
  volume: { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
  mount: { name: "tmp", mountPath: "/tmp" },
} as const;

/** One replica per node: a node failure takes at most one. "preferred" still schedules when nodes run out. */
export function spreadOverNodes(name: string, mode: "required" | "preferred"): k8s.types.input.core.v1.Affinity {
  const term = { topologyKey: "kubernetes.io/hostname", labelSelector: selectorFor(name) };
  return {
    podAntiAffinity:
      mode === "required"
        ? { requiredDuringSchedulingIgnoredDuringExecution: [term] }
        : { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] },
  };
}

/** Replicas spread over zones: DoNotSchedule for data that must survive a zone, ScheduleAnyway otherwise. */
export function spreadOverZones(
  name: string,
  whenUnsatisfiable: "DoNotSchedule" | "ScheduleAnyway",
): k8s.types.input.core.v1.TopologySpreadConstraint {
  return { maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable, labelSelector: selectorFor(name) };
}

/**
 * Keeps all but one replica up through node drains and upgrades. A pod that is not Ready may always be evicted
 * (Kubernetes "Specifying a Disruption Budget", unhealthy pod eviction policy, GA in 1.31): it serves nothing, and
 * with the default (IfHealthyBudget) two Qdrant peers stuck unready held every drain of their nodes, failing an EKS
 * node update with PodEvictionFailure after 15 minutes.
 */
export function disruptionBudget(
  name: string,
  namespace: pulumi.Input<string>,
  opts: pulumi.CustomResourceOptions,
): k8s.policy.v1.PodDisruptionBudget {
  return new k8s.policy.v1.PodDisruptionBudget(
    name,
    {
      metadata: { name, namespace, labels: labelsFor(name) },
      spec: { maxUnavailable: 1, selector: selectorFor(name), unhealthyPodEvictionPolicy: "AlwaysAllow" },
    },
    opts,
  );
}

/** When a CronJob runs: one run at a time, a run missed by up to an hour (control-plane hiccup) still
 * happens, the last success and a few failures kept for `kubectl logs`. */
export function cronTiming(schedule: string, timeZone: string) {
  return {
    schedule,
    timeZone,
    concurrencyPolicy: "Forbid",
    startingDeadlineSeconds: 3600,
    successfulJobsHistoryLimit: 1,
    failedJobsHistoryLimit: 3,
  } satisfies Partial<k8s.types.input.batch.v1.CronJobSpec>;
}
