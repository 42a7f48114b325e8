// The estimator's vocabulary: what a pricer returns, what it may read, and the catalog entry shape.
import type { PlannedResource } from "../plan/types.ts";
import type { PriceTable } from "./prices.ts";
import type { ScheduleIndex } from "./schedule/targets.ts";
import type { Usage } from "./usage.ts";

/** What one resource costs per month, with its schedules and running 730 h at full size. */
export interface Charge {
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  /** 730 h with every autoscaled group at its maximum and every burst at its ceiling; on-demand when absent. */
  maxMonthlyUsd?: number;
  detail: string;
}

/** A resource that costs nothing (or whose cost is counted on another resource), and why. */
export interface Free {
  free: string;
}

export type Pricing = Charge | Free;

export type Pricer = (resource: PlannedResource, ctx: PricingContext) => Pricing;

/** One row of the catalog: a pricer, or the reason the type is free. */
export type CatalogEntry = { price: Pricer } | { free: string };

export interface PricingContext {
  region: string;
  tier: string;
  prices: PriceTable;
  usage: Usage;
  hoursPerMonth: number;
  resources: readonly PlannedResource[];
  ofType(type: string): PlannedResource[];
  schedules: ScheduleIndex;
}

export function isFree(p: Pricing): p is Free {
  return "free" in p;
}

/** A charge that schedules do not change (storage, control planes, always-on gateways). */
export function steady(monthlyUsd: number, detail: string): Charge {
  return { monthlyUsd, onDemandMonthlyUsd: monthlyUsd, detail };
}

export function free(reason: string): Free {
  return { free: reason };
}

/** Rounded to the cent. */
export function cents(n: number): number {
  return Math.round(n * 100) / 100;
}

/** A unit price as written in price lists: "$0.34", "$1.624", "$0.0832". */
export function usd(n: number): string {
  return `$${Number(n.toFixed(4))}`;
}
