// Plan-time capacity checks of a tier, with the arithmetic shown (the `capacity` stack output):
//  - memory: Qdrant and Ollama request == limit, and that amount must fit the node they are pinned to once
//    the kubelet's reservation, the eviction threshold and the DaemonSets are taken off;
//  - GPU: every model Ollama keeps resident (weights at their quantisation + KV cache for parallel requests x
//    context length + compute buffers) must fit the GPU's memory together, or Ollama evicts and reloads.
//  - database connections: the API at its largest (a rollout at maxReplicas: the new pods beside the old ones still
//    draining, plus the surge), each pod with its pool and its LISTEN connection, plus the other clients, must fit
//    max_connections, or pods cannot connect just when the API is busiest.
// Pure: a tier in, lines and problems out.
import { MEMORY_QUANTITY } from "./tier-schema.ts";
import type { NodeGroupSpec, Tier } from "./tiers.ts";
import { API_ROLLING_SURGE_PERCENT } from "./workloads/names.ts";

const MIB_PER_GIB = 1024;

// ---- Nodes ---------------------------------------------------------------------------------------------

/**
 * What a node keeps for itself, from amazon-eks-ami nodeadm (internal/kubelet/config.go, checked 2026-12):
 * kubeReserved memory = 11 MiB x maxPods + 255 MiB; evictionHard memory.available = 100Mi; no systemReserved.
 * The kernel and firmware keep some of the nominal memory before the kubelet sees it: counted as 5 %
 * (an assumption on the safe side; it is ~2-5 % from small to large instances).
 */
export const NODE_OVERHEAD = {
  kernelShare: 0.05,
  evictionMiB: 100,
  kubeReservedPerPodMiB: 11,
  kubeReservedBaseMiB: 255,
} as const;
/** Memory requests of the DaemonSets on every node (VPC CNI, kube-proxy, EBS CSI node, node-exporter, and on GPU
 * nodes the device plugin and DCGM exporter at 64 + 256 MiB): 1 GiB covers them with room to spare. */
export const DAEMONSET_RESERVE_MIB = 1024;

/** vCPU and ENI-based max pods (VPC CNI without prefix delegation; amazon-eks-ami eni-max-pods.txt) by size. */
const SIZES: Record<string, { vcpu: number; maxPods: number }> = {
  medium: { vcpu: 2, maxPods: 17 },
  large: { vcpu: 2, maxPods: 29 },
  xlarge: { vcpu: 4, maxPods: 58 },
  "2xlarge": { vcpu: 8, maxPods: 58 },
  "4xlarge": { vcpu: 16, maxPods: 234 },
  "8xlarge": { vcpu: 32, maxPods: 234 },
  "12xlarge": { vcpu: 48, maxPods: 234 },
  "16xlarge": { vcpu: 64, maxPods: 737 },
};
/** GiB of memory per vCPU by family letter (c 2, m 4, r 8: the EC2 instance type pages). */
const GIB_PER_VCPU: Record<string, number> = { c: 2, m: 4, r: 8 };
/** Burstable t3/t3a/t4g: memory by size; t3.large has 3 ENIs x 12 IPs = 35 pods. */
const BURSTABLE: Record<string, { memoryGib: number; maxPods: number }> = {
  medium: { memoryGib: 4, maxPods: 17 },
  large: { memoryGib: 8, maxPods: 35 },
  xlarge: { memoryGib: 16, maxPods: 58 },
  "2xlarge": { memoryGib: 32, maxPods: 58 },
};
/**
 * GPU families: memory per vCPU (g5/g6: 4 GiB) and the GPU (nvidia-smi's total, the usable figure; its accelerator
 * name as the cluster autoscaler lists it: cluster-autoscaler-1.35.0 cloudprovider/aws/aws_cloud_provider.go
 * availableGPUTypes).
 */
