// The estimate of a plan as monitoring/cost/<stack>.json: the average hourly cost by component that the stack
// publishes into Prometheus (monitoring/cost-estimate.ts). `npm run cost:metrics` writes it for every stack file.
import type { CostEstimateFile } from "../../monitoring/cost-estimate.ts";
import type { CostEstimate } from "./estimate.ts";

export function costEstimateFile(estimate: CostEstimate): CostEstimateFile {
  const hourly = (monthly: number) => Math.round((monthly / estimate.hoursPerMonth) * 1e4) / 1e4;
  return {
    stack: estimate.stack,
    region: estimate.region,
    pricesDate: estimate.prices?.date ?? "",
    monthlyUsd: estimate.monthlyUsd,
    hoursPerMonth: estimate.hoursPerMonth,
    hourlyUsdByComponent: Object.fromEntries(
      [...estimate.components]
        .sort((a, b) => a.component.localeCompare(b.component))
        .map((c) => [c.component, hourly(c.monthlyUsd)]),
    ),
  };
}
