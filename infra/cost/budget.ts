// The budget guard: the estimate (with schedules) against --max-monthly, or the tier's budget from infra/tiers.ts.
import type { CostReport } from "../plan/types.ts";
import { tierNamed } from "../tiers.ts";
import { money } from "./render.ts";

export interface BudgetCheck {
  limitUsd: number | undefined;
  over: boolean;
  message: string;
}

export function budgetCheck(cost: CostReport, tier: string, maxMonthlyUsd?: number): BudgetCheck {
  const tierBudget = tierNamed(tier)?.budget.monthlyUsd;
  const limitUsd = maxMonthlyUsd ?? tierBudget;
  const source = maxMonthlyUsd !== undefined ? "--max-monthly" : `the budget of tier ${tier} (infra/tiers.ts; --max-monthly overrides)`;
  if (limitUsd === undefined) return { limitUsd, over: false, message: `no budget to check: tier "${tier}" is unknown and no --max-monthly was given` };
  const estimate = `estimated ${money(cost.monthlyUsd)}/month (with schedules; ${money(cost.onDemandMonthlyUsd)} on-demand)`;
  const over = cost.monthlyUsd > limitUsd;
  const unpriced = cost.unpriced.length ? `; ${cost.unpriced.length} unpriced resource(s) are not included` : "";
  return {
    limitUsd,
    over,
    message: over
      ? `over budget: ${estimate} is above ${money(limitUsd)}/month, ${source}, by ${money(cost.monthlyUsd - limitUsd)}${unpriced}`
      : `within budget: ${estimate} is at most ${money(limitUsd)}/month, ${source}${unpriced}`,
  };
}