const GPU_FAMILIES: Record<string, { gibPerVcpu: number; gpu: Gpu }> = {
  g5: { gibPerVcpu: 4, gpu: { name: "NVIDIA A10G", accelerator: "nvidia-a10g", memoryMib: 23028 } },
  g6: { gibPerVcpu: 4, gpu: { name: "NVIDIA L4", accelerator: "nvidia-l4", memoryMib: 23034 } },
  g4dn: { gibPerVcpu: 4, gpu: { name: "NVIDIA T4", accelerator: "nvidia-tesla-t4", memoryMib: 15360 } },
};

export interface Gpu {
  name: string;
  accelerator: string;
  memoryMib: number;
}

export interface InstanceShape {
  type: string;
  memoryGib: number;
  maxPods: number;
  gpu?: Gpu;
}

/** Memory, max pods and GPU of an instance type, or a message naming what is known. */
export function instanceShape(type: string): InstanceShape | string {
  const [family, size] = type.split(".");
  const known = "c/m/r families (5th-7th generation, i/a/g variants), t3/t3a/t4g, g4dn/g5/g6 in sizes medium..16xlarge";
  const unknown = `instance type ${type} is not in infra/capacity.ts; known: ${known}`;
  if (/^t(3a?|4g)$/.test(family)) {
    const b = BURSTABLE[size];
    return b ? { type, ...b } : unknown;
  }
  const s = SIZES[size];
  if (!s) return unknown;
  const gpuFamily = GPU_FAMILIES[family];
  if (gpuFamily) return { type, memoryGib: s.vcpu * gpuFamily.gibPerVcpu, maxPods: s.maxPods, gpu: gpuFamily.gpu };
  const m = /^([cmr])[5-7][aig]?[dn]?$/.exec(family);
  if (!m || size === "medium") return unknown;
  return { type, memoryGib: s.vcpu * GIB_PER_VCPU[m[1]], maxPods: s.maxPods };
}

/** What pods can request on a node of this shape, with each step. */
export function podMemoryBudget(shape: InstanceShape): { budgetMib: number; steps: string } {
  const nominal = shape.memoryGib * MIB_PER_GIB;
  const kernel = Math.round(nominal * NODE_OVERHEAD.kernelShare);
  const kubeReserved = NODE_OVERHEAD.kubeReservedPerPodMiB * shape.maxPods + NODE_OVERHEAD.kubeReservedBaseMiB;
  const budgetMib = nominal - kernel - kubeReserved - NODE_OVERHEAD.evictionMiB - DAEMONSET_RESERVE_MIB;
  const steps = `${nominal} MiB - ${kernel} kernel (5 %) - ${kubeReserved} kubeReserved (11 x ${shape.maxPods} pods + 255) - ${NODE_OVERHEAD.evictionMiB} eviction - ${DAEMONSET_RESERVE_MIB} DaemonSets = ${budgetMib} MiB`;
  return { budgetMib, steps };
}

/** A Kubernetes memory quantity in MiB (Ki/Mi/Gi/Ti, or plain bytes). */
export function quantityMib(q: string): number {
  const m = MEMORY_QUANTITY.exec(q);
  if (!m) throw new Error(`"${q}" is not a memory quantity like 512Mi or 4Gi`);
  const factor = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024 }[m[2] ?? ""] ?? 1 / (1024 * 1024);
  return Number(m[1]) * factor;
}

// ---- Models --------------------------------------------------------------------------------------------

export interface ModelSize {
  /** Download size at the library tag's default quantisation (Q4_K_M for chat models, F16 for the embedder). */
  weightsGb: number;
  /** Attention layers, KV heads and head size (the model's config.json) give the KV cache per token. */
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Longest context the model takes; Ollama caps the context there. */
  maxContext: number;
  source: string;
}

/**
 * Sizes: the Ollama library page of each tag (https://ollama.com/library/<name>:<tag>, "Size" column);
 * architecture: the model's Hugging Face config.json (num_hidden_layers, num_key_value_heads, head_dim).
 */
