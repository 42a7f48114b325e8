// Cost diff of two plans (base -> head): resources added, removed and changed (inputs or monthly cost), each
// with its monthly delta, and the total delta. Resources are matched by URN, else by type and name.
import type { CostReport, PlannedResource } from "../plan/types.ts";
import { cents } from "./model.ts";
import { money, shortType } from "./render.ts";

export interface CostedPlan {
  stack: string;
  tier: string;
  resources: PlannedResource[];
  cost: CostReport;
}

export interface ResourceChange {
  change: "added" | "removed" | "changed";
  type: string;
  name: string;
  component: string;
  baseMonthlyUsd: number;
  headMonthlyUsd: number;
  deltaMonthlyUsd: number;
  /** Top-level input keys whose values differ ("changed" only). */
  changedInputs: string[];
  /** "free" and "unpriced" resources carry $0 here; "unpriced" ones are missing from the totals. */
  pricing: "priced" | "free" | "unpriced";
}

export interface CostDiff {
  base: { stack: string; monthlyUsd: number; onDemandMonthlyUsd: number };
  head: { stack: string; monthlyUsd: number; onDemandMonthlyUsd: number };
  deltaMonthlyUsd: number;
  deltaOnDemandMonthlyUsd: number;
  changes: ResourceChange[];
  unchanged: number;
  /** Head resources without a price (their cost is missing from the head total). */
  unpriced: { type: string; name: string; reason?: string }[];
  notes: string[];
}

const keyOf = (r: { urn?: string; type: string; name: string }) => r.urn || `${r.type}::${r.name}`;

function pricingOf(report: CostReport, r: PlannedResource): ResourceChange["pricing"] {
  if (report.items.some((i) => i.type === r.type && i.name === r.name)) return "priced";
  return report.unpriced.some((u) => u.type === r.type && u.name === r.name) ? "unpriced" : "free";
}

function costByResource(report: CostReport): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of report.items) m.set(`${i.type}::${i.name}`, (m.get(`${i.type}::${i.name}`) ?? 0) + i.monthlyUsd);
  return m;
}

