// Typed, validated stack configuration. `parseStackConfig` is pure (raw key/value map in, typed config
// out) so tests and the offline plan can check every bad-config case without running Pulumi.
import { Region } from "@pulumi/aws/types/enums/index.js";
import { z } from "zod";
import { ANY_ORIGIN, ORIGIN_FORM, originListProblem, originsOf } from "../app/src/origins.ts";
import type { PlanConfig } from "./plan/types.ts";
import { tierSchema } from "./tier-schema.ts";
import { TIER_NAMES, TIERS, type Tier, type TierName } from "./tiers.ts";
import { defaultTimeZone, isIanaTimeZone } from "./time.ts";
import { USAGE } from "./usage.ts";

export const PROJECT = "agent-stack";
/** EKS version: in standard support until 2027-03 (extended support costs $0.60/h instead of $0.10/h). */
export const KUBERNETES_VERSION = "1.35";

/**
 * The regions the pinned AWS provider knows (its Region enum). Any other name reaches no AWS endpoint, so every call of
 * `pulumi up` fails (the provider's own region check is off by default). A region newer than the pin needs a newer
 * @pulumi/aws.
 */
const AWS_REGIONS: readonly string[] = Object.values(Region);

/**
 * `<project>-<stack>` names the stack's RDS and ElastiCache identifiers, EKS cluster, S3 buckets, ECR repository,
 * backup vault and IAM roles (stack.ts `prefix`). Their common ground: lowercase letters and digits with single
 * hyphens between them (RDS and ElastiCache identifiers: no "--", no hyphen at the end; S3 and ECR: lowercase; EKS,
 * KMS aliases, SNS and backup vaults: no "."), and ElastiCache's replication group id, at most 40 characters
 * (terraform-provider-aws elasticache/replication_group.go validateReplicationGroupID), is the shortest limit. The
 * mocks take any name; AWS takes these only.
 */
const STACK_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** `<project>-<stack>`: the start of the stack's AWS names. */
export const stackPrefix = (stack: string) => `${PROJECT}-${stack}`;

const STACK_NAME_MAX = 40 - stackPrefix("").length;

/** The stack's S3 buckets, by purpose: the Qdrant snapshots and exports, and Loki's chunks. */
export const STACK_BUCKETS = ["backups", "logs"] as const;
export type StackBucket = (typeof STACK_BUCKETS)[number];
/** `<prefix>-<purpose>-<account>`: S3 names are global, and the account id keeps two accounts' stacks of a name apart. */
export const stackBucketName = (prefix: string, purpose: StackBucket, accountId: string) => `${prefix}-${purpose}-${accountId}`;

/** Why a stack of this name cannot name its AWS resources, or undefined when it can. */
function stackNameProblem(stack: string): string | undefined {
  const names = `the stack's AWS names are ${PROJECT}-<stack> (RDS, ElastiCache, EKS, S3, ECR, backup vault, IAM)`;
  if (!STACK_NAME.test(stack))
    return `stack "${stack}": use lowercase letters and digits, with single hyphens between them; ${names}`;
  if (stack.length > STACK_NAME_MAX)
    return `stack "${stack}": ${stack.length} characters, at most ${STACK_NAME_MAX}: ElastiCache's replication group id ${stackPrefix(stack)} takes 40; ${names}`;
  return undefined;
}

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
/** Octets of 0-255 and a prefix of 0-32: `999.1.1.1/99` passed a digits-only pattern (a policy then called it outside 0.0.0.0/0). */
const CIDR = new RegExp(`^(${OCTET}\\.){3}${OCTET}/(3[0-2]|[12]?\\d)$`);

/** The network a CIDR names, as AWS writes it: `10.0.128.5/24` -> `10.0.128.0/24`. */
function networkOf(cidr: string): string {
  const [ip, bits] = cidr.split("/");
  const value = ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  const network = value - (value % 2 ** (32 - Number(bits)));
  return `${[24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256).join(".")}/${bits}`;
}

/**
 * With its host bits zero: EKS's public access CIDRs and a security group rule's cidr_ipv4 take only a network
 * address (terraform-provider-aws: verify.ValidCIDRNetworkAddress on public_access_cidrs in eks/cluster.go), so
 * `10.0.128.5/24` passed the plan and failed at up.
 */
