// The tier schema: every size a stack can override, with the rules that span sections (off-peak sizes
// within peak sizes, schedules that fit work hours, backup timing). The `Tier` type is inferred from it;
// infra/tiers.ts holds the values, infra/config.ts merges overrides over a tier and validates the result.
import { z } from "zod";
import { tuningProblem } from "./postgres-tuning.ts";
import {
  CronError,
  DAYS,
  describeWindow,
  firingMinutesOfWeek,
  hhmmOf,
  minutesOf,
  type Window,
  windowLength,
  windowRanges,
} from "./time.ts";

/** S3 Glacier Flexible Retrieval's minimum storage duration (S3 pricing: objects deleted sooner are billed for it). */
const GLACIER_MINIMUM_DAYS = 90;
/**
 * The weekly maintenance windows (an hour each), local: database.ts and cache.ts print them at the zone's standard
 * time, so in summer they come an hour later. They end by 06:00, when the tiers' off-peak ends, in summer too: from
 * 04:30 and 05:00 they ran into the first peak hour for the eight months of daylight time (an RDS Multi-AZ failover, an
 * ElastiCache node replaced). The database's starts as its backup window (RDS_BACKUP_START) ends, which RDS takes (it
 * refuses an overlap only; terraform-aws-modules/rds's examples do the same); ElastiCache's, before its snapshot window
 * (CACHE_SNAPSHOT_START), hours away from the database's.
 */
export const DB_MAINTENANCE = { day: "SUN", start: "04:00" } as const;
export const CACHE_MAINTENANCE = { day: "SUN", start: "00:30" } as const;
/** The daily backup windows (an hour each, local, at standard time): RDS's of an always-on tier, ElastiCache's. */
export const RDS_BACKUP_START = "03:00";
export const CACHE_SNAPSHOT_START = "02:00";
/** How far into a work-hours-only tier's hours RDS's daily backup window starts (backups.ts rdsBackupWindow). */
export const RDS_BACKUP_AFTER_WORK_START = 60;

export const TIER_NAMES = ["dev", "small", "medium", "large"] as const;
export type TierName = (typeof TIER_NAMES)[number];

/**
 * The smallest Ollama context window the API can use: its prompt (instructions, a question of up to 5,000 characters
 * and the sources) and its longest answer (MAX_ANSWER_TOKENS, 1,024) share the window (app/src/config.ts).
 */
export const MIN_CONTEXT_LENGTH = 4096;

const count = z.number().int().min(0);
const positive = z.number().int().min(1);
/** A Kubernetes quantity as the tiers write one: a number, then millis or a binary suffix. */
const QUANTITY = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$/;
/** Memory: bytes or a binary suffix (capacity.ts quantityMib reads it); "m" would be millibytes. */
export const MEMORY_QUANTITY = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)?$/;
const quantity = z.string().regex(QUANTITY, "a Kubernetes quantity like 500m, 2 or 512Mi");
const memory = z.string().regex(MEMORY_QUANTITY, "a memory quantity like 512Mi or 4Gi");
/**
 * A quantity in whole thousandths of its base unit (millicores, millibytes), so 700m and 0.7 compare equal; undefined
 * for one its field's own pattern refuses (zod runs the refinements below after a failed pattern too).
 */
function milliUnits(q: string): number | undefined {
  const m = QUANTITY.exec(q);
  if (!m) return undefined;
  const factor: Record<string, number> = {
    "": 1e3,
    m: 1,
    Ki: 1e3 * 2 ** 10,
    Mi: 1e3 * 2 ** 20,
    Gi: 1e3 * 2 ** 30,
    Ti: 1e3 * 2 ** 40,
  };
  return Math.round(Number(m[1]) * factor[m[2] ?? ""]!);
}
/** Kubernetes refuses a container whose request exceeds its limit (core/v1 validation, ValidateResourceRequirements). */
function requestWithinLimit(ctx: z.RefinementCtx, request: [string, string], limit: [string, string]): void {
  const [asked, most] = [milliUnits(request[1]), milliUnits(limit[1])];
  if (asked !== undefined && most !== undefined && asked > most)
    ctx.addIssue({
      code: "custom",
      path: [request[0]],
      message: `${request[1]} is above ${limit[0]} ${limit[1]}; Kubernetes needs request <= limit`,
    });
}
/** RDS for PostgreSQL gp3 storage: 20-65,536 GiB (RDS User Guide, "Amazon RDS DB instance storage"). */
const RDS_GP3_MAX_GB = 65_536;
const RDS_CLASS = /^db\.[a-z0-9]+\.[a-z0-9]+$/;
/**
 * A name `ollama pull` takes: [host/][namespace/]model[:tag], of letters, digits, '_', '-' and '.' (none in a
 * namespace; a host's port after ':'), no "..", at most 128 characters in all (ollama/ollama types/model/name.go
 * ParseName, isValidByteFor). Each part starts with a letter, digit or '_': the models are pulled by `ollama pull
 * <name>` in the pod's shell, where a leading '-' is a flag.
 */
