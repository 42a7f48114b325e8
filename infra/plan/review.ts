// A plan with its review filled in: the monthly cost (infra/cost) and the policy pack's verdict (policy/).
import { runPolicies } from "../../policy/offline.ts";
import { estimateCost } from "../cost/index.ts";
import type { Plan } from "./types.ts";

export function review(plan: Plan): Plan {
  const cost = estimateCost(plan);
  // The budget policy reuses this estimate instead of pricing the plan again.
  return { ...plan, cost, policies: runPolicies(plan, { cost }) };
}