const cidr = z
  .string()
  .regex(CIDR, "an IPv4 CIDR like 203.0.113.0/24")
  .refine((c) => !CIDR.test(c) || networkOf(c) === c, {
    error: (issue) => `a network address: ${issue.input} has host bits set; its network is ${networkOf(String(issue.input))}`,
  });
const cidrList = z.array(cidr).refine((list) => new Set(list).size === list.length, "each CIDR once");

const stackSchema = z
  .object({
    tier: z.enum(TIER_NAMES),
    /** Deep partial of the tier, merged over it, then validated as a whole. */
    overrides: z.record(z.string(), z.unknown()).default({}),
    kubernetesVersion: z
      .string()
      .regex(/^1\.\d{2}$/, "a Kubernetes minor version like 1.35")
      .default(KUBERNETES_VERSION),
    /** CIDRs the public EKS endpoint admits; [] turns it off. Default: open in dev, off in production tiers. */
    endpointPublicAccessCidrs: cidrList.optional(),
    /**
     * CIDRs inside the VPC (or reaching it by peering or VPN) that may call the private EKS endpoint, such as a deploy
     * runner's subnet; the cluster security group admits only its own members otherwise.
     */
    endpointPrivateAccessCidrs: cidrList
      .refine(
        (list) => list.every((c) => !CIDR.test(c) || Number(c.split("/")[1]) >= 8),
        "the networks that call the endpoint, each /8 or narrower (10.0.0.0/8 is the widest private range): not the whole address space in parts",
      )
      .default([]),
    flowLogs: z.boolean().default(false),
    /** IANA zone every schedule (off-peak, work hours, backups) is read in; default: the region's (time.ts). */
    timeZone: z
      .string()
      .refine(isIanaTimeZone, "an IANA time zone with its exact spelling, like America/New_York, Europe/Berlin or UTC")
      .optional(),
    /** The Ingress's host: a DNS-1123 subdomain (labels of a-z, 0-9 and inner '-', at most 63; 253 in all). */
    domain: z
      .string()
      .regex(
        /^(?=.{1,64}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/,
        "a DNS name like agents.example.com, at most 64 characters (ACM's limit for a certificate's domain name)",
      )
      .optional(),
    /** Route 53 hosted zone of `domain`: the certificate's validation records go there, in the same `pulumi up`. */
    hostedZoneId: z
      .string()
      .regex(/^Z[A-Z0-9]{1,32}$/, "a Route 53 hosted zone ID like Z0123456789ABCDEFGHIJ")
      .optional(),
    /** Serve the API's /docs and /openapi.json (the app's DOCS_ENABLED); off by default. */
    docsEnabled: z.boolean().default(false),
    /**
     * Origins whose pages may call the API from a browser (the app's CORS_ORIGINS): one, a list, or "*" alone; none by
     * default (no CORS header). Checked by the app's own rule (app/src/origins.ts): a value it refuses stopped every
     * pod of the rollout instead of the plan.
     */
    corsOrigins: z
      .union([z.string(), z.array(z.string())], {
        error: `an origin ${ORIGIN_FORM}, a list of them, or "${ANY_ORIGIN}"`,
      })
      // A string is read as the variable is, comma-separated.
      .transform(originsOf)
      .superRefine((origins, ctx) => {
        const problem = originListProblem(origins);
        if (problem === undefined) return;
        ctx.addIssue({ code: "custom", message: `${problem}; allowed: origins ${ORIGIN_FORM}, or "${ANY_ORIGIN}" alone` });
      })
      .default([]),
    /** Backup Vault Lock: governance (default outside dev), compliance (cannot be undone after 3 days), off (dev default). */
    backupVaultLock: z.enum(["governance", "compliance", "off"]).optional(),
    /** One address or a list: each is subscribed to the stack's SNS topic (alerts and budget). */
    notifyEmail: z.union([z.email(), z.array(z.email()).min(1)]).optional(),
    /**
     * Activate the `stack` cost allocation tag the budget filters on. Off in an AWS Organizations member account: only
     * the management (payer) account may activate one (a member's `pulumi up` was refused, AccessDeniedException).
     */
    activateCostTag: z.boolean().default(true),
    /**
     * SNS topic for budget alerts in place of the stack's (AWS Budgets: one SNS subscriber per notification); the budget
     * then mails the notifyEmail addresses itself. Its policy must let budgets.amazonaws.com publish.
     */
    budgetSnsTopicArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/,
        "an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:budget-alerts",
      )
      .optional(),
    restore: z
      .object({ rdsSnapshotId: z.string().min(1).optional() })
      .strict()
      .default({}),
    ci: z
      .object({
        githubRepo: z
          .string()
          .regex(/^[\w.-]+\/[\w.-]+$/, "owner/name")
          .optional(),
        /** This stack creates the account-wide GitHub OIDC provider; exactly one stack per account sets it. */
        ownsOidcProvider: z.boolean().default(false),
        /** The account's GitHub OIDC provider; without it (and not the owner) the stack looks it up by URL. */
        oidcProviderArn: z
          .string()
          .regex(
            /^arn:aws:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/,
            "the ARN of the token.actions.githubusercontent.com OIDC provider",
          )
          .optional(),
      })
      .strict()
      .default({ ownsOidcProvider: false }),
  })
  .strict();

