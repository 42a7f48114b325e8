// Lookups over an offline plan's resource list, shared by the infra, cost and policy tests.
import { mockArn } from "../../infra/plan/mocks.ts";
import type { Plan, PlannedResource } from "../../infra/plan/types.ts";
import { standardUtcOffsetMinutes } from "../../infra/time.ts";

export function ofType(plan: Plan, type: string): PlannedResource[] {
  return plan.resources.filter((r) => r.type === type);
}

/** The single resource of a type (optionally by name); throws naming what exists otherwise. */
export function one(plan: Plan, type: string, name?: string): PlannedResource {
  const found = ofType(plan, type).filter((r) => name === undefined || r.name === name);
  if (found.length !== 1) {
    const names =
      ofType(plan, type)
        .map((r) => r.name)
        .join(", ") || "none";
    throw new Error(`expected one ${type}${name ? ` named ${name}` : ""}, found ${found.length} (${names})`);
  }
  return found[0];
}

export function inputs(r: PlannedResource): Record<string, any> {
  return r.inputs as Record<string, any>;
}

/**
 * Synthetic plans refer to other resources the way the mocks name them (`<name>-id`, the node group ASG
 * `eks-<name>-asg`, an RDS identifier); the offline plan records such references as property dependencies.
 * This gives hand-written resources the same dependencies, so cost and policy see what a real plan shows.
 */
export function linkReferences(resources: PlannedResource[]): PlannedResource[] {
  const byRef = new Map<string, string>();
  // A reference names something declared before it: the first resource with a name wins.
  const add = (ref: string, urn: string) => byRef.has(ref) || byRef.set(ref, urn);
  for (const r of resources) {
    add(`${r.name}-id`, r.urn);
    if (r.type === "aws:eks/nodeGroup:NodeGroup") add(`eks-${r.name}-asg`, r.urn);
    if (typeof r.inputs.identifier === "string") add(r.inputs.identifier, r.urn);
  }
  const stringsIn = (v: unknown): string[] =>
    typeof v === "string"
      ? [v, ...jsonStrings(v)]
      : Array.isArray(v)
        ? v.flatMap(stringsIn)
        : v && typeof v === "object"
          ? Object.values(v).flatMap(stringsIn)
          : [];
  return resources.map((r) => {
    if (r.propertyDependencies) return r;
    const deps: Record<string, string[]> = {};
    for (const [key, value] of Object.entries(r.inputs)) {
      const urns = [...new Set(stringsIn(value).flatMap((s) => byRef.get(s) ?? []))].filter((u) => u !== r.urn);
      if (urns.length > 0) deps[key] = urns;
    }
    return { ...r, propertyDependencies: deps, dependsOn: [...new Set(Object.values(deps).flat())] };
  });
}

function jsonStrings(text: string): string[] {
  if (!/^\s*[{[]/.test(text)) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    const walk = (v: unknown): string[] =>
      typeof v === "string" ? [v] : v && typeof v === "object" ? Object.values(v).flatMap(walk) : [];
    return walk(parsed);
  } catch {
    return [];
  }
}

/** The local hour, in New York's standard time, at which a UTC window ("hh:mm-hh:mm", as the stacks print it) starts. */
export const newYorkStartHour = (window: string) =>
  (Number(window.slice(0, 2)) + 24 + standardUtcOffsetMinutes("America/New_York") / 60) % 24;

/**
 * The roles (by name, but those in `except`) that do not carry the workload boundary (infra/platform/boundaries.ts) as
 * the mocks render its ARN output, or that carry it other than through that output: without the reference, Pulumi
 * could create a role before the policy it names.
 */
export function rolesOutsideWorkloadBoundary(plan: Plan, except: string[] = []): string[] {
  const boundary = one(plan, "aws:iam/policy:Policy", "workload-boundary");
  const arn = mockArn(plan.region, boundary.type, boundary.name);
  return ofType(plan, "aws:iam/role:Role")
    .filter((r) => !except.includes(r.name))
    .filter((r) => inputs(r).permissionsBoundary !== arn || !r.propertyDependencies?.permissionsBoundary?.includes(boundary.urn))
    .map((r) => r.name);
}

/** The `system:serviceaccount:<namespace>:<name>` an IRSA role's trust admits (its `<issuer>:sub` condition). */
export function irsaSubject(role: PlannedResource): unknown {
  const trust = JSON.parse(inputs(role).assumeRolePolicy).Statement[0];
  return Object.entries(trust.Condition.StringEquals).find(([k]) => k.endsWith(":sub"))?.[1];
}

/**
 * Each node group's ignoreChanges against the sizes the plan's scheduled actions set on its ASG (those the plan records
 * as coming from the group): the desired size, and the minimum where an action sets it, as `pulumi up` must leave them
 * to them. Not the maximum (schedules.ts movesMinimum: the provider refuses a kept 0).
 */
export function nodeGroupsIgnoringScheduledSizes(plan: Plan): { group: string; ignored: string[]; scheduled: string[] }[] {
  return ofType(plan, "aws:eks/nodeGroup:NodeGroup").map((group) => {
    const actions = ofType(plan, "aws:autoscaling/schedule:Schedule").filter((a) =>
      a.propertyDependencies?.autoscalingGroupName?.includes(group.urn),
    );
    const movesMinimum = actions.some((a) => inputs(a).minSize !== -1);
    return {
      group: group.name,
      ignored: [...(group.options.ignoreChanges ?? [])].sort(),
      scheduled: ["scalingConfig.desiredSize", ...(movesMinimum ? ["scalingConfig.minSize"] : [])],
    };
  });
}