export const MODEL_SIZES: Record<string, ModelSize> = {
  "qwen2.5:0.5b": {
    weightsGb: 0.398,
    layers: 24,
    kvHeads: 2,
    headDim: 64,
    maxContext: 32768,
    source: "ollama.com/library/qwen2.5:0.5b; Qwen/Qwen2.5-0.5B-Instruct",
  },
  "qwen2.5:1.5b": {
    weightsGb: 0.986,
    layers: 28,
    kvHeads: 2,
    headDim: 128,
    maxContext: 32768,
    source: "ollama.com/library/qwen2.5:1.5b; Qwen/Qwen2.5-1.5B-Instruct",
  },
  "qwen2.5:7b": {
    weightsGb: 4.7,
    layers: 28,
    kvHeads: 4,
    headDim: 128,
    maxContext: 32768,
    source: "ollama.com/library/qwen2.5:7b; Qwen/Qwen2.5-7B-Instruct",
  },
  "qwen2.5:14b": {
    weightsGb: 9.0,
    layers: 48,
    kvHeads: 8,
    headDim: 128,
    maxContext: 32768,
    source: "ollama.com/library/qwen2.5:14b; Qwen/Qwen2.5-14B-Instruct",
  },
  "qwen2.5:32b": {
    weightsGb: 20,
    layers: 64,
    kvHeads: 8,
    headDim: 128,
    maxContext: 32768,
    source: "ollama.com/library/qwen2.5:32b; Qwen/Qwen2.5-32B-Instruct",
  },
  "llama3.2:3b": {
    weightsGb: 2.0,
    layers: 28,
    kvHeads: 8,
    headDim: 128,
    maxContext: 131072,
    source: "ollama.com/library/llama3.2:3b; meta-llama/Llama-3.2-3B-Instruct",
  },
  "llama3.1:8b": {
    weightsGb: 4.9,
    layers: 32,
    kvHeads: 8,
    headDim: 128,
    maxContext: 131072,
    source: "ollama.com/library/llama3.1:8b; meta-llama/Llama-3.1-8B-Instruct",
  },
  "nomic-embed-text:latest": {
    weightsGb: 0.274,
    layers: 12,
    kvHeads: 12,
    headDim: 64,
    maxContext: 2048,
    source: "ollama.com/library/nomic-embed-text; nomic-ai/nomic-embed-text-v1.5",
  },
};

/** Bytes per cached K or V element: f16 2, q8_0 8.5 bits (a 32-value block is 34 bytes). */
const KV_BYTES = { f16: 2, q8_0: 34 / 32 } as const;
/** Compute buffers per loaded model (the graph for a 512-token batch), an assumption on the safe side. */
export const PER_MODEL_OVERHEAD_MIB = 512;
/** The CUDA context and driver on the GPU itself. */
export const GPU_CONTEXT_MIB = 512;
/** Embedding models run on f16 caches (Ollama turns flash attention off for BERT-style models). */
const EMBEDDERS = new Set(["nomic-embed-text:latest"]);

/** `ollama list` spelling of a tag: an untagged name means `:latest`. */
export function modelRef(model: string): string {
  return model.includes(":") ? model : `${model}:latest`;
}

export interface ModelBudget {
  model: string;
  weightsMib: number;
  kvMib: number;
  overheadMib: number;
}

/** The resident set of a tier: every distinct model with its weights, KV cache and compute buffers. */
export function residentModels(ollama: Tier["ollama"]): ModelBudget[] | string {
  const models = [...new Set(Object.values(ollama.models).map(modelRef))];
  const missing = models.filter((m) => !MODEL_SIZES[m]);
  if (missing.length)
    return `model ${missing.join(", ")} is not in infra/capacity.ts MODEL_SIZES (known: ${Object.keys(MODEL_SIZES).join(", ")}); add its size and architecture with their source`;
  return models.map((model) => {
    const m = MODEL_SIZES[model];
    const tokens = Math.min(ollama.contextLength, m.maxContext) * ollama.numParallel;
    const bytesPerValue = EMBEDDERS.has(model) ? KV_BYTES.f16 : KV_BYTES[ollama.kvCacheType];
    const kvBytes = 2 * m.layers * m.kvHeads * m.headDim * bytesPerValue * tokens;
    return {
      model,
      weightsMib: Math.round((m.weightsGb * 1e9) / 2 ** 20),
      kvMib: Math.round(kvBytes / 2 ** 20),
      overheadMib: PER_MODEL_OVERHEAD_MIB,
    };
  });
}