/** E-mail subscribers AWS Budgets takes per notification (with one SNS topic). */
export const MAX_BUDGET_EMAILS = 10;

/** Every plain key the program reads under our namespace. */
export const STACK_KEYS = Object.keys(stackSchema.shape);

/** Keys under our namespace that hold secrets; read with `requireSecret`, never parsed into plain config. */
export const SECRET_KEYS = ["alertSlackWebhookUrl", "alertPagerdutyKey"] as const;

export type StackSettings = Omit<z.infer<typeof stackSchema>, "overrides" | "timeZone">;
export interface StackConfig extends StackSettings {
  stack: string;
  region: string;
  tier: TierName;
  /** The stack's `timeZone`, else its region's. */
  timeZone: string;
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
    ours[key] = expectsString(key) ? value : decode(value);
  }
  const region = raw["aws:region"];
  const problems: string[] = [];
  const badName = stackNameProblem(stack);
  if (badName) problems.push(badName);
  if (!region) problems.push(`aws:region is not set; set it with \`pulumi config set aws:region us-east-1\``);
  else if (!AWS_REGIONS.includes(region))
    problems.push(`aws:region: "${region}" is not an AWS region; allowed: ${AWS_REGIONS.join(", ")}`);

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
  problems.push(...crossKeyProblems(settings.data));
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  const { overrides: _overrides, timeZone, ...rest } = settings.data;
  return { ...rest, stack, region: region!, timeZone: timeZone ?? defaultTimeZone(region!), sizes: sizes.data };
}

/** What the plan records of the resolved config: the facts cost and policy read instead of a tier preset. */
export function planConfigOf(config: StackConfig): PlanConfig {
  return {
    tier: config.sizes.name,
    region: config.region,
    timeZone: config.timeZone,
    budget: { ...config.sizes.budget },
    // By the tier's name, as its tag carries it: the budget policy under the engine reads the same (policy/lib/tier-usage.ts).
    usage: structuredClone(USAGE[config.sizes.name]),
    guide: { ...config.sizes.guide },
  };
}

