// The offline plan's data model: what the mocked program registered, and what the cost estimator
// and the policy pack read. The JSON shape is the contract in ../shared/DESIGN.md ("Offline plan").

/** A resource the program registered, as the engine would have seen it. */
export interface PlannedResource {
  /** Pulumi type token, e.g. "aws:eks/nodeGroup:NodeGroup". */
  type: string;
  /** Logical name passed to the constructor. */
  name: string;
  urn: string;
  /** URN of the parent (component) resource, if any. */
  parent?: string;
  /** Top-level component ("network", "cluster", ...) this resource belongs to; "stack" for roots. */
  component: string;
  /** Inputs with secrets replaced by SECRET_PLACEHOLDER. */
  inputs: Record<string, unknown>;
  /** Whether the resource is a custom (cloud) resource or a component. */
  custom: boolean;
  /** URNs this resource waits for on create (and that wait for it on delete): explicit dependsOn plus every input's source. */
  dependsOn?: string[];
  /** Input property -> URNs of the resources its value comes from (as in `pulumi preview --json` states). */
  propertyDependencies?: Record<string, string[]>;
  /** Resource options that matter for review. */
  options: {
    protect?: boolean;
    ignoreChanges?: string[];
    retainOnDelete?: boolean;
    /** Inputs whose change makes the engine replace the resource rather than update it (for fields the API refuses to update). */
    replaceOnChanges?: string[];
    /**
     * Replaced delete-first: the engine deletes the old resource before it creates the new one (by default it creates
     * the new one first, which a fixed physical name or a resource AWS keys by its parent refuses).
     */
    deleteBeforeReplace?: boolean;
    /** Earlier names (or URNs) the engine takes as this resource, so a rename keeps what a stack already has. */
    aliases?: string[];
    /** How long the engine waits for a create, update or delete ("16m"); the provider's default when absent. */
    customTimeouts?: { create?: string; update?: string; delete?: string };
  };
  /**
   * In a first preview only: the outputs the engine holds for it (what a stack policy reads), each value not known yet
   * UNKNOWN_VALUE; none at all for a Kubernetes object, whose cluster does not exist yet. Elsewhere outputs are inputs.
   */
  outputs?: Record<string, unknown>;
}

export const SECRET_PLACEHOLDER = "[secret]";

/**
 * Pulumi's wire value for "known only after apply" (sdk/nodejs/runtime/rpc.ts `unknownValue`): in a first preview's
 * inputs (runPlan `firstPreview`), and as the engine hands it to the policy pack (@pulumi/policy proxy.js
 * `unknownStringValue`).
 */
export const UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export interface CostItem {
  type: string;
  name: string;
  component: string;
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  detail?: string;
}

export interface CostReport {
  currency: "USD";
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  items: CostItem[];
  /** Resource types in the plan with no price and no "free" entry; never silently $0. */
  unpriced: { type: string; name: string }[];
  [extra: string]: unknown;
}

export interface PolicyViolation {
  policy: string;
  resource: string;
  level: "mandatory" | "advisory";
  message: string;
}

/** A stack policy that read resources a first preview has no outputs for: it passes there, and judges at `up`'s end. */
export interface BlindPolicy {
  policy: string;
  /** URNs of the resources it read, all without outputs (Kubernetes objects of a cluster not created yet). */
  resources: string[];
}

export interface PolicyReport {
  violations: PolicyViolation[];
  /** On a first preview (Plan.firstPreview): the stack policies that could not see what they judge. */
  blindOnFirstPreview?: BlindPolicy[];
  [extra: string]: unknown;
}

/** Usage assumptions: the quantities a plan cannot tell (traffic, data volumes), monthly averages. */
export interface Usage {
  /** GB processed by all NAT gateways together (model and package downloads, external APIs; S3 goes through the gateway endpoint). */
  natGbPerMonth: number;
  /** Average load balancer capacity units per ALB per hour (guide 000: ALB "~$20/month + data transfer"). */
  albLcuPerHour: number;
  /** Average NLB capacity units per NLB per hour (only for Services of type LoadBalancer). */
  nlbLcuPerHour: number;
  /** Requests per month reaching the API's ALB, each inspected by its AWS WAF web ACL (blocked ones included). */
  apiRequestsPerMonth: number;
  /** GB ingested per month into each CloudWatch log group, by a substring of its logical name; `default` for the rest. */
  logGbPerMonth: { default: number; byName: Record<string, number> };
  /** GB per month RDS exports to CloudWatch Logs (postgresql log) when `enabledCloudwatchLogsExports` is set. */
  rdsLogGbPerMonth: number;
  /** GB of recovery points in each AWS Backup vault (RDS snapshots; 7 daily, 4 weekly, 12 monthly, incremental). */
  backupGb: number;
  /**
   * GB of EBS recovery points kept per GB of backed-up volume (Qdrant's): incremental snapshots store the used
   * blocks once plus what changed between the 23 kept points; 1.0 means "about one volume's size".
   */
  ebsBackupGbPerVolumeGb: number;
  /** Average CPU (0-1) of a burstable (T-family) instance, for the surplus credits of unlimited mode. */
  burstableCpuUtilization: number;
  /** GB of ElastiCache snapshots beyond the one free snapshot per cluster. */
  snapshotGb: number;
  /** Per S3 bucket, by a substring of its logical name; `default` for the rest. */
  s3: { default: S3Usage; byName: Record<string, S3Usage> };
  /** GB of images in each ECR repository (the lifecycle policy keeps the last N). */
  ecrGb: number;
}

export interface S3Usage {
  /** GB in S3 Standard (Loki chunks, Qdrant snapshots, recent backups). */
  standardGb: number;
  /** GB after the lifecycle rule moved them to Glacier Flexible Retrieval. */
  glacierGb: number;
}

/**
 * The stack's configuration as the program resolved it (tier merged with overrides): the facts cost and
 * policy need beside the resources. Both read these, never a tier preset; `tier` is a label only.
 */
export interface PlanConfig {
  tier: string;
  region: string;
  /** IANA time zone every schedule of the stack is read in. */
  timeZone: string;
  budget: { monthlyUsd: number };
  usage: Usage;
  /** The guide's own monthly figure for this size, shown beside the estimate. */
  guide?: { monthlyUsd: number; reference: string };
}

export interface Plan {
  stack: string;
  /** The tier's name, a label (same as config.tier). */
  tier: string;
  region: string;
  /** Resolved stack config; null for a plan made from resources alone (then no budget and no usage-based prices). */
  config: PlanConfig | null;
  resources: PlannedResource[];
  /** Stack outputs, secrets shown as SECRET_PLACEHOLDER. */
  outputs: Record<string, unknown>;
  cost: CostReport | null;
  policies: PolicyReport | null;
  /**
   * The plan as the first `pulumi preview` of a new stack sees it (runPlan `firstPreview`): every value the cloud
   * computes unknown, and the policy pack run as the engine runs it then (policy/offline.ts).
   */
  firstPreview?: boolean;
}
