// Cost-sized tiers. Every number names the guide line it comes from (guides in ../shared/guides/):
//   G000-HW-MIN  000 "Hardware Requirements > Minimum (Development/Small Scale)"
//   G000-HW-MED  000 "Hardware Requirements > Production (Medium Scale, 100 req/min)"
//   G000-AWS     000 "Cloud Provider Options > Self-Hosted on AWS" (~$5,680/month)
//   G000-SIZES   000 "Summary > Deployment Sizes" (dev $50, small $2,000, medium $5,000, large $10,000+)
//   G000-HPA     000 "Scaling Strategies > Auto-Scaling Rules" (HPA 3-10, CPU 70 %, memory 80 %)
//   G000-OFFPEAK 000 "Infrastructure Cost Optimization > scale_down_during_low_traffic" (00:00-06:00, API 5->2, Ollama 3->1)
//   G000-PG      000 "Docker Compose": postgres -c max_connections=200 ... (tuning scaled per instance in platform/database.ts)
//   G000-PROM    000 "Docker Compose": prometheus --storage.tsdb.retention.time=30d
//   G000-NGINX   000 "nginx Configuration": limit_req_zone $binary_remote_addr ... rate=10r/s; limit_req_status 429
//   G000-BACKUP  000 "Backup and Disaster Recovery": PostgreSQL daily, Qdrant weekly, Redis daily
//   G002-BACKUP  002 "Backup & Recovery": "Retention: 7 daily, 4 weekly, 12 monthly"
// A stack overrides any single value with `agent-stack:overrides` (see infra/config.ts).

import { DAYS, type Day } from "./time.ts";
import { type NodeGroupSpec, type Tier, TIER_NAMES, type TierName } from "./tier-schema.ts";

// The shape and its rules live in tier-schema.ts (the Tier type is inferred from the schema); the values here.
export { DAYS, type Day, type NodeGroupSpec, type Tier, TIER_NAMES, type TierName };
export type { Window } from "./time.ts";

/** The instance type of every NAT instance (network.natGateways "instance"; platform/nat-instance.ts). */
export const NAT_INSTANCE_TYPE = "t4g.nano";

// G000-NGINX: the load balancer is the first rate-limiting layer, 10 requests/s per client address, answered 429.
// AWS WAF counts per minute at the finest, so 600 a minute (its burst allowance is looser than nginx's burst=20).
const PER_IP_REQUESTS_PER_MINUTE = 600;

// Each API pod's Postgres pool (the app's default); infra/capacity.ts checks the pools fit database.maxConnections.
const DB_POOL_MAX = 10;
// Days the API keeps each turn (the app's TURN_RETENTION_DAYS), not in the guides: without a bound every answer stayed
// in `turns` for good. A quarter's history; a month in dev, whose database is 20 GB.
const TURN_RETENTION_DAYS = 90;
const DEV_TURN_RETENTION_DAYS = 30;

const WEEKDAYS: Day[] = ["MON", "TUE", "WED", "THU", "FRI"];
const EVERY_DAY: Day[] = [...DAYS];

// Models: Ollama tags. Dev runs on CPU, so it gets the smallest useful chat model. On a GPU, all four stay
// resident on one 24 GB A10G: qwen2.5:32b (20 GB of weights) cannot share it with the others and their KV
// caches, so the large route uses qwen2.5:14b (9 GB); infra/capacity.ts checks the sum at plan time.
const GPU_MODELS = { small: "llama3.2:3b", default: "llama3.1:8b", large: "qwen2.5:14b", embed: "nomic-embed-text" };
// Guide 000 "Docker Compose": OLLAMA_NUM_PARALLEL=4. 4096 tokens of context per request; the q8_0 KV cache
// (half of f16) is what lets 4 models x 4 requests x 4096 tokens fit beside their weights.
const GPU_SERVING = { numParallel: 4, contextLength: 4096, kvCacheType: "q8_0" } as const;
const CPU_SERVING = { numParallel: 2, contextLength: 4096, kvCacheType: "f16" } as const;
// One Ollama pod per g5.2xlarge (A10G 24 GB; infra/capacity.ts checks the models fit): the same pod in every GPU tier.
const GPU_OLLAMA = {
  models: GPU_MODELS,
  ...GPU_SERVING,
  storageGb: 100,
  memoryRequest: "24Gi",
  memoryLimit: "24Gi",
} as const;
const CPU_MODELS = { small: "qwen2.5:0.5b", default: "qwen2.5:1.5b", large: "qwen2.5:1.5b", embed: "nomic-embed-text" };