/** Rules between keys (each message names the keys and what to set). */
function crossKeyProblems(s: z.infer<typeof stackSchema>): string[] {
  const problems: string[] = [];
  if (s.domain && !s.hostedZoneId) {
    problems.push(
      `${PROJECT}:domain is set but ${PROJECT}:hostedZoneId is not: the ALB cannot use a certificate that is not validated; ` +
        `set ${PROJECT}:hostedZoneId to the Route 53 hosted zone of ${s.domain} (the validation records are created there)`,
    );
  }
  if (s.hostedZoneId && !s.domain)
    problems.push(`${PROJECT}:hostedZoneId is set without ${PROJECT}:domain; set the DNS name the API is served on`);
  // AWS Budgets: "each notification can have one SNS subscriber and up to 10 email subscribers" (Budgets API Reference,
  // CreateBudget NotificationsWithSubscribers); with this topic in the stack's place, the budget mails the addresses.
  const emails = notifyEmails(s).length;
  if (s.budgetSnsTopicArn && emails > MAX_BUDGET_EMAILS) {
    problems.push(
      `${PROJECT}:budgetSnsTopicArn: with it the budget mails each ${PROJECT}:notifyEmail address itself, and AWS Budgets takes at most ${MAX_BUDGET_EMAILS} per notification (got ${emails}); list at most ${MAX_BUDGET_EMAILS}, or subscribe them to that topic and unset notifyEmail`,
    );
  }
  if (s.ci.ownsOidcProvider && s.ci.oidcProviderArn) {
    problems.push(
      `${PROJECT}:ci.ownsOidcProvider and ${PROJECT}:ci.oidcProviderArn: the owner creates the provider, the others name it; set one`,
    );
  }
  return problems;
}

/** The addresses of `notifyEmail`, one or many. */
export function notifyEmails(config: Pick<StackSettings, "notifyEmail">): string[] {
  const v = config.notifyEmail;
  // Once each: one address listed twice made two Pulumi resources of one SNS subscription.
  return v === undefined ? [] : Array.isArray(v) ? [...new Set(v)] : [v];
}

/** The alert secrets set to a value: an empty one is no receiver (Alertmanager would get an empty URL or key). */
export const configuredSecrets = (raw: Record<string, string>): Array<(typeof SECRET_KEYS)[number]> =>
  SECRET_KEYS.filter((k) => (raw[`${PROJECT}:${k}`] ?? "") !== "");

/**
 * A stack must reach a person: an e-mail for the SNS topic, or a Slack or PagerDuty secret. Checked when the
 * stack is built (the plan fails with this message), not by parseStackConfig, which also serves partial configs.
 */
export function requireAlertReceiver(config: StackConfig, raw: Record<string, string>): void {
  if (notifyEmails(config).length > 0 || configuredSecrets(raw).length > 0) return;
  throw new ConfigError(
    `stack ${config.stack} has no alert receiver, so alerts and budget warnings would reach nobody; set ${PROJECT}:notifyEmail ` +
      `(an address or a list, subscribed to the stack's SNS topic: \`pulumi config set ${PROJECT}:notifyEmail oncall@example.com\`), ` +
      `or a secret ${SECRET_KEYS.map((k) => `${PROJECT}:${k}`).join(" or ")} (\`pulumi config set --secret ...\`)`,
  );
}

function splitKey(fullKey: string): [string, string] {
  const i = fullKey.indexOf(":");
  return i < 0 ? ["", fullKey] : [fullKey.slice(0, i), fullKey.slice(i + 1)];
}

/**
 * Whether the schema takes `key` as a string: its value is kept as typed. Decoded, `pulumi config set
 * agent-stack:kubernetesVersion 1.36` was the number 1.36 and refused ("allowed: string"), and 1.30 would be 1.3.
 */
function expectsString(key: string): boolean {
  let t = (stackSchema.shape as Record<string, z.ZodType | undefined>)[key];
  while (t && (t instanceof z.ZodOptional || t instanceof z.ZodDefault)) t = t.unwrap() as z.ZodType;
  return t instanceof z.ZodString;
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
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : likeBase(base, over);
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  return out;
}

/**
 * `pulumi config set --path` may store 8 or true as strings, and stores integers as numbers ("integers are treated as
 * numbers": Pulumi CLI docs, `pulumi config set`); read each as the type the tier has there. A CPU quantity of 2 is the string "2".
 */
function likeBase(base: unknown, over: unknown): unknown {
  if (typeof base === "string" && (typeof over === "number" || typeof over === "boolean")) return String(over);
  if (typeof over !== "string") return over;
  if (typeof base === "number" && /^-?\d+(\.\d+)?$/.test(over)) return Number(over);
  if (typeof base === "boolean" && (over === "true" || over === "false")) return over === "true";
  return over;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
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
      return got === undefined
        ? `${key} is required; allowed: ${allowed}`
        : `${key}: ${shown} is not allowed; allowed: ${allowed}`;
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
