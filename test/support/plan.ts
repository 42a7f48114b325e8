// Lookups over an offline plan's resource list, shared by the infra, cost and policy tests.
import type { Plan, PlannedResource } from "../../infra/plan/types.ts";

export function ofType(plan: Plan, type: string): PlannedResource[] {
  return plan.resources.filter((r) => r.type === type);
}

/** The single resource of a type (optionally by name); throws naming what exists otherwise. */
export function one(plan: Plan, type: string, name?: string): PlannedResource {
  const found = ofType(plan, type).filter((r) => name === undefined || r.name === name);
  if (found.length !== 1) {
    const names = ofType(plan, type).map((r) => r.name).join(", ") || "none";
    throw new Error(`expected one ${type}${name ? ` named ${name}` : ""}, found ${found.length} (${names})`);
  }
  return found[0];
}

export function inputs(r: PlannedResource): Record<string, any> {
  return r.inputs as Record<string, any>;
}
