// The budget guard: the estimate (with schedules) against --max-monthly, or the budget the plan carries
// (the stack's resolved `budget.monthlyUsd`, overrides included).
import type { CostEstimate } from "./estimate.ts";
import { money } from "./render.ts";

export interface BudgetCheck {
  limitUsd: number | undefined;
  over: boolean;
  message: string;
}

export function budgetCheck(
  cost: Pick<CostEstimate, "monthlyUsd" | "onDemandMonthlyUsd" | "unpriced" | "budget" | "stack">,
  maxMonthlyUsd?: number,
): BudgetCheck {
  const limitUsd = maxMonthlyUsd ?? cost.budget?.monthlyUsd;
  const source =
    maxMonthlyUsd !== undefined
      ? "--max-monthly"
      : `the budget of stack ${cost.stack} (config budget.monthlyUsd; --max-monthly overrides)`;
  if (limitUsd === undefined)
    return {
      limitUsd,
      over: false,
      message: "no budget to check: the plan carries no budget (config.budget) and no --max-monthly was given",
    };
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