// ---- Database connections ------------------------------------------------------------------------------

/**
 * Per API pod beyond its pool: the LISTEN connection (corpus version). The migrations' own pool (at most 2, as
 * DATABASE_MIGRATE_URL) is closed before the pool grows past its start-up connection and before the listener opens.
 */
const API_EXTRA_CONNECTIONS = 1;
/**
 * Slots that are not the API's: PostgreSQL's superuser_reserved_connections (3 by default), the slots RDS keeps for
 * itself and rds_superuser (its refusal reads "remaining connection slots are reserved for non-replication
 * superuser, rds_reserved, and rds_superuser connections"), the postgres exporter, the database-roles job and an
 * operator's psql. A round margin, not a measured count.
 */
const OTHER_DB_CONNECTIONS = 15;

/**
 * Counts the most API pods holding connections at once: a rollout at the autoscaler's maximum, the new ReplicaSet at
 * maxReplicas beside every old pod still draining, and the surge again as a margin for a rollout begun during another.
 * A Deployment does not count terminating pods against maxSurge nor wait for them (kubernetes/enhancements KEP-3973,
 * "Consider Terminating Pods in Deployments": alpha since 1.33, behind a feature gate), and a draining pod keeps its
 * pool until its last request ends, up to its grace period: with steps shorter than a drain, old pods pile up (probe
 * BO: 224 connections of small's 200 with two steps' pods draining, 268 with all of them).
 */
function databaseConnections(tier: Tier, lines: string[], problems: string[]): void {
  const { maxReplicas, dbPoolMax } = tier.api;
  const surge = Math.ceil((maxReplicas * API_ROLLING_SURGE_PERCENT) / 100);
  const pods = 2 * maxReplicas + surge;
  const perPod = dbPoolMax + API_EXTRA_CONNECTIONS;
  const peak = pods * perPod + OTHER_DB_CONNECTIONS;
  const sum =
    `${pods} API pods (a rollout at api.maxReplicas ${maxReplicas}: ${maxReplicas} new, ${maxReplicas} old still ` +
    `draining, ${surge} more for the ${API_ROLLING_SURGE_PERCENT} % surge) x ${perPod} ` +
    `(api.dbPoolMax ${dbPoolMax} + LISTEN) + ${OTHER_DB_CONNECTIONS} others = ${peak}`;
  lines.push(`database connections at peak: ${sum} of max_connections ${tier.database.maxConnections}`);
  if (peak > tier.database.maxConnections) {
    problems.push(
      `database.maxConnections: ${tier.database.maxConnections} is below what the API opens at its largest: ${sum}; raise it, or lower api.maxReplicas or api.dbPoolMax`,
    );
  }
}

// ---- The report ----------------------------------------------------------------------------------------

export interface CapacityReport {
  lines: string[];
  problems: string[];
}

/** Where each stateful workload runs: its own group when the tier has one, the general group otherwise. */
function hostOf(tier: Tier, role: "vector" | "gpu"): { role: string; spec: NodeGroupSpec } {
  const spec = tier.nodeGroups[role];
  return spec ? { role, spec } : { role: "general", spec: tier.nodeGroups.general };
}

export function capacityReport(tier: Tier): CapacityReport {
  const report = nodesAndModels(tier);
  databaseConnections(tier, report.lines, report.problems);
  return report;
}

