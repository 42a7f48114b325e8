// Cost guards: instance types from the tier's allow-list (lib/instance-types.ts, generated from the tiers),
// GPU types only in the tainted gpu node group, and the stack's estimated monthly cost (infra/cost) within the
// budget the stack resolved (the plan's config, else its AWS Budget).
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { estimateCost, unpricedRegion } from "../../infra/cost/index.ts";
import type { Plan, PlannedResource } from "../../infra/plan/types.ts";
import type { OfflineStackArgs } from "../lib/offline-args.ts";
import { INSTANCE_TYPES } from "../lib/instance-types.ts";
import { TIER_USAGE } from "../lib/tier-usage.ts";
import { AWS_PROVIDER_TYPE, stackTierOf, tierOf } from "../lib/tier.ts";
import { ofTypes, validateResourceOfTypes } from "../lib/validate.ts";
import { asArray, asNumber, asRecord, decodeJson, knownProps } from "../lib/values.ts";

const TIER_NAMES = Object.keys(INSTANCE_TYPES);
const isTierName = (tier: string | undefined): tier is string => tier !== undefined && Object.hasOwn(INSTANCE_TYPES, tier);

/** Every EC2, RDS and ElastiCache type a tier (or any smaller tier) is sized with. */
export function tierAllowList(tier: string): string[] {
  return INSTANCE_TYPES[tier] ?? [];
}

/** The instance types a resource asks for, by type token. */
const SIZED: Record<string, (props: Record<string, any>) => string[]> = {
  "aws:eks/nodeGroup:NodeGroup": (p) => asArray<string>(p.instanceTypes),
  "aws:ec2/launchTemplate:LaunchTemplate": (p) => asArray<string>(p.instanceType),
  "aws:ec2/instance:Instance": (p) => asArray<string>(p.instanceType),
  "aws:autoscaling/group:Group": (p) =>
    asArray<any>(p.mixedInstancesPolicy?.launchTemplate?.overrides)
      .map((o) => o.instanceType)
      .filter(Boolean),
  "aws:rds/instance:Instance": (p) => asArray<string>(p.instanceClass),
  "aws:rds/clusterInstance:ClusterInstance": (p) => asArray<string>(p.instanceClass),
  "aws:elasticache/replicationGroup:ReplicationGroup": (p) => asArray<string>(p.nodeType),
  "aws:elasticache/cluster:Cluster": (p) => asArray<string>(p.nodeType),
};

export const instanceTypesAllowed: ResourceValidationPolicy = {
  name: "instance-types-allowed",
  description:
    "EC2, RDS and ElastiCache types come from the allow-list of the stack's tier (the types infra/tiers.ts sizes that tier and smaller ones with).",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      tier: { type: "string", description: "The stack's tier; default: the `tier` tag in the AWS provider's defaultTags." },
      additionalTypes: {
        type: "array",
        items: { type: "string" },
        default: [],
        description: "Types allowed on top of the tier's list (for a reviewed override).",
      },
    },
  },
  validateResource: validateResourceOfTypes(Object.keys(SIZED), (props, args, report) => {
    const config = args.getConfig<{ tier?: string; additionalTypes: string[] }>();
    const types = SIZED[args.type](props);
    if (types.length === 0) return;
    const tier = tierOf(config, args.provider, props);
    if (!isTierName(tier)) {
      report(
        `cannot tell the tier (${tier ?? "no tier tag"}): tag the AWS provider's defaultTags with tier=${TIER_NAMES.join("|")} or set this policy's tier.`,
      );
      return;
    }
    const allowed = new Set([...tierAllowList(tier), ...config.additionalTypes]);
    const outside = types.filter((t) => !allowed.has(t));
    if (outside.length > 0) {
      report(
        `${outside.join(", ")} not allowed in tier ${tier}; allowed: ${[...allowed].join(", ")} (add reviewed exceptions to this policy's additionalTypes).`,
      );
    }
  }),
};

