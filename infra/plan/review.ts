// A plan with its review filled in: the monthly cost (infra/cost) and the policy pack's verdict (policy/).
import { runPolicies } from "../../policy/offline.ts";
import { estimateCost } from "../cost/index.ts";
import type { Plan } from "./types.ts";

export function review(plan: Plan): Plan {
  return { ...plan, cost: estimateCost(plan), policies: runPolicies(plan) };
}