// G002-BACKUP: 7 daily, 4 weekly, 12 monthly in every tier; AWS Backup storage is cheap next to losing data.
const RETENTION = { daily: { keepDays: 7 }, weekly: { keepWeeks: 4 }, monthly: { keepMonths: 12 } };

export const TIERS: Record<TierName, Tier> = {
  // G000-SIZES "Development: 1 server, no GPU, $50/month". EKS alone is $73/month, so dev cannot reach $50;
  // it gets as close as a managed cluster allows: one node, burstable db/cache, off nights and weekends.
  dev: {
    name: "dev",
    gpu: false,
    // A NAT instance, not a gateway: nodes stay in private subnets (the policies forbid public node IPs); egress
    // (image pulls, model downloads) depends on one t4g.nano in one AZ (platform/nat-instance.ts).
    // No ALB ($24/month, about 15 % of dev's bill): the API is reached with `kubectl port-forward` through the
    // cluster's API server (README "Reaching the API"); nothing in dev is reachable from the internet.
    network: { azCount: 2, natGateways: "instance", publicIngress: false, perIpRequestsPerMinute: null },
    nodeGroups: {
      // One Spot Graviton node holds API, Qdrant, CPU Ollama and monitoring: 4 vCPU / 16 GiB, not burstable (CPU
      // inference would run a T instance out of credits). Two types so a Spot shortage of one does not stop dev.
      general: { instanceTypes: ["m7g.xlarge", "m6g.xlarge"], capacityType: "SPOT", min: 1, desired: 1, max: 2, diskGb: 30 },
      vector: null,
      gpu: null,
      monitoring: null,
    },
    database: {
      // 2 vCPU / 1 GiB: enough for sessions and keys of one developer; RDS T classes are always unlimited (credits priced).
      instanceClass: "db.t4g.micro",
      allocatedStorageGb: 20,
      maxAllocatedStorageGb: 50,
      multiAz: false,
      readReplicas: 0,
      replicaInstanceClass: "db.t4g.micro",
      backupRetentionDays: 7,
      performanceInsights: false,
      deletionProtection: false,
      maxConnections: 100,
    },
    cache: { nodeType: "cache.t4g.micro", nodes: 1, snapshotRetentionDays: 1 },
    registry: { keepImages: 10 },
    api: {
      minReplicas: 1,
      maxReplicas: 2,
      cpuRequest: "250m",
      memoryRequest: "256Mi",
      cpuLimit: "1",
      memoryLimit: "512Mi",
      dbPoolMax: DB_POOL_MAX,
      turnRetentionDays: DEV_TURN_RETENTION_DAYS,
    },
    // Requests == limits (infra/capacity.ts shows they fit the one m7g.xlarge beside everything else).
    ollama: {
      replicas: 1,
      models: CPU_MODELS,
      ...CPU_SERVING,
      storageGb: 20,
      cpuRequest: "1",
      memoryRequest: "5Gi",
      memoryLimit: "5Gi",
    },
    qdrant: {
      replicas: 1,
      replicationFactor: 1,
      writeConsistency: 1,
      storageGb: 10,
      cpuRequest: "250m",
      memoryRequest: "1Gi",
      memoryLimit: "1Gi",
    },
    monitoring: {
      retentionDays: 7,
      prometheusStorageGb: 20,
      lokiMode: "singleBinary",
      lokiRetentionDays: 7,
      prometheusReplicas: 1,
      prometheusCpuRequest: "200m",
      prometheusMemoryRequest: "512Mi",
      prometheusMemoryLimit: "1Gi",
    },
    schedule: {
      offPeak: null,
      offPeakSizes: { generalNodes: 1, gpuNodes: 0, apiMinReplicas: 1, ollamaReplicas: 1 },
      workHoursOnly: { days: WEEKDAYS, start: "08:00", end: "20:00" },
    },
    // G000-BACKUP "Qdrant Backup (Weekly)": Wednesday noon, while dev is up (the cluster is off at night and weekends).
    backups: { ...RETENTION, qdrantSnapshotCron: "0 12 * * 3", glacierAfterDays: 30, expireAfterDays: 120 },
    budget: { monthlyUsd: 250 },
    guide: { monthlyUsd: 50, reference: "000 Deployment Sizes: Development, 1 server, no GPU, $50/month" },
  },

  // G000-SIZES "Small Production: 3-5 servers, 1 GPU, $2,000/month"; node sizes from G000-HW-MIN.
  small: {
    name: "small",
    gpu: true,
    network: { azCount: 3, natGateways: "perAz", publicIngress: true, perIpRequestsPerMinute: PER_IP_REQUESTS_PER_MINUTE },
    nodeGroups: {
      // G000-HW-MIN "API Servers (3x): CPU 4 cores, RAM 8GB, Storage 50GB" -> c6i.xlarge (4 vCPU / 8 GiB).
      // Graviton c7g.xlarge: same 4 vCPU / 8 GiB as c6i.xlarge, 15 % cheaper (multi-arch API image).
      general: { instanceTypes: ["c7g.xlarge"], capacityType: "ON_DEMAND", min: 3, desired: 3, max: 5, diskGb: 50 },
      // G000-HW-MIN "Qdrant: 4 cores, 16GB, 200GB" -> r7g.xlarge (4 vCPU / 32 GiB, Graviton; r7g.large has 2 vCPU).
      vector: { instanceTypes: ["r7g.xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 2, diskGb: 30 },
      // G000-HW-MIN "Ollama: 8 cores, 32GB, T4 or better (16GB VRAM), 100GB" -> g5.2xlarge (A10G 24 GB).
      gpu: { instanceTypes: ["g5.2xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 2, diskGb: 100 },
      // G000-HW-MIN "Monitoring: 4 cores, 8GB" -> t4g.large (2 vCPU / 8 GiB, standard credits) is enough at this scale.
      monitoring: { instanceTypes: ["t4g.large"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 1, diskGb: 30 },
    },
    database: {
      // G000-HW-MIN "PostgreSQL: 4 cores, 16GB, 500GB" -> db.m7g.xlarge (Graviton); storage grows to 500 GB on demand.
      instanceClass: "db.m7g.xlarge",
      allocatedStorageGb: 100,
      maxAllocatedStorageGb: 500,
      multiAz: true,
      readReplicas: 0,
      replicaInstanceClass: "db.m7g.large",
      backupRetentionDays: 7,
      performanceInsights: true,
      deletionProtection: true,
      // G000-PG runs 200; a rollout at api.maxReplicas can hold 268 (infra/capacity.ts, old pods still draining).
      maxConnections: 300,
    },
    // G000-HW-MIN "Redis: 2 cores, 4GB" -> cache.m6g.large (2 vCPU / 6.4 GiB), primary + replica.
    cache: { nodeType: "cache.m6g.large", nodes: 2, snapshotRetentionDays: 7 },
    registry: { keepImages: 30 },
    // G000-HPA minReplicas 3 maxReplicas 10; "API Servers (3x)".
    api: {
      minReplicas: 3,
      maxReplicas: 10,
      cpuRequest: "500m",
      memoryRequest: "512Mi",
      cpuLimit: "2",
      memoryLimit: "1Gi",
      dbPoolMax: DB_POOL_MAX,
      turnRetentionDays: TURN_RETENTION_DAYS,
    },
    // Requests == limits, sized to the node (arithmetic: infra/capacity.ts, `capacity` stack output).
    ollama: { replicas: 1, ...GPU_OLLAMA, cpuRequest: "2" },
    qdrant: {
      replicas: 1,
      replicationFactor: 1,
      writeConsistency: 1,
      storageGb: 200,
      cpuRequest: "1",
      memoryRequest: "27Gi",
      memoryLimit: "27Gi",
    },
    monitoring: {
      retentionDays: 30,
      prometheusStorageGb: 50,
      lokiMode: "s3",
      lokiRetentionDays: 14,
      // One t4g.large (8 GiB) holds Prometheus, Alertmanager, Grafana and Loki.
      prometheusReplicas: 1,
      prometheusCpuRequest: "500m",
      prometheusMemoryRequest: "2Gi",
      prometheusMemoryLimit: "3Gi",
    },
    schedule: {
      offPeak: { days: EVERY_DAY, start: "00:00", end: "06:00" }, // G000-OFFPEAK
      offPeakSizes: { generalNodes: 2, gpuNodes: 1, apiMinReplicas: 2, ollamaReplicas: 1 },
      workHoursOnly: null,
    },
    backups: { ...RETENTION, qdrantSnapshotCron: "0 3 * * *", glacierAfterDays: 30, expireAfterDays: 400 },
    budget: { monthlyUsd: 2750 },
    guide: { monthlyUsd: 2000, reference: "000 Deployment Sizes: Small Production, 3-5 servers, 1 GPU, $2,000/month" },
  },

  // G000-AWS (~$5,680/month) and G000-HW-MED.
  medium: {
    name: "medium",
    gpu: true,
    network: { azCount: 3, natGateways: "perAz", publicIngress: true, perIpRequestsPerMinute: PER_IP_REQUESTS_PER_MINUTE },
    nodeGroups: {
      // G000-AWS "API Servers: c6i.2xlarge, Count: 3-5": the Graviton c7g.2xlarge has the same 8 vCPU / 16 GiB for
      // 15 % less (multi-arch API image). The guide prices 5; we run 3 and the autoscaler goes to 5 at peak.
      general: { instanceTypes: ["c7g.2xlarge"], capacityType: "ON_DEMAND", min: 3, desired: 3, max: 5, diskGb: 50 },
      // G000-AWS "Vector DB: EC2 r6i.2xlarge, Count: 3" -> r7g.2xlarge: same 8 vCPU / 64 GiB, Graviton, 15 % less.
      vector: { instanceTypes: ["r7g.2xlarge"], capacityType: "ON_DEMAND", min: 3, desired: 3, max: 3, diskGb: 30 },
      // G000-AWS "GPU Inference: EC2 g5.4xlarge (NVIDIA A10G), Count: 2" -> g5.2xlarge: the same A10G 24 GB, 8 vCPU /
      // 32 GiB (Ollama serves from the GPU; the 16 vCPU / 64 GiB of the 4xlarge sat idle). 2 by day, 3 at peak.
      gpu: { instanceTypes: ["g5.2xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 2, max: 3, diskGb: 100 },
      // G000-AWS "Monitoring: EC2 t3.large" -> t4g.large (2 vCPU / 8 GiB, standard credits: never billed beyond the hour).
      monitoring: { instanceTypes: ["t4g.large"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 1, diskGb: 30 },
    },
    database: {
      // G000-AWS "RDS PostgreSQL db.r6i.2xlarge Multi-AZ"; G000-HW-MED "Primary: 8 cores, 32GB RAM" -> db.m7g.2xlarge
      // Multi-AZ (8 vCPU / 32 GiB, Graviton). G000-HW-MED "Primary + Replica, 1TB SSD".
      instanceClass: "db.m7g.2xlarge",
      allocatedStorageGb: 500,
      maxAllocatedStorageGb: 1000,
      multiAz: true,
      readReplicas: 1,
      // G000-HW-MED "Replica: 8 cores, 32GB": db.r6g.xlarge is 4 vCPU / 32 GiB (Graviton). The API does not read from
      // it: a session read just after a question must show its turn, which replication lag could hide. It serves
      // reports and an operator's reads away from the primary (stack output dbReplicaAddresses).
      replicaInstanceClass: "db.r6g.xlarge",
      backupRetentionDays: 14,
      performanceInsights: true,
      deletionProtection: true,
      maxConnections: 400,
    },
    // G000-AWS "Redis: ElastiCache r6g.large"; a second node for automatic failover.
    cache: { nodeType: "cache.r6g.large", nodes: 2, snapshotRetentionDays: 7 },
    registry: { keepImages: 50 },
    // G000-HPA minReplicas 3 maxReplicas 10.
    api: {
      minReplicas: 3,
      maxReplicas: 10,
      cpuRequest: "1",
      memoryRequest: "1Gi",
      cpuLimit: "2",
      memoryLimit: "2Gi",
      dbPoolMax: DB_POOL_MAX,
      turnRetentionDays: TURN_RETENTION_DAYS,
    },
    ollama: { replicas: 2, ...GPU_OLLAMA, cpuRequest: "4" },
    // G000-HW-MED "Qdrant (cluster): 3 nodes: 8 cores, 32GB RAM, 500GB SSD each".
    // Two copies of every shard: a drain or a zone outage leaves one; one acknowledgement keeps writes
    // available while a peer is down. Requests == limits on the 64 GiB r7g.2xlarge (infra/capacity.ts).
    qdrant: {
      replicas: 3,
      replicationFactor: 2,
      writeConsistency: 1,
      storageGb: 500,
      cpuRequest: "2",
      memoryRequest: "56Gi",
      memoryLimit: "56Gi",
    },
    monitoring: {
      retentionDays: 30,
      prometheusStorageGb: 100,
      lokiMode: "s3",
      lokiRetentionDays: 30, // G000-PROM
      prometheusReplicas: 1,
      prometheusCpuRequest: "500m",
      prometheusMemoryRequest: "3Gi",
      prometheusMemoryLimit: "4Gi",
    },
    schedule: {
      offPeak: { days: EVERY_DAY, start: "00:00", end: "06:00" }, // G000-OFFPEAK
      // G000-OFFPEAK "api_replicas: 2 (down from 5)", "ollama_replicas: 1 (down from 3)".
      offPeakSizes: { generalNodes: 2, gpuNodes: 1, apiMinReplicas: 2, ollamaReplicas: 1 },
      workHoursOnly: null,
    },
    backups: { ...RETENTION, qdrantSnapshotCron: "0 3 * * *", glacierAfterDays: 30, expireAfterDays: 400 },
    budget: { monthlyUsd: 7000 },
    guide: { monthlyUsd: 5680, reference: "000 Self-Hosted on AWS: ~$5,680/month (before data transfer)" },
  },

  // G000-SIZES "Large Production: 20+ servers, 6+ GPUs, $10,000+/month": medium scaled up.
  large: {
    name: "large",
    gpu: true,
    network: { azCount: 3, natGateways: "perAz", publicIngress: true, perIpRequestsPerMinute: PER_IP_REQUESTS_PER_MINUTE },
    nodeGroups: {
      general: { instanceTypes: ["c7g.2xlarge"], capacityType: "ON_DEMAND", min: 6, desired: 6, max: 12, diskGb: 50 },
      // G000-HW-MED Qdrant nodes (8 cores, 32GB) scaled out rather than up: 5 x r7g.2xlarge.
      vector: { instanceTypes: ["r7g.2xlarge"], capacityType: "ON_DEMAND", min: 5, desired: 5, max: 5, diskGb: 30 },
      gpu: { instanceTypes: ["g5.2xlarge"], capacityType: "ON_DEMAND", min: 2, desired: 6, max: 10, diskGb: 100 },
      monitoring: { instanceTypes: ["t4g.xlarge"], capacityType: "ON_DEMAND", min: 2, desired: 2, max: 2, diskGb: 30 },
    },
    database: {
      instanceClass: "db.r6g.4xlarge",
      allocatedStorageGb: 1000,
      maxAllocatedStorageGb: 4000,
      multiAz: true,
      readReplicas: 1,
      replicaInstanceClass: "db.r6g.2xlarge",
      backupRetentionDays: 30,
      performanceInsights: true,
      deletionProtection: true,
      maxConnections: 800,
    },
    cache: { nodeType: "cache.r6g.xlarge", nodes: 3, snapshotRetentionDays: 14 },
    registry: { keepImages: 100 },
    api: {
      minReplicas: 6,
      maxReplicas: 30,
      cpuRequest: "1",
      memoryRequest: "1Gi",
      cpuLimit: "2",
      memoryLimit: "2Gi",
      dbPoolMax: DB_POOL_MAX,
      turnRetentionDays: TURN_RETENTION_DAYS,
    },
    ollama: { replicas: 6, ...GPU_OLLAMA, cpuRequest: "4" },
    // Three copies, two acknowledgements: a write survives one peer down and is on a majority.
    qdrant: {
      replicas: 5,
      replicationFactor: 3,
      writeConsistency: 2,
      storageGb: 1000,
      cpuRequest: "4",
      memoryRequest: "56Gi",
      memoryLimit: "56Gi",
    },
    monitoring: {
      retentionDays: 30,
      prometheusStorageGb: 250,
      lokiMode: "s3",
      lokiRetentionDays: 30,
      // Two t4g.xlarge monitoring nodes: one Prometheus replica on each.
      prometheusReplicas: 2,
      prometheusCpuRequest: "1",
      prometheusMemoryRequest: "6Gi",
      prometheusMemoryLimit: "8Gi",
    },
    schedule: {
      offPeak: { days: EVERY_DAY, start: "00:00", end: "06:00" },
      offPeakSizes: { generalNodes: 4, gpuNodes: 2, apiMinReplicas: 4, ollamaReplicas: 2 },
      workHoursOnly: null,
    },
    backups: { ...RETENTION, qdrantSnapshotCron: "0 3 * * *", glacierAfterDays: 30, expireAfterDays: 400 },
    budget: { monthlyUsd: 17000 },
    guide: { monthlyUsd: 10000, reference: "000 Deployment Sizes: Large Production, 20+ servers, 6+ GPUs, $10,000+/month" },
  },
};

export function isTierName(name: string | undefined): name is TierName {
  return (TIER_NAMES as readonly string[]).includes(name ?? "");
}

/** Every EC2, RDS and ElastiCache type a tier (or any smaller tier) is sized with: the policy pack's allow-list. */
export function instanceTypeAllowList(tier: TierName): string[] {
  const upTo = TIER_NAMES.slice(0, TIER_NAMES.indexOf(tier) + 1).map((t) => TIERS[t]);
  const types = upTo.flatMap((t) => [
    ...Object.values(t.nodeGroups).flatMap((g) => g?.instanceTypes ?? []),
    t.database.instanceClass,
    t.database.replicaInstanceClass,
    t.cache.nodeType,
    ...(t.network.natGateways === "instance" ? [NAT_INSTANCE_TYPE] : []),
  ]);
  return [...new Set(types)].sort();
}