const ollamaModel = z
  .string()
  .max(128)
  .regex(
    /^(?!.*\.\.)(?:(?:\w[\w.:-]*\/)?\w[\w-]*\/)?\w[\w.-]*(?::\w[\w.-]*)?$/,
    "an Ollama model name like llama3.1:8b ([host/][namespace/]model[:tag])",
  );

/** EBS gp3 volumes: 1-16,384 GiB (EBS User Guide, "Amazon EBS volume types"). */
const EBS_GP3_MAX_GB = 16_384;
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "a time HH:MM (00:00-23:59)");

const nodeGroup = z
  .object({
    instanceTypes: z.array(z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, "an EC2 instance type like c6i.2xlarge")).min(1),
    capacityType: z.enum(["ON_DEMAND", "SPOT"]),
    min: count,
    desired: count,
    max: positive,
    diskGb: z.number().int().min(20).max(EBS_GP3_MAX_GB),
  })
  .strict()
  .superRefine((g, ctx) => {
    if (g.min > g.max)
      ctx.addIssue({ code: "custom", path: ["min"], message: `${g.min} is above max ${g.max}; needs min <= desired <= max` });
    else if (g.desired < g.min || g.desired > g.max) {
      ctx.addIssue({
        code: "custom",
        path: ["desired"],
        message: `${g.desired} is outside min ${g.min}..max ${g.max}; needs min <= desired <= max`,
      });
    }
  });

const window = z
  .object({ days: z.array(z.enum(DAYS)).min(1), start: hhmm, end: hhmm })
  .strict()
  .superRefine((w, ctx) => {
    if (w.start === w.end)
      ctx.addIssue({ code: "custom", path: ["end"], message: `${w.end} equals start; a window's start and end must differ` });
  });

