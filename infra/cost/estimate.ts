// estimateCost: prices every resource of a plan through the catalog. Each resource ends up in exactly one of
// items (priced), free (by catalog reason) or unpriced (with the reason); nothing is silently $0.
import type { CostItem, CostReport, Plan, PlannedResource } from "../plan/types.ts";
import { catalogEntry } from "./catalog.ts";
import { Unpriceable } from "./inputs.ts";
import { cents, isFree, type PricingContext } from "./model.ts";
import { HOURS_PER_MONTH, loadPrices, type PriceTable } from "./prices.ts";
import { indexSchedules, type ScheduleSummary } from "./schedule/targets.ts";
import type { Usage } from "./usage.ts";

export interface UnpricedResource {
  type: string;
  name: string;
  reason: string;
}

export interface FreeGroup {
  type: string;
  count: number;
  reason: string;
}

export interface ComponentCost {
  component: string;
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  /** 730 h with every autoscaled group at its maximum (and bursts at their ceiling). */
  maxMonthlyUsd: number;
}

/** A priced resource: the plan contract's item plus the at-maximum figure. */
export interface PricedItem extends CostItem {
  maxMonthlyUsd: number;
}

/** The CostReport of the plan contract, with what the renderers and the CLI need beside it. */
export interface CostEstimate extends CostReport {
  items: PricedItem[];
  /** The bill if every node group ran at its maximum size all month: on-demand is not an upper bound with autoscalers. */
  maxMonthlyUsd: number;
  /** Expected figures (not list prices) the estimate used, with their sources: the Spot discount. */
  assumptions: { name: string; value: number; unit: string; source: string; date: string }[];
  stack: string;
  tier: string;
  region: string;
  hoursPerMonth: number;
  prices: { region: string; date: string } | null;
  /** The plan's usage assumptions (config.usage); null when the plan carries none. */
  usage: Usage | null;
  components: ComponentCost[];
  free: FreeGroup[];
  unpriced: UnpricedResource[];
  schedules: ScheduleSummary[];
  guide: { monthlyUsd: number; reference: string } | null;
  budget: { monthlyUsd: number } | null;
  warnings: string[];
}

export interface EstimateOptions {
  /** Price table to use instead of the plan region's (tests). */
  prices?: PriceTable;
  usage?: Usage;
}

/** The project's own component resources only group others; anything else non-custom hides its children. */
function isOwnComponent(r: PlannedResource): boolean {
  const project = /^urn:pulumi:[^:]*::([^:]+)::/.exec(r.urn)?.[1];
  return !r.custom && project !== undefined && r.type.startsWith(`${project}:`);
}

const NO_USAGE = "the plan carries no usage assumptions (config.usage); resources billed by usage are not priced";

