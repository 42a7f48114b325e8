// The review layer's one composition: a plan with its cost (infra/cost) and the policy pack's verdict (policy/).
// Cost and policy read only the plan; this is the one place that hands it to both.
import { estimateCost } from "../cost/index.ts";
import type { Plan } from "../plan/types.ts";
import { runPolicies } from "../../policy/offline.ts";

export function review(plan: Plan): Plan {
  const cost = estimateCost(plan);
  // The budget policy reuses this estimate instead of pricing the plan again.
  return { ...plan, cost, policies: runPolicies(plan, { cost }) };
}