interface GpuConfig {
  gpuTypePattern: string;
  gpuRoleLabel: string;
  gpuRole: string;
}

export const gpuOnlyInGpuGroup: ResourceValidationPolicy = {
  name: "gpu-only-in-gpu-group",
  description:
    "GPU instance types appear only in the gpu node group, which holds nothing but GPU types and is tainted so other pods stay off it.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      gpuTypePattern: {
        type: "string",
        default: "^(g[0-9][a-z]*|p[0-9][a-z]*|gr[0-9]|inf[0-9]|trn[0-9]|dl[0-9][a-z]*)\\.",
        description: "Regular expression matching GPU/accelerator instance types.",
      },
      gpuRoleLabel: { type: "string", default: "role", description: "Node label naming a node group's role." },
      gpuRole: { type: "string", default: "gpu", description: "Role label value of the gpu group." },
    },
  },
  validateResource: validateResourceOfTypes(
    ["aws:eks/nodeGroup:NodeGroup", "aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"],
    (props, args, report) => {
      const config = args.getConfig<GpuConfig>();
      const isGpuType = (t: string) => new RegExp(config.gpuTypePattern).test(t);
      const types = SIZED[args.type](props);
      if (args.type !== "aws:eks/nodeGroup:NodeGroup") {
        const gpu = types.filter(isGpuType);
        if (gpu.length > 0)
          report(`GPU type ${gpu.join(", ")} outside an EKS gpu node group; GPU capacity belongs in the gpu group.`);
        return;
      }
      const inGpuGroup = asRecord(props.labels)[config.gpuRoleLabel] === config.gpuRole;
      if (!inGpuGroup) {
        const gpu = types.filter(isGpuType);
        if (gpu.length > 0)
          report(
            `GPU type ${gpu.join(", ")} in a node group labelled ${config.gpuRoleLabel}=${asRecord(props.labels)[config.gpuRoleLabel] ?? "(none)"}; only the ${config.gpuRole} group may use GPUs.`,
          );
        return;
      }
      const cpuOnly = types.filter((t) => !isGpuType(t));
      if (cpuOnly.length > 0) report(`the gpu group includes non-GPU types ${cpuOnly.join(", ")}.`);
      const tainted = asArray<any>(props.taints).some((t) => t.effect === "NO_SCHEDULE" || t.effect === "NO_EXECUTE");
      if (!tainted) report("the gpu group has no NO_SCHEDULE taint, so any pod can take the expensive GPU nodes.");
    },
  ),
};

/** The project, from a URN. */
function projectOf(urn: string): string {
  return /^urn:pulumi:[^:]*::([^:]+)::/.exec(urn)?.[1] ?? "";
}

/** Top-level component ("network", "cluster", ...) above a resource; "stack" for roots. */
function componentOf(resource: PolicyResource): string {
  let root = resource;
  while (root.parent && root.parent.type !== "pulumi:pulumi:Stack") root = root.parent;
  return root.type.startsWith(`${projectOf(root.urn)}:`) ? root.name : "stack";
}

/** The stack, rebuilt from a stack policy's resources as the cost estimator reads it. */
function planFromResources(resources: PolicyResource[], tier: string | undefined): Plan {
  const provider = resources.find((r) => r.type === AWS_PROVIDER_TYPE);
  const stack = /^urn:pulumi:([^:]+)::/.exec(resources[0]?.urn ?? "")?.[1] ?? "";
  const planned: PlannedResource[] = resources
    .filter((r) => r.type !== "pulumi:pulumi:Stack")
    .map((r) => {
      // A stack policy's props are the resource's outputs, read once: they stand for its inputs, and are its outputs
      // too (a node group's Auto Scaling group names, once it exists).
      const props = knownProps(r);
      return {
        type: r.type,
        name: r.name,
        urn: r.urn,
        parent: r.parent?.urn,
        component: componentOf(r),
        inputs: props,
        outputs: props,
        // How the estimator finds the node group or database a schedule acts on while its name is not known yet.
        propertyDependencies: Object.fromEntries(
          Object.entries(r.propertyDependencies ?? {}).map(([key, sources]) => [key, sources.map((s) => s.urn)]),
        ),
        custom: !r.type.startsWith(`${projectOf(r.urn)}:`),
        options: {
          protect: r.opts?.protect || undefined,
          ignoreChanges: r.opts?.ignoreChanges?.length ? r.opts.ignoreChanges : undefined,
        },
      };
    });
  return {
    stack,
    tier: tier ?? "",
    region: String(decodeJson(provider?.props.region) ?? "us-east-1"),
    config: null,
    resources: planned,
    outputs: {},
    cost: null,
    policies: null,
  };
}

