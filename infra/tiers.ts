// Cost-sized tiers. Every number names the guide line it comes from (guides in ../shared/guides/):
//   G000-HW-MIN  000 "Hardware Requirements > Minimum (Development/Small Scale)"
//   G000-HW-MED  000 "Hardware Requirements > Production (Medium Scale, 100 req/min)"
//   G000-AWS     000 "Cloud Provider Options > Self-Hosted on AWS" (~$5,680/month)
//   G000-SIZES   000 "Summary > Deployment Sizes" (dev $50, small $2,000, medium $5,000, large $10,000+)
//   G000-HPA     000 "Scaling Strategies > Auto-Scaling Rules" (HPA 3-10, CPU 70 %, memory 80 %)
//   G000-OFFPEAK 000 "Infrastructure Cost Optimization > scale_down_during_low_traffic" (00:00-06:00, API 5->2, Ollama 3->1)
//   G000-PG      000 "Docker Compose": postgres -c max_connections=200 ... (tuning scaled per instance in platform/database.ts)
//   G000-PROM    000 "Docker Compose": prometheus --storage.tsdb.retention.time=30d
//   G000-BACKUP  000 "Backup and Disaster Recovery": PostgreSQL daily, Qdrant weekly, Redis daily
//   G002-BACKUP  002 "Backup & Recovery": "Retention: 7 daily, 4 weekly, 12 monthly"
// A stack overrides any single value with `agent-stack:overrides` (see infra/config.ts).

export const TIER_NAMES = ["dev", "small", "medium", "large"] as const;
export type TierName = (typeof TIER_NAMES)[number];

export const DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"] as const;
export type Day = (typeof DAYS)[number];

export interface NodeGroupSpec {
  instanceTypes: string[];
  capacityType: "ON_DEMAND" | "SPOT";
  min: number;
  desired: number;
  max: number;
  diskGb: number;
}

/** A recurring window, local time in the schedule's time zone; end may be past midnight (end < start). */
export interface Window {
  days: Day[];
  start: string;
  end: string;
}

export interface Tier {
  name: TierName;
  network: { azCount: number; natGateways: "single" | "perAz" };
  /** null: the group does not exist in this tier. */
  nodeGroups: {
    general: NodeGroupSpec;
    vector: NodeGroupSpec | null;
    gpu: NodeGroupSpec | null;
    monitoring: NodeGroupSpec | null;
  };
  database: {
    instanceClass: string;
    allocatedStorageGb: number;
    maxAllocatedStorageGb: number;
    multiAz: boolean;
    readReplicas: number;
    /** Replicas serve session reads only; the Multi-AZ standby, not a replica, takes over on failure. */
    replicaInstanceClass: string;
    backupRetentionDays: number;
    performanceInsights: boolean;
    deletionProtection: boolean;
    maxConnections: number;
  };
  cache: { nodeType: string; nodes: number; snapshotRetentionDays: number };
  registry: { keepImages: number };
  api: {
    minReplicas: number;
    maxReplicas: number;
    cpuRequest: string;
    memoryRequest: string;
    cpuLimit: string;
    memoryLimit: string;
  };
  ollama: {
    replicas: number;
    gpu: boolean;
    models: { small: string; default: string; large: string; embed: string };
    /** OLLAMA_NUM_PARALLEL and OLLAMA_CONTEXT_LENGTH: the KV cache of every resident model is parallel x context. */
    numParallel: number;
    contextLength: number;
    /** OLLAMA_KV_CACHE_TYPE (q8_0 halves the cache of f16; needs flash attention, which the pod turns on). */
    kvCacheType: "f16" | "q8_0";
    storageGb: number;
    cpuRequest: string;
    memoryRequest: string;
    memoryLimit: string;
  };
  qdrant: {
    replicas: number;
    /** Copies of each shard (collections' replication_factor) and how many must acknowledge a write. */
    replicationFactor: number;
    writeConsistency: number;
    storageGb: number;
    cpuRequest: string;
    memoryRequest: string;
    memoryLimit: string;
  };
  monitoring: {
    retentionDays: number;
    prometheusStorageGb: number;
    prometheusReplicas: number;
    prometheusCpuRequest: string;
    prometheusMemoryRequest: string;
    prometheusMemoryLimit: string;
    lokiMode: "singleBinary" | "s3";
    lokiRetentionDays: number;
  };
  schedule: {
    /** IANA time zone the windows are read in. */
    timezone: string;
    /** Daily scale-down window with the sizes below (G000-OFFPEAK); null: none. */
    offPeak: Window | null;
    offPeakSizes: { generalNodes: number; gpuNodes: number; apiMinReplicas: number; ollamaReplicas: number };
    /** Dev: the whole environment is off outside these hours (node groups to zero, RDS stopped). */
    workHoursOnly: Window | null;
  };
  backups: {
    daily: { keepDays: number };
    weekly: { keepWeeks: number };
    monthly: { keepMonths: number };
    /** Five-field cron of the Qdrant snapshot CronJob, in schedule.timezone; with workHoursOnly it must fire inside them. */
    qdrantSnapshotCron: string;
    glacierAfterDays: number;
    expireAfterDays: number;
  };
  budget: { monthlyUsd: number };
  /** The guide's own monthly figure for this size, shown beside our estimate. */
  guide: { monthlyUsd: number; reference: string };
}

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
const CPU_MODELS = { small: "qwen2.5:0.5b", default: "qwen2.5:1.5b", large: "qwen2.5:1.5b", embed: "nomic-embed-text" };