export const tierSchema = z
  .object({
    name: z.enum(TIER_NAMES),
    /** The tier has GPU nodes (nodeGroups.gpu) and Ollama runs on them: the one answer to "is there a GPU?". */
    gpu: z.boolean(),
    network: z
      .object({
        azCount: z.number().int().min(2).max(3),
        natGateways: z.enum(["single", "perAz", "instance"]),
        /**
         * The API's public entry: an internet-facing ALB (an Ingress through the AWS Load Balancer Controller).
         * false (dev only): no Ingress, no ALB; the API is reached with `kubectl port-forward` (README "Reaching the API").
         */
        publicIngress: z.boolean(),
        /**
         * The AWS WAF web ACL in front of that ALB: requests per minute one client IP may send before WAF answers
         * 429 itself, so a flood from one address never reaches the API pods (min 10: AWS WAF's lowest rate limit).
         * null: no web ACL (required when there is no public entry).
         */
        perIpRequestsPerMinute: z.number().int().min(10).max(2_000_000_000).nullable(),
      })
      .strict(),
    nodeGroups: z
      .object({ general: nodeGroup, vector: nodeGroup.nullable(), gpu: nodeGroup.nullable(), monitoring: nodeGroup.nullable() })
      .strict(),
    database: z
      .object({
        instanceClass: z.string().regex(RDS_CLASS, "an RDS class like db.r6i.2xlarge"),
        allocatedStorageGb: z.number().int().min(20).max(RDS_GP3_MAX_GB),
        maxAllocatedStorageGb: z.number().int().min(20).max(RDS_GP3_MAX_GB),
        multiAz: z.boolean(),
        readReplicas: count.max(5),
        replicaInstanceClass: z.string().regex(RDS_CLASS, "an RDS class like db.r6i.xlarge"),
        backupRetentionDays: z.number().int().min(1).max(35),
        performanceInsights: z.boolean(),
        deletionProtection: z.boolean(),
        // PostgreSQL's MAX_BACKENDS (2^18 - 1); each class tuned must also leave work_mem its 64 kB (postgres-tuning.ts).
        maxConnections: z.number().int().min(20).max(262_143),
      })
      .strict()
      .superRefine((d, ctx) => {
        // Each class gets a parameter group of its own tuning; the replica's only when it has one of its own.
        const tuned = d.readReplicas > 0 ? (["instanceClass", "replicaInstanceClass"] as const) : (["instanceClass"] as const);
        // zod runs this after a class's failed pattern too: that class is already refused.
        for (const key of tuned.filter((k) => RDS_CLASS.test(d[k]))) {
          const problem = tuningProblem(d[key], d.maxConnections);
          if (!problem) continue;
          const [path, message] =
            problem.on === "class" ? [key, problem.message] : ["maxConnections", `${problem.message}, or a larger ${key}`];
          ctx.addIssue({ code: "custom", path: [path], message });
        }
        // RDS: "The maximum allocated storage must be increased by at least 10 percent" (InvalidParameterCombination).
        const leastMax = Math.ceil((d.allocatedStorageGb * 11) / 10);
        if (d.maxAllocatedStorageGb < leastMax) {
          ctx.addIssue({
            code: "custom",
            path: ["maxAllocatedStorageGb"],
            message: `${d.maxAllocatedStorageGb} is less than 10 % above allocatedStorageGb ${d.allocatedStorageGb}; RDS needs at least ${leastMax}`,
          });
        }
      }),
    cache: z
      .object({
        nodeType: z.string().regex(/^cache\.[a-z0-9]+\.[a-z0-9]+$/, "an ElastiCache node type like cache.r6g.large"),
        nodes: z.number().int().min(1).max(6),
        snapshotRetentionDays: z.number().int().min(0).max(35),
      })
      .strict(),
    registry: z.object({ keepImages: positive }).strict(),
    api: z
      .object({
        minReplicas: positive,
        maxReplicas: positive,
        cpuRequest: quantity,
        memoryRequest: memory,
        cpuLimit: quantity,
        memoryLimit: memory,
        /** Postgres connections each API pod's pool may open (the app's DB_POOL_MAX); infra/capacity.ts sums them. */
        dbPoolMax: z.number().int().min(1).max(1000),
        /** Days a turn (question, answer, feedback) is kept: the app's TURN_RETENTION_DAYS; 0 keeps every turn. */
        turnRetentionDays: z.number().int().min(0).max(36_500),
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.minReplicas > a.maxReplicas) {
          ctx.addIssue({
            code: "custom",
            path: ["minReplicas"],
            message: `${a.minReplicas} is above maxReplicas ${a.maxReplicas}`,
          });
        }
        requestWithinLimit(ctx, ["cpuRequest", a.cpuRequest], ["cpuLimit", a.cpuLimit]);
        requestWithinLimit(ctx, ["memoryRequest", a.memoryRequest], ["memoryLimit", a.memoryLimit]);
      }),
    ollama: z
      .object({
        replicas: count,
        models: z.object({ small: ollamaModel, default: ollamaModel, large: ollamaModel, embed: ollamaModel }).strict(),
        numParallel: positive.max(16),
        contextLength: z.number().int().min(MIN_CONTEXT_LENGTH).max(131072),
        kvCacheType: z.enum(["f16", "q8_0"]),
        storageGb: positive,
        cpuRequest: quantity,
        memoryRequest: memory,
        memoryLimit: memory,
      })
      .strict()
      .superRefine((o, ctx) => {
        if (o.memoryRequest !== o.memoryLimit) {
          ctx.addIssue({
            code: "custom",
            path: ["memoryRequest"],
            message: `${o.memoryRequest} differs from memoryLimit ${o.memoryLimit}; Ollama's requests must equal its limits (Guaranteed QoS, never squeezed)`,
          });
        }
      }),
    qdrant: z
      .object({
        replicas: positive,
        replicationFactor: positive,
        writeConsistency: positive,
        storageGb: positive.max(EBS_GP3_MAX_GB),
        cpuRequest: quantity,
        memoryRequest: memory,
        memoryLimit: memory,
      })
      .strict()
      .superRefine((q, ctx) => {
        const issue = (key: string, message: string) => ctx.addIssue({ code: "custom", path: [key], message });
        if (q.replicationFactor > q.replicas)
          issue(
            "replicationFactor",
            `${q.replicationFactor} is above replicas ${q.replicas}; a shard has at most one copy per peer`,
          );
        else if (q.replicas >= 2 && q.replicationFactor < 2)
          issue(
            "replicationFactor",
            `${q.replicationFactor} keeps one copy of each shard on ${q.replicas} peers, so a drain takes data offline; needs >= 2`,
          );
        if (q.writeConsistency > q.replicationFactor)
          issue(
            "writeConsistency",
            `${q.writeConsistency} is above replicationFactor ${q.replicationFactor}; needs 1..replicationFactor`,
          );
        if (q.memoryRequest !== q.memoryLimit)
          issue(
            "memoryRequest",
            `${q.memoryRequest} differs from memoryLimit ${q.memoryLimit}; Qdrant's requests must equal its limits (Guaranteed QoS, never squeezed)`,
          );
      }),
    monitoring: z
      .object({
        retentionDays: positive,
        prometheusStorageGb: positive.max(EBS_GP3_MAX_GB),
        prometheusReplicas: z.number().int().min(1).max(3),
        prometheusCpuRequest: quantity,
        prometheusMemoryRequest: memory,
        prometheusMemoryLimit: memory,
        lokiMode: z.enum(["singleBinary", "s3"]),
        lokiRetentionDays: positive,
      })
      .strict()
      .superRefine((m, ctx) =>
        requestWithinLimit(
          ctx,
          ["prometheusMemoryRequest", m.prometheusMemoryRequest],
          ["prometheusMemoryLimit", m.prometheusMemoryLimit],
        ),
      ),
    schedule: z
      .object({
        offPeak: window.nullable(),
        // apiMinReplicas >= 1: it is the API autoscaler's minReplicas, which may be 0 only behind Kubernetes' alpha
        // HPAScaleToZero gate (HorizontalPodAutoscalerSpec.minReplicas).
        offPeakSizes: z
          .object({ generalNodes: count, gpuNodes: count, apiMinReplicas: positive, ollamaReplicas: count })
          .strict(),
        workHoursOnly: window.nullable(),
      })
      .strict(),
    backups: z
      .object({
        daily: z.object({ keepDays: positive }).strict(),
        weekly: z.object({ keepWeeks: positive }).strict(),
        monthly: z.object({ keepMonths: positive }).strict(),
        qdrantSnapshotCron: z.string().superRefine((expr, ctx) => {
          const parsed = cronFiringMinutes(expr);
          if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
        }),
        glacierAfterDays: positive,
        expireAfterDays: positive,
      })
      .strict(),
    budget: z.object({ monthlyUsd: z.number().positive() }).strict(),
    guide: z.object({ monthlyUsd: z.number(), reference: z.string() }).strict(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const sizes = t.schedule.offPeakSizes;
    const atMost = (key: keyof typeof sizes, peak: number, peakKey: string) => {
      if (sizes[key] > peak) {
        ctx.addIssue({
          code: "custom",
          path: ["schedule", "offPeakSizes", key],
          message: `${sizes[key]} is above the peak size ${peakKey} = ${peak}`,
        });
      }
    };
    atMost("generalNodes", t.nodeGroups.general.desired, "nodeGroups.general.desired");
    atMost("gpuNodes", t.nodeGroups.gpu?.desired ?? 0, "nodeGroups.gpu.desired");
    atMost("apiMinReplicas", t.api.minReplicas, "api.minReplicas");
    atMost("ollamaReplicas", t.ollama.replicas, "ollama.replicas");
    if (t.gpu !== (t.nodeGroups.gpu !== null)) {
      const message = t.gpu
        ? "true needs a gpu node group; set nodeGroups.gpu or gpu: false"
        : "false, but nodeGroups.gpu is set; set gpu: true or nodeGroups.gpu: null";
      ctx.addIssue({ code: "custom", path: ["gpu"], message });
    }
    if (t.name !== "dev" && !t.network.publicIngress) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "publicIngress"],
        message: `false in tier ${t.name}: a production tier serves its API through the internet-facing ALB; only dev may go without it (set true)`,
      });
    }
    if (!t.network.publicIngress && t.network.perIpRequestsPerMinute !== null) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "perIpRequestsPerMinute"],
        message: "set, but publicIngress is false: there is no ALB for a web ACL to guard (set null, or publicIngress: true)",
      });
    }
    checkScheduleFits(t, ctx);
    // Each Qdrant peer needs a node of its own (required anti-affinity, workloads/qdrant.ts): more peers than its
    // role's nodes left the rest Pending, and `pulumi up` waited for the StatefulSet until it timed out.
    const role = t.nodeGroups.vector ? "vector" : "general";
    const nodes = (t.nodeGroups.vector ?? t.nodeGroups.general).max;
    if (t.qdrant.replicas > nodes)
      ctx.addIssue({
        code: "custom",
        path: ["qdrant", "replicas"],
        message: `${t.qdrant.replicas} peers need a node each (required anti-affinity), but nodeGroups.${role}.max is ${nodes}`,
      });
  });