export function estimateCost(plan: Plan, options: EstimateOptions = {}): CostEstimate {
  const region = plan.region || "us-east-1";
  const usageValues = options.usage ?? plan.config?.usage ?? null;
  const warnings: string[] = [];
  if (!usageValues) warnings.push(NO_USAGE);

  let prices: PriceTable | undefined = options.prices;
  let pricesError: string | undefined;
  if (!prices) {
    try {
      prices = loadPrices(region);
    } catch (err) {
      pricesError = (err as Error).message;
      warnings.push(pricesError);
    }
  }

  const schedules = indexSchedules(plan.resources);
  warnings.push(...schedules.warnings);
  const byType = new Map<string, PlannedResource[]>();
  for (const r of plan.resources) byType.set(r.type, [...(byType.get(r.type) ?? []), r]);
  const ctx: PricingContext = {
    region,
    tier: plan.tier,
    prices: prices!,
    get usage(): Usage {
      if (!usageValues) throw new Unpriceable(NO_USAGE);
      return usageValues;
    },
    hoursPerMonth: HOURS_PER_MONTH,
    resources: plan.resources,
    ofType: (type) => byType.get(type) ?? [],
    schedules,
  };

  const items: PricedItem[] = [];
  const unpriced: UnpricedResource[] = [];
  const free = new Map<string, FreeGroup>();
  const addFree = (type: string, reason: string) => {
    const key = `${type}\u0000${reason}`;
    const g = free.get(key) ?? { type, count: 0, reason };
    g.count++;
    free.set(key, g);
  };

  for (const r of plan.resources) {
    if (isOwnComponent(r)) {
      addFree(r.type, "component: groups resources, costs nothing itself");
      continue;
    }
    const entry = catalogEntry(r.type);
    if (!entry) {
      const reason = r.custom
        ? "type not in the cost catalog (infra/cost/catalog.ts)"
        : "a component of another package: its children are not visible offline";
      unpriced.push({ type: r.type, name: r.name, reason });
      continue;
    }
    if ("free" in entry) {
      addFree(r.type, entry.free);
      continue;
    }
    if (pricesError) {
      unpriced.push({ type: r.type, name: r.name, reason: pricesError });
      continue;
    }
    try {
      const priced = entry.price(r, ctx);
      if (isFree(priced)) addFree(r.type, priced.free);
      else {
        items.push({
          type: r.type,
          name: r.name,
          component: r.component,
          monthlyUsd: cents(priced.monthlyUsd),
          onDemandMonthlyUsd: cents(priced.onDemandMonthlyUsd),
          maxMonthlyUsd: cents(Math.max(priced.maxMonthlyUsd ?? priced.onDemandMonthlyUsd, priced.onDemandMonthlyUsd)),
          detail: priced.detail,
        });
      }
    } catch (err) {
      if (!(err instanceof Unpriceable)) throw err;
      unpriced.push({ type: r.type, name: r.name, reason: err.message });
    }
  }

  const components = new Map<string, ComponentCost>();
  for (const item of items) {
    const c = components.get(item.component) ?? {
      component: item.component,
      monthlyUsd: 0,
      onDemandMonthlyUsd: 0,
      maxMonthlyUsd: 0,
    };
    c.monthlyUsd += item.monthlyUsd;
    c.onDemandMonthlyUsd += item.onDemandMonthlyUsd;
    c.maxMonthlyUsd += item.maxMonthlyUsd;
    components.set(item.component, c);
  }
  const total = (key: "monthlyUsd" | "onDemandMonthlyUsd" | "maxMonthlyUsd") => cents(items.reduce((sum, i) => sum + i[key], 0));
  const spotUsed = plan.resources.some((r) => r.type === "aws:eks/nodeGroup:NodeGroup" && r.inputs.capacityType === "SPOT");
  const assumptions: CostEstimate["assumptions"] = [];
  if (spotUsed && prices) {
    try {
      assumptions.push({ name: "spot-discount", ...prices.assumption("spot-discount") });
    } catch {
      // reported as unpriced on the node group
    }
  }

  return {
    currency: "USD",
    monthlyUsd: total("monthlyUsd"),
    onDemandMonthlyUsd: total("onDemandMonthlyUsd"),
    maxMonthlyUsd: total("maxMonthlyUsd"),
    assumptions,
    items,
    unpriced,
    stack: plan.stack,
    tier: plan.tier,
    region,
    hoursPerMonth: HOURS_PER_MONTH,
    prices: prices ? { region: prices.region, date: prices.date } : null,
    usage: usageValues,
    components: [...components.values()].map((c) => ({
      ...c,
      monthlyUsd: cents(c.monthlyUsd),
      onDemandMonthlyUsd: cents(c.onDemandMonthlyUsd),
      maxMonthlyUsd: cents(c.maxMonthlyUsd),
    })),
    free: [...free.values()],
    schedules: schedules.summaries(),
    guide: plan.config?.guide ? { ...plan.config.guide } : null,
    budget: plan.config ? { ...plan.config.budget } : null,
    warnings,
  };
}