/** Memory on each node group, then the models on the GPU (or Ollama's memory on CPU). */
function nodesAndModels(tier: Tier): CapacityReport {
  const lines: string[] = [];
  const problems: string[] = [];
  const qdrantHost = hostOf(tier, "vector");
  const ollamaHost = tier.gpu ? hostOf(tier, "gpu") : { role: "general", spec: tier.nodeGroups.general };

  // Memory: the pods pinned to each group (one Qdrant and one Ollama per node at most).
  const perRole = new Map<string, { spec: NodeGroupSpec; pods: { pod: string; quantity: string; key: string }[] }>();
  const add = (role: string, spec: NodeGroupSpec, pod: string, quantity: string, key: string) => {
    const entry = perRole.get(role) ?? { spec, pods: [] };
    entry.pods.push({ pod, quantity, key });
    perRole.set(role, entry);
  };
  add(qdrantHost.role, qdrantHost.spec, "qdrant", tier.qdrant.memoryLimit, "qdrant.memoryLimit");
  if (tier.ollama.replicas > 0) add(ollamaHost.role, ollamaHost.spec, "ollama", tier.ollama.memoryLimit, "ollama.memoryLimit");
  for (const [role, { spec, pods }] of perRole) {
    for (const type of spec.instanceTypes) {
      const shape = instanceShape(type);
      if (typeof shape === "string") {
        problems.push(`nodeGroups.${role}.instanceTypes: ${shape}`);
        continue;
      }
      const { budgetMib, steps } = podMemoryBudget(shape);
      const asked = pods.reduce((sum, p) => sum + quantityMib(p.quantity), 0);
      const shown = pods.map((p) => `${p.pod} ${p.quantity} (${p.key})`).join(" + ");
      lines.push(
        `memory ${role} node ${type}: ${steps}; requests ${shown} = ${asked} MiB, ${budgetMib - asked} MiB left for other pods`,
      );
      if (asked > budgetMib) {
        problems.push(
          `${pods.map((p) => p.key).join(" + ")}: ${shown} = ${asked} MiB does not fit a ${type} node (${steps}); lower it or pick a larger nodeGroups.${role} instance type`,
        );
      }
    }
  }

  // GPU (or, on CPU, the Ollama container): the resident models together.
  const resident = residentModels(tier.ollama);
  if (typeof resident === "string") {
    problems.push(`ollama.models: ${resident}`);
    return { lines, problems };
  }
  const o = tier.ollama;
  let capacityMib: number;
  let where: string;
  if (tier.gpu) {
    const shape = instanceShape(ollamaHost.spec.instanceTypes[0]);
    if (typeof shape === "string" || !shape.gpu) {
      problems.push(`nodeGroups.gpu.instanceTypes: ${typeof shape === "string" ? shape : `${shape.type} has no GPU`}`);
      return { lines, problems };
    }
    capacityMib = shape.gpu.memoryMib - GPU_CONTEXT_MIB;
    where = `${shape.gpu.name} on ${shape.type}: ${shape.gpu.memoryMib} MiB - ${GPU_CONTEXT_MIB} CUDA context`;
  } else {
    capacityMib = quantityMib(o.memoryLimit) - GPU_CONTEXT_MIB;
    where = `Ollama's ${o.memoryLimit} on CPU - ${GPU_CONTEXT_MIB} for the server`;
  }
  const total = resident.reduce((s, m) => s + m.weightsMib + m.kvMib + m.overheadMib, 0);
  const setting = `${resident.length} models resident, ${o.numParallel} parallel x ${o.contextLength} tokens, KV ${o.kvCacheType}`;
  lines.push(`models (${setting}) on ${where} = ${capacityMib} MiB`);
  for (const m of resident)
    lines.push(
      `  ${m.model}: ${m.weightsMib} weights + ${m.kvMib} KV + ${m.overheadMib} buffers = ${m.weightsMib + m.kvMib + m.overheadMib} MiB`,
    );
  lines.push(`  total ${total} MiB of ${capacityMib} MiB, ${capacityMib - total} MiB free`);
  if (total > capacityMib) {
    problems.push(
      `ollama.models: ${setting} need ${total} MiB but ${where} leaves ${capacityMib} MiB; pick smaller models, lower ollama.numParallel or ollama.contextLength, or set ollama.kvCacheType q8_0`,
    );
  }
  return { lines, problems };
}