export type Tier = z.infer<typeof tierSchema>;
export type NodeGroupSpec = z.infer<typeof nodeGroup>;

/**
 * Minutes from the off-peak start to the node groups' off-peak size (platform/schedules.ts `scaleTo` says why).
 */
export const OFF_PEAK_SETTLE_MINUTES = 20;
/**
 * Minutes before the off-peak end that the peak sizes come back: a GPU node boots and Ollama pulls and loads its models
 * before it serves, and at the end itself the second Ollama pod was still Pending while the peak began (probe U).
 */
export const OFF_PEAK_WARM_UP_MINUTES = 20;
/**
 * The deploy job's longest run: deploy-stack.yml's `timeout-minutes` (pulumi up, the readiness wait, then a rollback's
 * pulumi up and wait again); deploy-window.unit.ts asserts they agree. CI deploys a work-hours-only stack only when the
 * job can end before the hours do (scripts/stack-awake.ts).
 */
export const DEPLOY_JOB_TIMEOUT_MINUTES = 170;
/** The first minutes of the deploy span in which the hourly scheduled run deploys main (deploy.yml, stack-awake.ts). */
export const DEPLOY_CATCH_UP_MINUTES = 60;

/**
 * Minutes of the work hours in which a deploy may start: from the start plus the warm-up (the database starts, a node
 * joins from zero) to the end less the deploy job's longest run. The schema keeps it at least DEPLOY_CATCH_UP_MINUTES.
 */
