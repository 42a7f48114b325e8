// Builds small plans for calling single policies through the offline runner, the way the engine would.
import { createRequire } from "node:module";
import type { Policy, StackValidationPolicy } from "@pulumi/policy";
import type { CostReport, Plan, PlanConfig, PlannedResource, PolicyViolation } from "../../infra/plan/types.ts";
import { runPolicies } from "../../policy/offline.ts";
import { linkReferences } from "../support/plan.ts";

export const STACK = "test";

/** The engine's props proxy and its unknown-value sentinels (@pulumi/policy proxy.js, internal): what a preview gives. */
export const { unknownCheckingProxy, unknownStringValue, unknownNumberValue, unknownObjectValue } = createRequire(
  import.meta.url,
)("@pulumi/policy/proxy.js");

/**
 * A stack policy run as a real preview runs it: each resource's inputs behind the engine's proxy, which throws on
 * reading a value not known yet (the pack server then skips the whole policy). The messages it reported; a throw
 * fails the call, as it fails the preview.
 */
export function checkOnPreview(
  policy: StackValidationPolicy,
  resources: PlannedResource[],
  config: Record<string, unknown>,
): string[] {
  const reports: string[] = [];
  const engineResources = resources.map((r) => ({
    type: r.type,
    name: r.name,
    urn: r.urn,
    props: unknownCheckingProxy(r.inputs),
    opts: {},
    dependencies: [],
    propertyDependencies: {},
  }));
  policy.validateStack({ resources: engineResources, getConfig: () => config } as never, (message: string) =>
    reports.push(message),
  );
  return reports;
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
export function awsProvider(tier: string | undefined): PlannedResource {
  const tags = { project: "agent-stack", stack: STACK, ...(tier ? { tier } : {}) };
  return resource("pulumi:providers:aws", "aws", { region: "us-east-1", defaultTags: JSON.stringify({ tags }) });
}

export function planOf(resources: PlannedResource[], tier: string | undefined, config: PlanConfig | null = null): Plan {
  const linked = linkReferences([awsProvider(tier), ...resources]);
  return {
    stack: STACK,
    tier: tier ?? "",
    region: "us-east-1",
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
}

/** Runs one policy over the resources (plus an AWS provider) and returns its violations. */
export function check(policy: Policy, resources: PlannedResource[], options: CheckOptions = {}): PolicyViolation[] {
  const tier = "tier" in options ? options.tier : "medium";
  const config = options.config ? { [policy.name]: options.config } : undefined;
  return runPolicies(planOf(resources, tier, options.planConfig), { policies: [policy], config, cost: options.cost }).violations;
}

/** The messages reported against one resource. */
export function messagesFor(violations: PolicyViolation[], r: PlannedResource): string[] {
  return violations.filter((v) => v.resource === r.urn).map((v) => v.message);
}
