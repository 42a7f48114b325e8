// Typed, validated stack configuration. `parseStackConfig` is pure (raw key/value map in, typed config
// out) so tests and the offline plan can check every bad-config case without running Pulumi.
import { z } from "zod";
import { DAYS, TIER_NAMES, TIERS, type Tier, type TierName } from "./tiers.ts";

export const PROJECT = "agent-stack";

const count = z.number().int().min(0);
const positive = z.number().int().min(1);
const quantity = z.string().regex(/^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$/, "a Kubernetes quantity like 500m, 2 or 512Mi");
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "a time HH:MM (00:00-23:59)");
const cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, "an IPv4 CIDR like 203.0.113.0/24");

const nodeGroup = z
  .object({
    instanceTypes: z.array(z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, "an EC2 instance type like c6i.2xlarge")).min(1),
    capacityType: z.enum(["ON_DEMAND", "SPOT"]),
    min: count,
    desired: count,
    max: positive,
    diskGb: z.number().int().min(20),
  })
  .strict()
  .superRefine((g, ctx) => {
    if (g.min > g.max) ctx.addIssue({ code: "custom", path: ["min"], message: `${g.min} is above max ${g.max}; needs min <= desired <= max` });
    else if (g.desired < g.min || g.desired > g.max) {
      ctx.addIssue({ code: "custom", path: ["desired"], message: `${g.desired} is outside min ${g.min}..max ${g.max}; needs min <= desired <= max` });
    }
  });

const window = z
  .object({ days: z.array(z.enum(DAYS)).min(1), start: hhmm, end: hhmm })
  .strict()
  .superRefine((w, ctx) => {
    if (w.start === w.end) ctx.addIssue({ code: "custom", path: ["end"], message: `${w.end} equals start; a window's start and end must differ` });
  });