export const deploySpanMinutes = (w: Window): number => windowLength(w) - OFF_PEAK_WARM_UP_MINUTES - DEPLOY_JOB_TIMEOUT_MINUTES;

/** Schedule rules that span sections: off-peak vs work hours, what must keep running, backup timing. */
function checkScheduleFits(t: Tier, ctx: z.RefinementCtx): void {
  const { offPeak, offPeakSizes, workHoursOnly } = t.schedule;
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
  const shortest = OFF_PEAK_SETTLE_MINUTES + OFF_PEAK_WARM_UP_MINUTES;
  const offPeakMinutes = offPeak ? windowLength(offPeak) : 0;
  // (A window with equal ends is refused as such.)
  if (offPeak && offPeak.start !== offPeak.end && offPeakMinutes <= shortest) {
    issue(
      ["schedule", "offPeak"],
      `${describeWindow(offPeak)} is ${offPeakMinutes} minutes; needs more than ${shortest} (the sizes settle ${OFF_PEAK_SETTLE_MINUTES} minutes after the start and come back ${OFF_PEAK_WARM_UP_MINUTES} before the end)`,
    );
  }
  if (offPeak && t.gpu && offPeakSizes.ollamaReplicas > 0 && offPeakSizes.gpuNodes === 0) {
    issue(
      ["schedule", "offPeakSizes", "gpuNodes"],
      `0 leaves the ${offPeakSizes.ollamaReplicas} off-peak Ollama replica(s) without a GPU node; needs >= 1`,
    );
  }
  // S3 Glacier Flexible Retrieval bills 90 days for an object deleted sooner (its minimum storage duration).
  if (t.backups.expireAfterDays < t.backups.glacierAfterDays + GLACIER_MINIMUM_DAYS) {
    issue(
      ["backups", "expireAfterDays"],
      `${t.backups.expireAfterDays} must be at least glacierAfterDays ${t.backups.glacierAfterDays} + ${GLACIER_MINIMUM_DAYS}: Glacier bills ${GLACIER_MINIMUM_DAYS} days for each object however soon it expires`,
    );
  }
  if (!workHoursOnly) return;
  const work = windowRanges(workHoursOnly);
  const shown = `workHoursOnly (${describeWindow(workHoursOnly)})`;
  if (offPeak && !windowRanges(offPeak).every(([s, e]) => work.some(([ws, we]) => ws <= s && e <= we))) {
    issue(
      ["schedule", "offPeak"],
      `${describeWindow(offPeak)} overlaps the hours outside ${shown}, when everything is off; put it inside work hours or set one of them to null`,
    );
  }
  if (t.database.readReplicas > 0) {
    issue(
      ["database", "readReplicas"],
      `${t.database.readReplicas}: RDS cannot stop an instance with read replicas, and ${shown} stops it at night; needs 0`,
    );
  }
  // RDS's backup window, an hour, starts RDS_BACKUP_AFTER_WORK_START into the hours at standard time and an hour
  // later in summer (backups.ts); the AWS Backup plan runs mid-way through them, and should start an hour after it.
  const rdsStart = minutesOf(workHoursOnly.start) + RDS_BACKUP_AFTER_WORK_START;
  const planAt = minutesOf(workHoursOnly.start) + windowLength(workHoursOnly) / 2;
  if (Math.floor(planAt / 60) * 60 < rdsStart + 60 + 60 + 60) {
    issue(
      ["schedule", "workHoursOnly"],
      `${describeWindow(workHoursOnly)} is too short: the database's backup window (${hhmmOf(rdsStart)}, an hour later in summer) and the AWS Backup run mid-way through the hours need to be an hour apart; give it at least 8 hours`,
    );
  }
  const maintenance = minutesOf(DB_MAINTENANCE.start);
  if (rdsStart % 1440 < maintenance + 60 && maintenance < (rdsStart % 1440) + 60) {
    issue(
      ["schedule", "workHoursOnly", "start"],
      `${workHoursOnly.start} puts the database's backup window (${hhmmOf(rdsStart)}) on its ${DB_MAINTENANCE.day} maintenance window (${DB_MAINTENANCE.start}, an hour), which RDS refuses; start the work hours by ${hhmmOf(maintenance - RDS_BACKUP_AFTER_WORK_START - 60)} or from ${hhmmOf(maintenance + 60 - RDS_BACKUP_AFTER_WORK_START)}`,
    );
  }
  // CI deploys from the start plus the warm-up (the database starts, a node joins from zero) to the end less the deploy
  // job's longest run, and the hourly scheduled run catches up in that span's first hour (scripts/stack-awake.ts).
  const short = DEPLOY_CATCH_UP_MINUTES - deploySpanMinutes(workHoursOnly);
  if (short > 0) {
    issue(
      ["schedule", "workHoursOnly"],
      `${describeWindow(workHoursOnly)} leaves no time to deploy: the stack is ready ${OFF_PEAK_WARM_UP_MINUTES} minutes after the start (OFF_PEAK_WARM_UP_MINUTES), the deploy job may run ${DEPLOY_JOB_TIMEOUT_MINUTES} minutes (deploy-stack.yml timeout-minutes) and must end by the end, and the hourly scheduled deploy needs an hour between; give it at least ${windowLength(workHoursOnly) + short} minutes`,
    );
  }
  const firings = cronFiringMinutes(t.backups.qdrantSnapshotCron);
  if (typeof firings !== "string" && !firings.every((m) => work.some(([ws, we]) => ws <= m && m < we))) {
    issue(
      ["backups", "qdrantSnapshotCron"],
      `"${t.backups.qdrantSnapshotCron}" can fire outside ${shown}, when the cluster is off; pick a time inside work hours`,
    );
  }
}

