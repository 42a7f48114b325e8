// The plan's cost estimate as Prometheus series: monitoring/cost/<stack>.json (written by `npm run cost:metrics`
// from the offline plan's estimate) becomes one recording rule per component with a constant value,
// component:estimated_cost_usd_per_hour:plan{component, stack}. monitoring/prometheus/rules/cost.yml divides it
// by the API's traffic. The file is committed so `pulumi up` deploys the estimate of the commit it runs;
// test/cost/cost-estimate-file.prod-plan.ts fails when the prod file no longer matches the plan.
import { existsSync, readFileSync } from "node:fs";

export const COST_ESTIMATE_METRIC = "component:estimated_cost_usd_per_hour:plan";

export interface CostEstimateFile {
  stack: string;
  region: string;
  /** Date of the price table the estimate used. */
  pricesDate: string;
  /** The with-schedules monthly estimate; hourly figures are it / hoursPerMonth. */
  monthlyUsd: number;
  hoursPerMonth: number;
  /** Average USD per hour by plan component (network, cluster, database, ...). */
  hourlyUsdByComponent: Record<string, number>;
}

const FILE = (stack: string) => new URL(`./cost/${stack}.json`, import.meta.url);

export function costEstimatePath(stack: string): string {
  return FILE(stack).pathname;
}

/** The committed estimate of a stack; undefined when none was generated for it. */
export function readCostEstimate(stack: string): CostEstimateFile | undefined {
  const file = FILE(stack);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as CostEstimateFile) : undefined;
}

/** The PrometheusRule spec: one constant recording rule per component. */
export function costEstimateRuleSpec(estimate: CostEstimateFile): { groups: unknown[] } {
  return {
    groups: [
      {
        name: "agent-stack.cost-estimate",
        rules: Object.entries(estimate.hourlyUsdByComponent).map(([component, usd]) => ({
          record: COST_ESTIMATE_METRIC,
          expr: `vector(${usd})`,
          labels: { component, stack: estimate.stack },
        })),
      },
    ],
  };
}
