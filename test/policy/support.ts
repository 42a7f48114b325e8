// Builds small plans for calling single policies through the offline runner, the way the engine would.
import { createRequire } from "node:module";
import type { Policy } from "@pulumi/policy";
import type { CostReport, Plan, PlanConfig, PlannedResource, PolicyViolation } from "../../infra/plan/types.ts";
import { runPolicies } from "../../policy/offline.ts";
import { linkReferences } from "../support/plan.ts";

export const STACK = "test";

/** The engine's props proxy and its unknown-value sentinels (@pulumi/policy proxy.js, internal): what a preview gives. */
export const { unknownCheckingProxy, unknownStringValue, unknownNumberValue, unknownObjectValue } = createRequire(
  import.meta.url,
)("@pulumi/policy/proxy.js");

/**
 * A policy run as a first real preview runs it (policy/offline.ts, Plan.firstPreview): the props behind the engine's
 * proxy, which throws on reading a value not known yet (unknownStringValue, ...), and a policy that read one reported
 * as the pack server reports it, an advisory "can't run ... during preview". The messages reported.
 */
export function checkOnPreview(policy: Policy, resources: PlannedResource[], config: Record<string, unknown>): string[] {
  const plan: Plan = { ...planOf(resources, undefined), firstPreview: true };
  return runPolicies(plan, { policies: [policy], config: { [policy.name]: config } }).violations.map((v) => v.message);
}

export function resource(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  extra: Partial<PlannedResource> = {},
): PlannedResource {
  return {
    type,
    name,
    urn: `urn:pulumi:${STACK}::agent-stack::${type}::${name}`,
    component: "stack",
    inputs,
    custom: true,
    options: {},
    ...extra,
  };
}

/** The AWS provider as infra/stack.ts declares it: defaultTags (JSON-encoded, as providers receive them) carry the tier. */
export function awsProvider(tier: string | undefined, region = "us-east-1"): PlannedResource {
  const tags = { project: "agent-stack", stack: STACK, ...(tier ? { tier } : {}) };
  return resource("pulumi:providers:aws", "aws", { region, defaultTags: JSON.stringify({ tags }) });
}

export function planOf(
  resources: PlannedResource[],
  tier: string | undefined,
  config: PlanConfig | null = null,
  region = "us-east-1",
): Plan {
  const linked = linkReferences([awsProvider(tier, region), ...resources]);
  return {
    stack: STACK,
    tier: tier ?? "",
    region,
    config,
    resources: linked,
    outputs: {},
    cost: null,
    policies: null,
  };
}

export interface CheckOptions {
  /** The tier tag on the AWS provider (default medium); undefined: no tier tag. */
  tier?: string | undefined;
  /** This policy's config properties. */
  config?: Record<string, unknown>;
  /** The plan's cost as review() estimated it, handed to stack policies. */
  cost?: CostReport;
  /** The stack's resolved config the plan carries (budget, ...). */
  planConfig?: PlanConfig;
  /** The AWS provider's region (default us-east-1). */
  region?: string;
}

/** Runs one policy over the resources (plus an AWS provider) and returns its violations. */
export function check(policy: Policy, resources: PlannedResource[], options: CheckOptions = {}): PolicyViolation[] {
  const tier = "tier" in options ? options.tier : "medium";
  const config = options.config ? { [policy.name]: options.config } : undefined;
  const plan = planOf(resources, tier, options.planConfig, options.region);
  return runPolicies(plan, { policies: [policy], config, cost: options.cost }).violations;
}

/** The messages reported against one resource. */
export function messagesFor(violations: PolicyViolation[], r: PlannedResource): string[] {
  return violations.filter((v) => v.resource === r.urn).map((v) => v.message);
}
