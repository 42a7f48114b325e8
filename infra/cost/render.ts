// The cost section of the plan report: a terminal table and a markdown block for a PR comment. Both show per
// component cost on-demand and with schedules, the saving, the guide's figure for the tier and the budget.
import type { CostReport } from "../plan/types.ts";
import type { CostEstimate } from "./estimate.ts";

const MONEY = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const WHOLE = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });

export function money(n: number): string {
  return MONEY.format(n);
}

function pct(part: number, whole: number): string {
  return whole === 0 ? "0 %" : `${((part / whole) * 100).toFixed(1)} %`;
}

/** What the renderers read: the estimate, whose usage block a bare report may lack (usageLine checks). */
type Renderable = CostEstimate;

/** A report from a JSON file may lack the estimator's extra keys; give them neutral values. */
function complete(report: CostReport): Renderable {
  const r = report as Partial<CostEstimate> & CostReport;
  // Reports written before the at-maximum figure existed: the maximum is the on-demand figure.
  const items = report.items.map((i) => ({
    ...i,
    maxMonthlyUsd: (i as { maxMonthlyUsd?: number }).maxMonthlyUsd ?? i.onDemandMonthlyUsd,
  }));
  const components =
    r.components?.map((c) => ({ ...c, maxMonthlyUsd: c.maxMonthlyUsd ?? c.onDemandMonthlyUsd })) ??
    Object.values(
      items.reduce<Record<string, { component: string; monthlyUsd: number; onDemandMonthlyUsd: number; maxMonthlyUsd: number }>>(
        (acc, i) => {
          const c = (acc[i.component] ??= { component: i.component, monthlyUsd: 0, onDemandMonthlyUsd: 0, maxMonthlyUsd: 0 });
          c.monthlyUsd += i.monthlyUsd;
          c.onDemandMonthlyUsd += i.onDemandMonthlyUsd;
          c.maxMonthlyUsd += i.maxMonthlyUsd;
          return acc;
        },
        {},
      ),
    );
  return {
    ...r,
    items,
    maxMonthlyUsd: r.maxMonthlyUsd ?? report.onDemandMonthlyUsd,
    assumptions: r.assumptions ?? [],
    stack: r.stack ?? "",
    tier: r.tier ?? "",
    region: r.region ?? "",
    hoursPerMonth: r.hoursPerMonth ?? 730,
    prices: r.prices ?? null,
    usage: r.usage as CostEstimate["usage"],
    components,
    free: r.free ?? [],
    unpriced: (report.unpriced ?? []).map((u) => ({ reason: "", ...u })),
    schedules: r.schedules ?? [],
    guide: r.guide ?? null,
    budget: r.budget ?? null,
    warnings: r.warnings ?? [],
  };
}

/** "$10,000+" when the guide's reference says "+", as for the large tier. */
function guideFigure(guide: { monthlyUsd: number; reference: string }): string {
  return `${WHOLE.format(guide.monthlyUsd)}${/\$[\d,]+\+/.test(guide.reference) ? "+" : ""}/month`;
}

function guideComparison(r: Renderable): string | undefined {
  if (!r.guide) return undefined;
  const diff = r.onDemandMonthlyUsd - r.guide.monthlyUsd;
  const side = diff >= 0 ? "above" : "below";
  return `${guideFigure(r.guide)} (${r.guide.reference}); on-demand estimate is ${pct(Math.abs(diff), r.guide.monthlyUsd)} ${side} it`;
}

function budgetStatus(r: Renderable): { text: string; over: boolean } | undefined {
  if (!r.budget) return undefined;
  const over = r.monthlyUsd > r.budget.monthlyUsd;
  const gap = Math.abs(r.monthlyUsd - r.budget.monthlyUsd);
  return {
    text: `${WHOLE.format(r.budget.monthlyUsd)}/month (tier ${r.tier}): ${over ? `OVER by ${money(gap)}` : `${money(gap)} headroom`}`,
    over,
  };
}

