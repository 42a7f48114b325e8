// The budget guard: the estimate (with schedules) against --max-monthly, or the budget the plan carries
// (the stack's resolved `budget.monthlyUsd`, overrides included).
import type { CostEstimate } from "./estimate.ts";
import { money } from "./render.ts";

export interface BudgetCheck {
  limitUsd: number | undefined;
  /** Over the budget, or not checkable against it (no price table for the region). */
  fails: boolean;
  message: string;
}

/**
 * Why the estimate cannot be held against a budget: with no price table for the stack's region, every priced resource
 * is left out (UNPRICED), and the total of what is left is no estimate. Undefined when it can, or when the report does
 * not say (a cost report without the estimate's `prices`: a plan file of an older version).
 */
export function unpricedRegion(cost: { prices?: unknown; region?: unknown; unpriced: unknown[] }): string | undefined {
  if (cost.prices !== null) return undefined;
  return `no price table for region ${cost.region}, so the estimate leaves out every priced resource (${cost.unpriced.length} unpriced) and cannot be held against a budget; add infra/cost/prices/${cost.region}.json (infra/cost/prices/README.md)`;
}

export function budgetCheck(
  cost: Pick<CostEstimate, "monthlyUsd" | "onDemandMonthlyUsd" | "unpriced" | "budget" | "stack" | "prices" | "region">,
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
      fails: false,
      message: "no budget to check: the plan carries no budget (config.budget) and no --max-monthly was given",
    };
  const unchecked = unpricedRegion(cost);
  if (unchecked) return { limitUsd, fails: true, message: `cannot check ${source}: ${unchecked}` };
  const estimate = `estimated ${money(cost.monthlyUsd)}/month (with schedules; ${money(cost.onDemandMonthlyUsd)} on-demand)`;
  const over = cost.monthlyUsd > limitUsd;
  const unpriced = cost.unpriced.length ? `; ${cost.unpriced.length} unpriced resource(s) are not included` : "";
  return {
    limitUsd,
    fails: over,
    message: over
      ? `over budget: ${estimate} is above ${money(limitUsd)}/month, ${source}, by ${money(cost.monthlyUsd - limitUsd)}${unpriced}`
      : `within budget: ${estimate} is at most ${money(limitUsd)}/month, ${source}${unpriced}`,
  };
}