/** The budget a stack must fit: policy config, else the plan's resolved config, else the stack's AWS Budget in USD. */
function budgetOf(config: { monthlyBudgetUsd?: number }, args: OfflineStackArgs): { usd: number; source: string } | undefined {
  if (config.monthlyBudgetUsd !== undefined) return { usd: config.monthlyBudgetUsd, source: "policy config monthlyBudgetUsd" };
  if (args.planConfig) return { usd: args.planConfig.budget.monthlyUsd, source: "the stack's budget.monthlyUsd" };
  const resources = args.resources;
  const budget = ofTypes(resources, ["aws:budgets/budget:Budget"]).find(
    (b) => b.props.limitUnit === "USD" && (b.props.timeUnit ?? "MONTHLY") === "MONTHLY",
  );
  const limit = asNumber(budget?.props.limitAmount);
  if (budget && limit !== undefined) return { usd: limit, source: `aws.budgets.Budget ${budget.props.name ?? budget.name}` };
  return undefined;
}

const dollars = (usd: number) => `$${Math.round(usd).toLocaleString("en-US")}`;

export const stackWithinBudget: StackValidationPolicy = {
  name: "stack-within-budget",
  description: "The stack's estimated monthly cost (infra/cost, off-peak schedules counted) is within its budget.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      tier: { type: "string", description: "The stack's tier; default: the `tier` tag in the AWS provider's defaultTags." },
      monthlyBudgetUsd: {
        type: "number",
        exclusiveMinimum: 0,
        description:
          "Budget override; default: the budget the plan carries (the stack's resolved config), else the stack's aws.budgets.Budget.",
      },
    },
  },
  validateStack: (args: OfflineStackArgs, report) => {
    const config = args.getConfig<{ tier?: string; monthlyBudgetUsd?: number }>();
    const tier = stackTierOf(config, args.resources);
    const budget = budgetOf(config, args);
    if (!budget) {
      report(
        `no budget known (tier ${tier ?? "unknown"}: no resolved config and no AWS Budget in USD): set this policy's monthlyBudgetUsd.`,
      );
      return;
    }
    // Offline, review() has priced this plan already; the engine (or another tier in config) needs an estimate here,
    // with the usage assumptions of the stack's tier: without them, prod's came to $3,786 against the plan's $5,464.
    const cost =
      args.cost ??
      estimateCost(planFromResources(args.resources, tier), { usage: isTierName(tier) ? TIER_USAGE[tier] : undefined });
    const unchecked = unpricedRegion(cost);
    if (unchecked) {
      report(`cannot check the ${dollars(budget.usd)} budget (${budget.source}): ${unchecked}.`);
      return;
    }
    if (cost.monthlyUsd > budget.usd) {
      const top = [...cost.items].sort((a, b) => b.monthlyUsd - a.monthlyUsd).slice(0, 3);
      report(
        `estimated ${dollars(cost.monthlyUsd)}/month exceeds the ${dollars(budget.usd)} budget (${budget.source}); ` +
          `largest: ${top.map((i) => `${i.name} ${dollars(i.monthlyUsd)}`).join(", ")}.`,
      );
    }
  },
};

export const costPolicies = [instanceTypesAllowed, gpuOnlyInGpuGroup, stackWithinBudget];