/** JSON with sorted object keys, so equal inputs compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
}

function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => canonical(a[k]) !== canonical(b[k])).sort();
}

export function diffCosts(base: CostedPlan, head: CostedPlan, notes: string[] = []): CostDiff {
  const baseCost = costByResource(base.cost);
  const headCost = costByResource(head.cost);
  const baseByKey = new Map(base.resources.filter((r) => r.custom).map((r) => [keyOf(r), r]));
  const headByKey = new Map(head.resources.filter((r) => r.custom).map((r) => [keyOf(r), r]));
  const changes: ResourceChange[] = [];
  let unchanged = 0;
  const costOf = (m: Map<string, number>, r: PlannedResource) => m.get(`${r.type}::${r.name}`) ?? 0;

  for (const [key, h] of headByKey) {
    const b = baseByKey.get(key);
    const headUsd = costOf(headCost, h);
    if (!b) {
      changes.push({
        change: "added",
        type: h.type,
        name: h.name,
        component: h.component,
        baseMonthlyUsd: 0,
        headMonthlyUsd: headUsd,
        deltaMonthlyUsd: cents(headUsd),
        changedInputs: [],
        pricing: pricingOf(head.cost, h),
      });
      continue;
    }
    const baseUsd = costOf(baseCost, b);
    const keys = changedKeys(b.inputs, h.inputs);
    if (keys.length === 0 && Math.abs(headUsd - baseUsd) < 0.005) {
      unchanged++;
      continue;
    }
    changes.push({
      change: "changed",
      type: h.type,
      name: h.name,
      component: h.component,
      baseMonthlyUsd: baseUsd,
      headMonthlyUsd: headUsd,
      deltaMonthlyUsd: cents(headUsd - baseUsd),
      changedInputs: keys,
      pricing: pricingOf(head.cost, h),
    });
  }
  for (const [key, b] of baseByKey) {
    if (headByKey.has(key)) continue;
    const baseUsd = costOf(baseCost, b);
    changes.push({
      change: "removed",
      type: b.type,
      name: b.name,
      component: b.component,
      baseMonthlyUsd: baseUsd,
      headMonthlyUsd: 0,
      deltaMonthlyUsd: cents(-baseUsd),
      changedInputs: [],
      pricing: pricingOf(base.cost, b),
    });
  }
  const rank = { priced: 0, unpriced: 1, free: 2 };
  changes.sort(
    (x, y) =>
      Math.abs(y.deltaMonthlyUsd) - Math.abs(x.deltaMonthlyUsd) ||
      rank[x.pricing] - rank[y.pricing] ||
      x.name.localeCompare(y.name),
  );
  return {
    base: { stack: base.stack, monthlyUsd: base.cost.monthlyUsd, onDemandMonthlyUsd: base.cost.onDemandMonthlyUsd },
    head: { stack: head.stack, monthlyUsd: head.cost.monthlyUsd, onDemandMonthlyUsd: head.cost.onDemandMonthlyUsd },
    deltaMonthlyUsd: cents(head.cost.monthlyUsd - base.cost.monthlyUsd),
    deltaOnDemandMonthlyUsd: cents(head.cost.onDemandMonthlyUsd - base.cost.onDemandMonthlyUsd),
    changes,
    unchanged,
    unpriced: head.cost.unpriced,
    notes,
  };
}

function deltaCell(c: ResourceChange): string {
  return c.pricing === "priced" ? signed(c.deltaMonthlyUsd) : c.pricing;
}

function signed(n: number): string {
  return `${n > 0 ? "+" : n < 0 ? "-" : "±"}${money(Math.abs(n))}`;
}

function summary(d: CostDiff): string {
  const rel = d.base.monthlyUsd
    ? ` (${d.deltaMonthlyUsd >= 0 ? "+" : ""}${((d.deltaMonthlyUsd / d.base.monthlyUsd) * 100).toFixed(1)} %)`
    : "";
  return `${money(d.base.monthlyUsd)} -> ${money(d.head.monthlyUsd)}/month with schedules: ${signed(d.deltaMonthlyUsd)}${rel}; on-demand ${signed(d.deltaOnDemandMonthlyUsd)}`;
}

export function renderDiffTable(d: CostDiff): string {
  const lines = [`cost diff ${d.base.stack} -> ${d.head.stack}: ${summary(d)}`];
  if (d.changes.length) {
    const rows = d.changes.map((c) => [
      c.change,
      c.name,
      shortType(c.type),
      money(c.baseMonthlyUsd),
      money(c.headMonthlyUsd),
      deltaCell(c),
      c.changedInputs.join(","),
    ]);
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows)
      lines.push(`  ${r.map((x, i) => (i >= 3 && i <= 5 ? x.padStart(widths[i]) : x.padEnd(widths[i]))).join("  ")}`.trimEnd());
  } else lines.push("  no resource changes");
  lines.push(`  ${d.unchanged} resource(s) unchanged`);
  for (const u of d.unpriced) lines.push(`  UNPRICED in head: ${u.type} ${u.name}${u.reason ? `: ${u.reason}` : ""}`);
  for (const n of d.notes) lines.push(`  note: ${n}`);
  return lines.join("\n");
}

export function renderDiffMarkdown(d: CostDiff): string {
  const lines = [`#### Cost change: **${signed(d.deltaMonthlyUsd)}/month**`, "", summary(d), ""];
  if (d.changes.length) {
    lines.push("| change | resource | type | before | after | delta | changed inputs |", "|---|---|---|---:|---:|---:|---|");
    for (const c of d.changes) {
      lines.push(
        `| ${c.change} | ${c.name} | \`${shortType(c.type)}\` | ${money(c.baseMonthlyUsd)} | ${money(c.headMonthlyUsd)} | ${deltaCell(c)} | ${c.changedInputs.join(", ")} |`,
      );
    }
    lines.push("");
  } else lines.push("No resource changes.", "");
  lines.push(`${d.unchanged} resource(s) unchanged.`);
  if (d.unpriced.length) lines.push("", `**Unpriced in head:** ${d.unpriced.map((u) => `\`${u.type}\` ${u.name}`).join(", ")}`);
  for (const n of d.notes) lines.push("", `> ${n}`);
  return lines.join("\n");
}