const CRON_NAMES = /^(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)$/i;
/** Quartz's last-day, weekday and nth-weekday forms: L, 5L, FRIL, LW, 15W, 6#3, MON#1. */
const QUARTZ_ATOM = /^((\d+|[A-Z]{3})?L|LW|\d+W|(\d+|[A-Z]{3})#\d+)$/i;

/** The minutes of the week a five-field cron fires at (time.ts, croner), or why it is not one. */
function cronFiringMinutes(expr: string): number[] | string {
  // The CronJob's schedule is parsed by Kubernetes with robfig/cron's standard parser: numbers, the three-letter
  // names, * ? , - / only. croner also takes L, W and # (Quartz), which the API server refuses.
  // A descriptor (@daily) is left to croner, which names what it does not take.
  if (!expr.startsWith("@")) {
    const odd = expr
      .trim()
      .split(/[\s,/-]+/)
      .find((atom) => /[A-Z#]/i.test(atom) && !CRON_NAMES.test(atom));
    if (odd && QUARTZ_ATOM.test(odd))
      return `"${expr}" uses L, W or # (${odd}), which Kubernetes CronJobs do not take; use numbers, names, *, ',', '-' and '/'`;
    if (odd) return `"${expr}": "${odd}" is neither a number nor a name Kubernetes CronJobs take (JAN-DEC, SUN-SAT)`;
  }
  try {
    const minutes = firingMinutesOfWeek(expr);
    if (minutes.length === 0) return `"${expr}" never fires (no such date); the snapshot would never run`;
    return minutes;
  } catch (err) {
    if (err instanceof CronError) return err.message;
    throw err;
  }
}
