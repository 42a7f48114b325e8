// The plan of a stack as its own file declares it, built once per process and shared by every check module that
// reads it: `test/<area>/<topic>.<stack>-plan.ts`, dev's and prod's all run in one process by `test/plans/stacks.test.ts`
// (Pulumi and the program load once, about 3 s). Building a plan takes about 3 s here, and there are a dozen such
// modules per stack. A module whose check needs config of its own runs a plan of its own (runPlan) in that process:
// about 1 s once Pulumi and the program are loaded, where a `*.test.ts` of its own took 4 to 5 s. The modules are
// found by name (test/support/check-modules.ts).
import { runPlan } from "../../infra/plan/harness.ts";
import type { Plan } from "../../infra/plan/types.ts";
import { checkModules, runCheckModules } from "./check-modules.ts";

export type PlannedStack = "dev" | "prod";

const built = new Map<string, Promise<Plan>>();

/**
 * The stack's plan, with `config` over its file's where given (modules checking one variant share its plan); each
 * caller gets its own copy, so a check that edits what it reads cannot change another's.
 */
export async function stackPlan(stack: PlannedStack, config?: Record<string, string>): Promise<Plan> {
  const key = JSON.stringify([stack, config ?? {}]);
  const plan = built.get(key) ?? runPlan({ stack, config });
  built.set(key, plan);
  return structuredClone(await plan);
}

/** The CI roles (agent-stack:ci) and the flow logs' role (flowLogs) are made only with their config set. */
export const WITH_CI_AND_FLOW_LOGS = {
  "agent-stack:ci": JSON.stringify({ githubRepo: "acme/agents" }),
  "agent-stack:flowLogs": "true",
};

/** The check modules of a stack's plan under test/, sorted. */
export const planCheckModules = (stack: PlannedStack): string[] => checkModules(`.${stack}-plan.ts`);

/** Imports every check module of the stacks; one that fails to load is a failing test naming it, not a lost file. */
export const runStackChecks = (...stacks: PlannedStack[]): Promise<void> =>
  runCheckModules(...stacks.map((stack) => `.${stack}-plan.ts`));