function usageLine(r: Renderable): string | undefined {
  if (!r.usage) return undefined;
  const u = r.usage;
  const s3 = u.s3.default;
  return `${[
    `NAT ${u.natGbPerMonth} GB/month`,
    `ALB ${u.albLcuPerHour} LCU/h`,
    `logs ${u.logGbPerMonth.default} GB/month per group (${Object.entries(u.logGbPerMonth.byName)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")})`,
    `RDS logs ${u.rdsLogGbPerMonth} GB/month`,
    `backup ${u.backupGb} GB`,
    `cache snapshots ${u.snapshotGb} GB`,
    `S3 ${s3.standardGb} GB Standard + ${s3.glacierGb} GB Glacier per bucket`,
    `ECR ${u.ecrGb} GB`,
    `EBS backups ${u.ebsBackupGbPerVolumeGb} GB per backed-up volume GB`,
    `burstable CPU ${Math.round(u.burstableCpuUtilization * 100)} % average`,
  ].join(" · ")} (the stack's config.usage, from infra/usage.ts)`;
}

/** "aws:ec2:NatGateway", "k8s:Deployment": a type token short enough for a table column. */
export function shortType(type: string): string {
  const [pkg, mod, name] = type.split(":");
  return pkg === "kubernetes" ? `k8s:${name}` : `${pkg}:${(mod ?? "").split("/")[0]}:${name}`;
}

function header(r: Renderable): string {
  const prices = r.prices ? `${r.prices.region} prices of ${r.prices.date}` : "no price table";
  return `${prices} · ${r.hoursPerMonth} h/month · data transfer out not counted`;
}

/** Expected figures that are not list prices (the Spot discount), with their sources. */
function assumptionLines(r: Renderable): string[] {
  return r.assumptions.map((a) => `assumption ${a.name}: ${a.value} (${a.unit}; ${a.source}; recorded ${a.date})`);
}

const COLUMNS_NOTE =
  "with schedules: expected bill (schedules, Spot at its expected discount) · on-demand: 730 h at full size, list prices · at max: every node group at its maximum size, bursts at their ceiling";

export function renderCostTable(report: CostReport): string {
  const r = complete(report);
  const lines = [`cost · ${header(r)}`];
  const rows = [
    ["component", "on-demand", "with schedules", "saving", "at max"],
    ...r.components.map((c) => [
      c.component,
      money(c.onDemandMonthlyUsd),
      money(c.monthlyUsd),
      saving(c.onDemandMonthlyUsd, c.monthlyUsd),
      money(c.maxMonthlyUsd),
    ]),
    [
      "total",
      money(r.onDemandMonthlyUsd),
      money(r.monthlyUsd),
      saving(r.onDemandMonthlyUsd, r.monthlyUsd),
      money(r.maxMonthlyUsd),
    ],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows)
    lines.push(`  ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ")}`);
  lines.push(`  ${COLUMNS_NOTE}`);
  for (const a of assumptionLines(r)) lines.push(`  ${a}`);
  const guide = guideComparison(r);
  if (guide) lines.push(`  guide   ${guide}`);
  const budget = budgetStatus(r);
  if (budget) lines.push(`  budget  ${budget.text}`);

  if (r.items.length) {
    lines.push("", "  resources, most expensive first (with schedules / on-demand):");
    const sorted = [...r.items].sort((a, b) => b.onDemandMonthlyUsd - a.onDemandMonthlyUsd);
    const wName = Math.max(...sorted.map((i) => i.name.length));
    const wType = Math.max(...sorted.map((i) => shortType(i.type).length));
    const wMoney = Math.max(...sorted.map((i) => money(i.onDemandMonthlyUsd).length));
    for (const i of sorted) {
      lines.push(
        `    ${i.name.padEnd(wName)}  ${shortType(i.type).padEnd(wType)}  ${money(i.monthlyUsd).padStart(wMoney)} / ${money(i.onDemandMonthlyUsd).padStart(wMoney)}  ${i.detail ?? ""}`.trimEnd(),
      );
    }
  }
  if (r.schedules.length) {
    lines.push("", "  schedules (read from the plan's Schedule resources):");
    for (const s of r.schedules) {
      lines.push(`    ${s.target}: ${s.effect} (-${pct(s.reduction, 1)})`);
      for (const d of s.schedules) lines.push(`      ${d}`);
    }
  }
  const usage = usageLine(r);
  if (usage) lines.push("", `  usage assumptions: ${usage}`);
  const freeCount = r.free.reduce((n, f) => n + f.count, 0);
  lines.push(
    `  free: ${freeCount} resources of ${new Set(r.free.map((f) => f.type)).size} types (catalog: infra/cost/catalog.ts)`,
  );
  if (r.unpriced.length) {
    lines.push(`  UNPRICED: ${r.unpriced.length} resource(s), not in the totals:`);
    for (const u of r.unpriced) lines.push(`    ${u.type} ${u.name}${u.reason ? `: ${u.reason}` : ""}`);
  } else lines.push("  unpriced: none");
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join("\n");
}

function saving(onDemand: number, scheduled: number): string {
  const s = onDemand - scheduled;
  return s <= 0.005 ? "-" : `${money(s)} (${pct(s, onDemand)})`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export function renderCostMarkdown(report: CostReport): string {
  const r = complete(report);
  const s = r.onDemandMonthlyUsd - r.monthlyUsd;
  const lines = [
    `#### Cost: **${money(r.monthlyUsd)}/month** with schedules · ${money(r.onDemandMonthlyUsd)} on-demand${s > 0.005 ? ` · saving ${money(s)} (${pct(s, r.onDemandMonthlyUsd)})` : ""}`,
    "",
    `_${header(r)}_`,
    "",
    "| component | on-demand | with schedules | saving | at max |",
    "|---|---:|---:|---:|---:|",
    ...r.components.map(
      (c) =>
        `| ${cell(c.component)} | ${money(c.onDemandMonthlyUsd)} | ${money(c.monthlyUsd)} | ${saving(c.onDemandMonthlyUsd, c.monthlyUsd)} | ${money(c.maxMonthlyUsd)} |`,
    ),
    `| **total** | **${money(r.onDemandMonthlyUsd)}** | **${money(r.monthlyUsd)}** | **${saving(r.onDemandMonthlyUsd, r.monthlyUsd)}** | **${money(r.maxMonthlyUsd)}** |`,
    "",
    `_${COLUMNS_NOTE}_`,
    "",
  ];
  for (const a of assumptionLines(r)) lines.push(`- ${cell(a)}`);
  const guide = guideComparison(r);
  if (guide) lines.push(`- Guide figure for tier \`${r.tier}\`: ${guide}`);
  const budget = budgetStatus(r);
  if (budget) lines.push(`- Budget: ${budget.over ? `**${budget.text}**` : budget.text}`);
  if (r.unpriced.length) {
    lines.push(
      `- **Unpriced (${r.unpriced.length}, not in the totals):** ${r.unpriced.map((u) => `\`${u.type}\` ${u.name}${u.reason ? ` (${cell(u.reason)})` : ""}`).join("; ")}`,
    );
  }
  for (const w of r.warnings) lines.push(`- Warning: ${cell(w)}`);
  if (r.items.length) {
    const freeCount = r.free.reduce((n, f) => n + f.count, 0);
    lines.push(
      "",
      `<details><summary>Resources: ${r.items.length} priced, ${freeCount} free, ${r.unpriced.length} unpriced</summary>`,
      "",
    );
    lines.push("| resource | type | with schedules | on-demand | how |", "|---|---|---:|---:|---|");
    for (const i of [...r.items].sort((a, b) => b.onDemandMonthlyUsd - a.onDemandMonthlyUsd)) {
      lines.push(
        `| ${cell(i.name)} | \`${shortType(i.type)}\` | ${money(i.monthlyUsd)} | ${money(i.onDemandMonthlyUsd)} | ${cell(i.detail ?? "")} |`,
      );
    }
    lines.push("", "</details>");
  }
  if (r.schedules.length) {
    lines.push("", "<details><summary>Schedules</summary>", "");
    for (const sch of r.schedules) {
      lines.push(`- **${cell(sch.target)}**: ${cell(sch.effect)} (-${pct(sch.reduction, 1)})`);
      for (const d of sch.schedules) lines.push(`  - \`${d.replace(/`/g, "'")}\``);
    }
    lines.push("", "</details>");
  }
  const usage = usageLine(r);
  if (usage) lines.push("", "<details><summary>Usage assumptions</summary>", "", cell(usage), "", "</details>");
  return lines.join("\n");
}