const tierSchema = z
  .object({
    name: z.enum(TIER_NAMES),
    network: z.object({ azCount: z.number().int().min(2).max(3), natGateways: z.enum(["single", "perAz"]) }).strict(),
    nodeGroups: z
      .object({ general: nodeGroup, vector: nodeGroup.nullable(), gpu: nodeGroup.nullable(), monitoring: nodeGroup.nullable() })
      .strict(),
    database: z
      .object({
        instanceClass: z.string().regex(/^db\.[a-z0-9]+\.[a-z0-9]+$/, "an RDS class like db.r6i.2xlarge"),
        allocatedStorageGb: z.number().int().min(20),
        maxAllocatedStorageGb: z.number().int().min(20),
        multiAz: z.boolean(),
        readReplicas: count.max(5),
        backupRetentionDays: z.number().int().min(1).max(35),
        performanceInsights: z.boolean(),
        deletionProtection: z.boolean(),
        maxConnections: z.number().int().min(20),
      })
      .strict()
      .superRefine((d, ctx) => {
        if (d.allocatedStorageGb > d.maxAllocatedStorageGb) {
          ctx.addIssue({
            code: "custom",
            path: ["allocatedStorageGb"],
            message: `${d.allocatedStorageGb} is above maxAllocatedStorageGb ${d.maxAllocatedStorageGb}`,
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
        memoryRequest: quantity,
        cpuLimit: quantity,
        memoryLimit: quantity,
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.minReplicas > a.maxReplicas) {
          ctx.addIssue({ code: "custom", path: ["minReplicas"], message: `${a.minReplicas} is above maxReplicas ${a.maxReplicas}` });
        }
      }),
    ollama: z
      .object({
        replicas: count,
        gpu: z.boolean(),
        models: z.object({ small: z.string(), default: z.string(), large: z.string(), embed: z.string() }).strict(),
        storageGb: positive,
        cpuRequest: quantity,
        memoryRequest: quantity,
        memoryLimit: quantity,
      })
      .strict(),
    qdrant: z
      .object({ replicas: positive, storageGb: positive, cpuRequest: quantity, memoryRequest: quantity, memoryLimit: quantity })
      .strict(),
    monitoring: z
      .object({
        retentionDays: positive,
        prometheusStorageGb: positive,
        lokiMode: z.enum(["singleBinary", "s3"]),
        lokiRetentionDays: positive,
      })
      .strict(),
    schedule: z
      .object({
        timezone: z.string().superRefine((tz, ctx) => {
          if (!isIanaTimeZone(tz)) ctx.addIssue({ code: "custom", message: `"${tz}" is not an IANA time zone; allowed: names like Europe/Berlin or UTC` });
        }),
        offPeak: window.nullable(),
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
        qdrantSnapshotCron: z.string().regex(/^(\S+\s+){4}\S+$/, "a five-field cron expression"),
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
        ctx.addIssue({ code: "custom", path: ["schedule", "offPeakSizes", key], message: `${sizes[key]} is above the peak size ${peakKey} = ${peak}` });
      }
    };
    atMost("generalNodes", t.nodeGroups.general.desired, "nodeGroups.general.desired");
    atMost("gpuNodes", t.nodeGroups.gpu?.desired ?? 0, "nodeGroups.gpu.desired");
    atMost("apiMinReplicas", t.api.minReplicas, "api.minReplicas");
    atMost("ollamaReplicas", t.ollama.replicas, "ollama.replicas");
    if (t.ollama.gpu && !t.nodeGroups.gpu) {
      ctx.addIssue({ code: "custom", path: ["ollama", "gpu"], message: "true needs a gpu node group; set nodeGroups.gpu or ollama.gpu: false" });
    }
  });

const stackSchema = z
  .object({
    tier: z.enum(TIER_NAMES),
    /** Deep partial of the tier, merged over it, then validated as a whole. */
    overrides: z.record(z.string(), z.unknown()).default({}),
    kubernetesVersion: z.string().regex(/^1\.\d{2}$/, "a Kubernetes minor version like 1.33").default("1.33"),
    endpointPublicAccessCidrs: z.array(cidr).default(["0.0.0.0/0"]),
    flowLogs: z.boolean().default(false),
    domain: z.string().regex(/^([a-z0-9-]+\.)+[a-z]{2,}$/, "a DNS name like agents.example.com").optional(),
    notifyEmail: z.email().optional(),
    restore: z.object({ rdsSnapshotId: z.string().min(1).optional() }).strict().default({}),
    ci: z.object({ githubRepo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, "owner/name").optional() }).strict().default({}),
  })
  .strict();

/** Every plain key the program reads under our namespace. */
export const STACK_KEYS = Object.keys(stackSchema.shape);

/** Keys under our namespace that hold secrets; read with `requireSecret`, never parsed into plain config. */
export const SECRET_KEYS = ["alertSlackWebhookUrl", "alertPagerdutyKey"] as const;

export type StackSettings = Omit<z.infer<typeof stackSchema>, "overrides">;
export interface StackConfig extends StackSettings {
  stack: string;
  region: string;
  tier: TierName;
  sizes: Tier;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Raw config as Pulumi holds it ("<namespace>:<key>" -> string, objects JSON-encoded) to typed config.
 * Throws one ConfigError listing every problem, each naming the key, the bad value and what is allowed.
 */
export function parseStackConfig(raw: Record<string, string>, stack: string): StackConfig {
  const ours: Record<string, unknown> = {};
  for (const [fullKey, value] of Object.entries(raw)) {
    const [ns, key] = splitKey(fullKey);
    if (ns !== PROJECT || (SECRET_KEYS as readonly string[]).includes(key)) continue;
    ours[key] = decode(value);
  }
  const region = raw["aws:region"];
  const problems: string[] = [];
  if (!region) problems.push(`aws:region is not set; set it with \`pulumi config set aws:region us-east-1\``);

  const settings = stackSchema.safeParse(ours);
  if (!settings.success) {
    problems.push(...settings.error.issues.map((i) => describe(i, ours, `${PROJECT}:`, stackSchema)));
    throw new ConfigError(problems.join("\n"));
  }
  const base = TIERS[settings.data.tier];
  const merged = deepMerge(base, settings.data.overrides);
  const sizes = tierSchema.safeParse(merged);
  if (!sizes.success) {
    problems.push(...sizes.error.issues.map((i) => describe(i, merged, `${PROJECT}:overrides.`, tierSchema)));
  }
  if (problems.length > 0 || !sizes.success) throw new ConfigError(problems.join("\n"));
  const { overrides: _overrides, ...rest } = settings.data;
  return { ...rest, stack, region: region!, sizes: sizes.data as Tier };
}

function splitKey(fullKey: string): [string, string] {
  const i = fullKey.indexOf(":");
  return i < 0 ? ["", fullKey] : [fullKey.slice(0, i), fullKey.slice(i + 1)];
}

/** Pulumi stores structured values as JSON strings; plain strings stay strings. */
function decode(value: string): unknown {
  if (/^\s*[[{]/.test(value) || /^(true|false|-?\d+(\.\d+)?)$/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isIanaTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (isPlainObject(v) || Array.isArray(v) ? (v as any)[k as any] : undefined), root);
}

/** Keys the schema accepts at `path`, for "unknown key" messages. */
function allowedKeys(schema: z.ZodType, path: PropertyKey[]): string[] {
  let s: any = schema;
  for (const k of path) {
    s = unwrap(s);
    s = s?.shape?.[k as string] ?? s?.element;
  }
  s = unwrap(s);
  return s?.shape ? Object.keys(s.shape) : [];
}

function unwrap(s: any): any {
  while (s?.def && ["pipe", "nullable", "optional", "default"].includes(s.def.type)) s = s.def.innerType ?? s.def.in;
  return s;
}

function describe(issue: z.core.$ZodIssue, root: unknown, prefix: string, schema: z.ZodType): string {
  const key = prefix + issue.path.map(String).join(".");
  const got = valueAt(root, issue.path);
  const shown = JSON.stringify(got);
  switch (issue.code) {
    case "unrecognized_keys": {
      const allowed = allowedKeys(schema, issue.path).join(", ");
      return issue.keys.map((k) => `${prefix}${[...issue.path, k].join(".")} is not a known key; allowed: ${allowed}`).join("\n");
    }
    case "invalid_value": {
      const allowed = issue.values.map(String).join(", ");
      return got === undefined ? `${key} is required; allowed: ${allowed}` : `${key}: ${shown} is not allowed; allowed: ${allowed}`;
    }
    case "too_small":
      return `${key}: got ${shown}; allowed: ${issue.origin === "array" ? "at least" : ">="} ${issue.minimum}${issue.origin === "array" ? " items" : ""}`;
    case "too_big":
      return `${key}: got ${shown}; allowed: <= ${issue.maximum}`;
    case "invalid_type":
      return got === undefined ? `${key} is required (${issue.expected})` : `${key}: got ${shown}; allowed: ${issue.expected}`;
    case "custom":
      return `${key}: ${issue.message}`;
    default:
      return `${key}: got ${shown}; allowed: ${issue.message}`;
  }
}