// G002-BACKUP: 7 daily, 4 weekly, 12 monthly in every tier; AWS Backup storage is cheap next to losing data.
const RETENTION = { daily: { keepDays: 7 }, weekly: { keepWeeks: 4 }, monthly: { keepMonths: 12 } };

export const TIERS: Record<TierName, Tier> = {
  // G000-SIZES "Development: 1 server, no GPU, $50/month". EKS alone is $73/month, so dev cannot reach $50;
  // it gets as close as a managed cluster allows: one node, burstable db/cache, off nights and weekends.
  dev: {
    name: "dev",
    network: { azCount: 2, natGateways: "single" },
    nodeGroups: {
      // One burstable node holds API, Qdrant, CPU Ollama and monitoring: 4 vCPU / 16 GiB.
      general: { instanceTypes: ["t3.xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 2, diskGb: 50 },
      vector: null,
      gpu: null,
      monitoring: null,
    },
    database: {
      instanceClass: "db.t4g.small",
      allocatedStorageGb: 20,
      maxAllocatedStorageGb: 50,
      multiAz: false,
      readReplicas: 0,
      replicaInstanceClass: "db.t4g.small",
      backupRetentionDays: 7,
      performanceInsights: false,
      deletionProtection: false,
      maxConnections: 100,
    },
    cache: { nodeType: "cache.t4g.micro", nodes: 1, snapshotRetentionDays: 1 },
    registry: { keepImages: 10 },
    api: { minReplicas: 1, maxReplicas: 2, cpuRequest: "250m", memoryRequest: "256Mi", cpuLimit: "1", memoryLimit: "512Mi" },
    // Requests == limits (infra/capacity.ts shows they fit the one t3.xlarge beside everything else).
    ollama: { replicas: 1, gpu: false, models: CPU_MODELS, ...CPU_SERVING, storageGb: 20, cpuRequest: "1", memoryRequest: "5Gi", memoryLimit: "5Gi" },
    qdrant: { replicas: 1, replicationFactor: 1, writeConsistency: 1, storageGb: 10, cpuRequest: "250m", memoryRequest: "1Gi", memoryLimit: "1Gi" },
    monitoring: {
      retentionDays: 7, prometheusStorageGb: 20, lokiMode: "singleBinary", lokiRetentionDays: 7,
      prometheusReplicas: 1, prometheusCpuRequest: "200m", prometheusMemoryRequest: "512Mi", prometheusMemoryLimit: "1Gi",
    },
    schedule: {
      timezone: "UTC",
      offPeak: null,
      offPeakSizes: { generalNodes: 1, gpuNodes: 0, apiMinReplicas: 1, ollamaReplicas: 1 },
      workHoursOnly: { days: WEEKDAYS, start: "08:00", end: "20:00" },
    },
    // G000-BACKUP "Qdrant Backup (Weekly)": Wednesday noon, while dev is up (the cluster is off at night and weekends).
    backups: { ...RETENTION, qdrantSnapshotCron: "0 12 * * 3", glacierAfterDays: 30, expireAfterDays: 90 },
    budget: { monthlyUsd: 250 },
    guide: { monthlyUsd: 50, reference: "000 Deployment Sizes: Development, 1 server, no GPU, $50/month" },
  },

  // G000-SIZES "Small Production: 3-5 servers, 1 GPU, $2,000/month"; node sizes from G000-HW-MIN.
  small: {
    name: "small",
    network: { azCount: 3, natGateways: "perAz" },
    nodeGroups: {
      // G000-HW-MIN "API Servers (3x): CPU 4 cores, RAM 8GB, Storage 50GB" -> c6i.xlarge (4 vCPU / 8 GiB).
      general: { instanceTypes: ["c6i.xlarge"], capacityType: "ON_DEMAND", min: 3, desired: 3, max: 5, diskGb: 50 },
      // G000-HW-MIN "Qdrant: 4 cores, 16GB, 200GB" -> r6i.xlarge (4 vCPU / 32 GiB; r6i.large has 2 vCPU).
      vector: { instanceTypes: ["r6i.xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 2, diskGb: 50 },
      // G000-HW-MIN "Ollama: 8 cores, 32GB, T4 or better (16GB VRAM), 100GB" -> g5.2xlarge (A10G 24 GB).
      gpu: { instanceTypes: ["g5.2xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 2, diskGb: 100 },
      // G000-HW-MIN "Monitoring: 4 cores, 8GB" -> t3.large is enough at this scale (G000-AWS uses it for medium).
      monitoring: { instanceTypes: ["t3.large"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 1, diskGb: 50 },
    },
    database: {
      // G000-HW-MIN "PostgreSQL: 4 cores, 16GB, 500GB" -> db.m6i.xlarge; storage grows to 500 GB on demand.
      instanceClass: "db.m6i.xlarge",
      allocatedStorageGb: 100,
      maxAllocatedStorageGb: 500,
      multiAz: true,
      readReplicas: 0,
      replicaInstanceClass: "db.m6i.large",
      backupRetentionDays: 7,
      performanceInsights: true,
      deletionProtection: true,
      maxConnections: 200, // G000-PG
    },
    // G000-HW-MIN "Redis: 2 cores, 4GB" -> cache.m6g.large (2 vCPU / 6.4 GiB), primary + replica.
    cache: { nodeType: "cache.m6g.large", nodes: 2, snapshotRetentionDays: 7 },
    registry: { keepImages: 30 },
    // G000-HPA minReplicas 3 maxReplicas 10; "API Servers (3x)".
    api: { minReplicas: 3, maxReplicas: 10, cpuRequest: "500m", memoryRequest: "512Mi", cpuLimit: "2", memoryLimit: "1Gi" },
    // Requests == limits, sized to the node (arithmetic: infra/capacity.ts, `capacity` stack output).
    ollama: { replicas: 1, gpu: true, models: GPU_MODELS, ...GPU_SERVING, storageGb: 100, cpuRequest: "2", memoryRequest: "24Gi", memoryLimit: "24Gi" },
    qdrant: { replicas: 1, replicationFactor: 1, writeConsistency: 1, storageGb: 200, cpuRequest: "1", memoryRequest: "27Gi", memoryLimit: "27Gi" },
    monitoring: {
      retentionDays: 30, prometheusStorageGb: 50, lokiMode: "s3", lokiRetentionDays: 14,
      // One t3.large (8 GiB) holds Prometheus, Alertmanager, Grafana and Loki.
      prometheusReplicas: 1, prometheusCpuRequest: "500m", prometheusMemoryRequest: "2Gi", prometheusMemoryLimit: "3Gi",
    },
    schedule: {
      timezone: "UTC",
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
    network: { azCount: 3, natGateways: "perAz" },
    nodeGroups: {
      // G000-AWS "API Servers: c6i.2xlarge, Count: 3-5"; the guide prices 5, we run 3 and allow 5.
      general: { instanceTypes: ["c6i.2xlarge"], capacityType: "ON_DEMAND", min: 3, desired: 3, max: 5, diskGb: 100 },
      // G000-AWS "Vector DB: EC2 r6i.2xlarge, Count: 3".
      vector: { instanceTypes: ["r6i.2xlarge"], capacityType: "ON_DEMAND", min: 3, desired: 3, max: 3, diskGb: 50 },
      // G000-AWS "GPU Inference: EC2 g5.4xlarge (NVIDIA A10G), Count: 2".
      gpu: { instanceTypes: ["g5.4xlarge"], capacityType: "ON_DEMAND", min: 1, desired: 2, max: 3, diskGb: 200 },
      // G000-AWS "Monitoring: EC2 t3.large".
      monitoring: { instanceTypes: ["t3.large"], capacityType: "ON_DEMAND", min: 1, desired: 1, max: 1, diskGb: 50 },
    },
    database: {
      // G000-AWS "RDS PostgreSQL db.r6i.2xlarge Multi-AZ"; G000-HW-MED "Primary + Replica, 1TB SSD".
      instanceClass: "db.r6i.2xlarge",
      allocatedStorageGb: 500,
      maxAllocatedStorageGb: 1000,
      multiAz: true,
      readReplicas: 1,
      // G000-HW-MED "Replica: 8 cores, 32GB": db.r6i.xlarge is 4 vCPU / 32 GiB, half the primary's price.
      replicaInstanceClass: "db.r6i.xlarge",
      backupRetentionDays: 14,
      performanceInsights: true,
      deletionProtection: true,
      maxConnections: 400,
    },
    // G000-AWS "Redis: ElastiCache r6g.large"; a second node for automatic failover.
    cache: { nodeType: "cache.r6g.large", nodes: 2, snapshotRetentionDays: 7 },
    registry: { keepImages: 50 },
    // G000-HPA minReplicas 3 maxReplicas 10.
    api: { minReplicas: 3, maxReplicas: 10, cpuRequest: "1", memoryRequest: "1Gi", cpuLimit: "2", memoryLimit: "2Gi" },
    ollama: { replicas: 2, gpu: true, models: GPU_MODELS, ...GPU_SERVING, storageGb: 200, cpuRequest: "4", memoryRequest: "24Gi", memoryLimit: "24Gi" },
    // G000-HW-MED "Qdrant (cluster): 3 nodes: 8 cores, 32GB RAM, 500GB SSD each".
    // Two copies of every shard: a drain or a zone outage leaves one; one acknowledgement keeps writes
    // available while a peer is down. Requests == limits on the 64 GiB r6i.2xlarge (infra/capacity.ts).
    qdrant: { replicas: 3, replicationFactor: 2, writeConsistency: 1, storageGb: 500, cpuRequest: "2", memoryRequest: "56Gi", memoryLimit: "56Gi" },
    monitoring: {
      retentionDays: 30, prometheusStorageGb: 100, lokiMode: "s3", lokiRetentionDays: 30, // G000-PROM
      prometheusReplicas: 1, prometheusCpuRequest: "500m", prometheusMemoryRequest: "3Gi", prometheusMemoryLimit: "4Gi",
    },
    schedule: {
      timezone: "UTC",
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
    network: { azCount: 3, natGateways: "perAz" },
    nodeGroups: {
      general: { instanceTypes: ["c6i.2xlarge"], capacityType: "ON_DEMAND", min: 6, desired: 6, max: 12, diskGb: 100 },
      // G000-HW-MED Qdrant nodes (8 cores, 32GB) scaled out rather than up: 5 x r6i.2xlarge.
      vector: { instanceTypes: ["r6i.2xlarge"], capacityType: "ON_DEMAND", min: 5, desired: 5, max: 5, diskGb: 50 },
      gpu: { instanceTypes: ["g5.4xlarge"], capacityType: "ON_DEMAND", min: 2, desired: 6, max: 10, diskGb: 200 },
      monitoring: { instanceTypes: ["t3.xlarge"], capacityType: "ON_DEMAND", min: 2, desired: 2, max: 2, diskGb: 50 },
    },
    database: {
      instanceClass: "db.r6i.4xlarge",
      allocatedStorageGb: 1000,
      maxAllocatedStorageGb: 4000,
      multiAz: true,
      readReplicas: 1,
      replicaInstanceClass: "db.r6i.2xlarge",
      backupRetentionDays: 30,
      performanceInsights: true,
      deletionProtection: true,
      maxConnections: 800,
    },
    cache: { nodeType: "cache.r6g.xlarge", nodes: 3, snapshotRetentionDays: 14 },
    registry: { keepImages: 100 },
    api: { minReplicas: 6, maxReplicas: 30, cpuRequest: "1", memoryRequest: "1Gi", cpuLimit: "2", memoryLimit: "2Gi" },
    ollama: { replicas: 6, gpu: true, models: GPU_MODELS, ...GPU_SERVING, storageGb: 200, cpuRequest: "4", memoryRequest: "24Gi", memoryLimit: "24Gi" },
    // Three copies, two acknowledgements: a write survives one peer down and is on a majority.
    qdrant: { replicas: 5, replicationFactor: 3, writeConsistency: 2, storageGb: 1000, cpuRequest: "4", memoryRequest: "56Gi", memoryLimit: "56Gi" },
    monitoring: {
      retentionDays: 30, prometheusStorageGb: 250, lokiMode: "s3", lokiRetentionDays: 30,
      // Two t3.xlarge monitoring nodes: one Prometheus replica on each.
      prometheusReplicas: 2, prometheusCpuRequest: "1", prometheusMemoryRequest: "6Gi", prometheusMemoryLimit: "8Gi",
    },
    schedule: {
      timezone: "UTC",
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

/** The tier a plan or report names, if it is one of ours. */
export function tierNamed(name: string | undefined): Tier | undefined {
  return isTierName(name) ? TIERS[name] : undefined;
}
