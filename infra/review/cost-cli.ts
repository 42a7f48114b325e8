// `npm run cost -- ...`: the cost estimate of a stack, a plan file, a plan diff or a real `pulumi preview --json`.
//
//   npm run cost -- --stack <name> [--config key=value ...] [--tier <tier>]   run the offline plan and price it
//   npm run cost -- <plan.json>                           price a plan printed by `npm run plan -- --format json`
//   npm run cost -- diff <base.json> <head.json>          what a change adds to the bill
//   npm run cost -- --preview-json <preview.json>         price `pulumi preview --json` (create/update/delete/replace)
//   common: [--format table|markdown|json] [--max-monthly <usd>]
//
// Exit codes: 0 within budget, 1 over budget (--max-monthly, default the budget the plan carries) or no price table for
// the stack's region to check it with, 2 bad usage or input.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { PROJECT } from "../config.ts";
import {
  budgetCheck,
  type CostDiff,
  type CostEstimate,
  diffCosts,
  estimateCost,
  type PreviewDigest,
  renderCostMarkdown,
  renderCostTable,
  renderDiffMarkdown,
  renderDiffTable,
} from "../cost/index.ts";
import type { CostReport, Plan } from "../plan/types.ts";
import { configFlags, type Format, formatOf, STACK_FLAGS, UsageError } from "./args.ts";
import { exitAfterFlush, isUsageError } from "./exit.ts";
import { previewPlans } from "./preview-config.ts";

function readJson<T>(file: string, what: string): T {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new UsageError(`${what} ${file} is not JSON: ${(err as Error).message}`);
  }
}

function readPlan(file: string): Plan & { cost: CostReport } {
  const plan = readJson<Plan>(file, "plan");
  if (!Array.isArray(plan.resources) || typeof plan.stack !== "string") {
    throw new UsageError(
      `plan ${file} is not a plan (no stack/resources); make one with \`npm run plan -- --stack <s> --format json\``,
    );
  }
  // The cost printed with the plan is the one of its commit; a plan without one is priced now.
  return { ...plan, cost: plan.cost?.items ? plan.cost : estimateCost(plan) };
}

function printReport(cost: CostReport, format: Format): void {
  if (format === "json") console.log(JSON.stringify(cost, null, 2));
  else console.log(format === "markdown" ? renderCostMarkdown(cost) : renderCostTable(cost));
}

function printDiff(diff: CostDiff, format: Format): void {
  if (format === "json") console.log(JSON.stringify(diff, null, 2));
  else console.log(format === "markdown" ? renderDiffMarkdown(diff) : renderDiffTable(diff));
}

function warningsOf(cost: CostReport): string[] {
  return Array.isArray(cost.warnings) ? (cost.warnings as string[]) : [];
}

/** Prints the budget verdict on stderr; the exit code. */
function guard(cost: CostReport, maxMonthly: number | undefined): number {
  const check = budgetCheck(cost as CostEstimate, maxMonthly);
  console.error(`cost: ${check.message}`);
  return check.fails ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...STACK_FLAGS,
      tier: { type: "string" },
      "max-monthly": { type: "string" },
      "preview-json": { type: "string" },
    },
  });
  const format = formatOf(values.format);
  let maxMonthly: number | undefined;
  if (values["max-monthly"] !== undefined) {
    maxMonthly = Number(values["max-monthly"]);
    if (!Number.isFinite(maxMonthly) || maxMonthly < 0)
      throw new UsageError(`--max-monthly: "${values["max-monthly"]}" is not an amount in USD`);
  }

  if (positionals[0] === "diff") {
    if (positionals.length !== 3) throw new UsageError("usage: npm run cost -- diff <base.json> <head.json>");
    const [base, head] = [readPlan(positionals[1]), readPlan(positionals[2])];
    printDiff(diffCosts(base, head, warningsOf(head.cost)), format);
    return guard(head.cost, maxMonthly);
  }
  if (values["preview-json"] !== undefined) {
    const digest = readJson<PreviewDigest>(values["preview-json"], "preview");
    if (!Array.isArray(digest.steps))
      throw new UsageError(`${values["preview-json"]} has no steps[]; make it with \`pulumi preview --json\``);
    const { base, head, notes } = previewPlans(digest);
    const baseCost = estimateCost(base);
    const headCost = estimateCost(head);
    printDiff(diffCosts({ ...base, cost: baseCost }, { ...head, cost: headCost }, [...notes, ...headCost.warnings]), format);
    return guard(headCost, maxMonthly);
  }
  if (values.stack !== undefined) {
    if (positionals.length) throw new UsageError("give either --stack or a plan file, not both");
    const { runPlan } = await import("../plan/harness.ts");
    const config = { ...configFlags(values.config as string[]), ...(values.tier ? { [`${PROJECT}:tier`]: values.tier } : {}) };
    const plan = await runPlan({ stack: values.stack, config });
    const cost = estimateCost(plan);
    printReport(cost, format);
    return guard(cost, maxMonthly);
  }
  if (positionals.length === 1) {
    const plan = readPlan(positionals[0]);
    printReport(plan.cost, format);
    return guard(plan.cost, maxMonthly);
  }
  throw new UsageError(
    "usage: npm run cost -- (--stack <name> [--config key=value ...] [--tier <tier>] | <plan.json> | diff <base.json> <head.json> | --preview-json <file>) [--format table|markdown|json] [--max-monthly <usd>]",
  );
}

main(process.argv.slice(2)).then(exitAfterFlush, (err: unknown) => {
  if (isUsageError(err)) {
    console.error(`cost: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(2);
});
