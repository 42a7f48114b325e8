// `npm run bench:cost`: each tier's monthly cost beside the guide's shape of that tier (bench/guide-shapes.ts),
// both priced by the same estimator from the offline plan of the prod stack file with the tier swapped in, and
// their ratio on-demand (730 h at full size) and with schedules. Also the cost at every group's maximum.
// One plan per child process, the plan CLI as a user runs it. Not a test: it prints numbers.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { exitAfterFlush } from "../infra/review/exit.ts";
import { TIER_NAMES } from "../infra/tiers.ts";
import { GUIDE_SHAPES } from "./guide-shapes.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

interface Cost {
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  maxMonthlyUsd: number;
}

function planCost(tier: string, overrides?: Record<string, unknown>): Promise<Cost> {
  const args = ["tsx", "infra/review/plan-cli.ts", "--stack", "prod", "--format", "json", "--config", `agent-stack:tier=${tier}`];
  if (overrides) args.push("--config", `agent-stack:overrides=${JSON.stringify(overrides)}`);
  return new Promise((resolve, reject) => {
    const child = spawn("npx", args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      // 1: a completed plan with a mandatory violation (the guide's types are outside the tier's allow-list).
      if (code !== 0 && code !== 1) return reject(new Error(`plan of ${tier} failed (${code}): ${stderr.slice(-1500)}`));
      const cost = JSON.parse(stdout).cost as Cost;
      resolve(cost);
    });
  });
}

const usd = (n: number) => `$${n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

async function main(): Promise<number> {
  const rows: string[][] = [
    ["tier", "on-demand", "guide shape", "ratio", "with schedules", "guide shape", "ratio", "at max", "guide at max"],
  ];
  for (const tier of TIER_NAMES) {
    const shape = GUIDE_SHAPES[tier];
    const [ours, guide] = [await planCost(tier), await planCost(tier, shape.overrides)];
    rows.push([
      tier,
      usd(ours.onDemandMonthlyUsd),
      usd(guide.onDemandMonthlyUsd),
      (ours.onDemandMonthlyUsd / guide.onDemandMonthlyUsd).toFixed(3),
      usd(ours.monthlyUsd),
      usd(guide.monthlyUsd),
      (ours.monthlyUsd / guide.monthlyUsd).toFixed(3),
      usd(ours.maxMonthlyUsd),
      usd(guide.maxMonthlyUsd),
    ]);
    console.error(`priced ${tier} and its guide shape (${shape.reference})`);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
  console.log(
    "\nus-east-1 list prices of infra/cost/prices/us-east-1.json, 730 h/month; Spot at the table's expected discount in 'with schedules' only.",
  );
  return 0;
}

main().then(exitAfterFlush, (err: unknown) => {
  console.error(`bench:cost: ${(err as Error).message}`);
  process.exit(1);
});
