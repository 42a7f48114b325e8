// `npm run bench:plan`: wall time of the offline plan of the prod stack (program + cost + policies, as
// `npx tsx infra/review/plan-cli.ts --stack prod --format json`) beside the floor of a bare process that only imports
// @pulumi/pulumi, @pulumi/aws and @pulumi/kubernetes, spawned the same way, interleaved in the same run.
// Not a test: it prints the numbers and the ratio. `--runs N` (default 3).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { exitAfterFlush } from "../infra/review/exit.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SELF = fileURLToPath(import.meta.url);

interface Run {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function timed(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn("npx", ["tsx", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ ms: performance.now() - start, code, stdout, stderr }));
  });
}

function stats(ms: number[]): { min: number; median: number; mean: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], mean: ms.reduce((s, x) => s + x, 0) / ms.length };
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** What the plan's JSON says was evaluated, so a fast number cannot hide skipped work. */
function evaluated(stdout: string): string {
  try {
    const plan = JSON.parse(stdout);
    return `${plan.resources.length} resources, cost ${plan.cost ? `$${plan.cost.monthlyUsd}/month` : "not evaluated"}, policies ${plan.policies ? "evaluated" : "not evaluated"}`;
  } catch {
    return "output is not a plan JSON";
  }
}

async function floor(): Promise<void> {
  await import("@pulumi/pulumi");
  await import("@pulumi/aws");
  await import("@pulumi/kubernetes");
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { floor: { type: "boolean" }, runs: { type: "string", default: "3" } } });
  if (values.floor) {
    await floor();
    return 0;
  }
  const runs = Number(values.runs);
  const planArgs = ["infra/review/plan-cli.ts", "--stack", "prod", "--format", "json"];
  const floorMs: number[] = [];
  const planMs: number[] = [];
  let last: Run | undefined;
  for (let i = 0; i < runs; i++) {
    const f = await timed([SELF, "--floor"]);
    if (f.code !== 0) throw new Error(`floor run failed (${f.code}): ${f.stderr}`);
    floorMs.push(f.ms);
    const p = await timed(planArgs);
    // 1 is a completed plan with a mandatory policy violation; anything else did not complete.
    if (p.code !== 0 && p.code !== 1) throw new Error(`plan run failed (${p.code}): ${p.stderr.slice(-2000)}`);
    planMs.push(p.ms);
    last = p;
    console.log(`run ${i + 1}/${runs}: floor ${fmt(f.ms)}, plan ${fmt(p.ms)}`);
  }
  const f = stats(floorMs);
  const p = stats(planMs);
  console.log("");
  console.log(
    `floor (import @pulumi/pulumi, @pulumi/aws, @pulumi/kubernetes): median ${fmt(f.median)}  min ${fmt(f.min)}  mean ${fmt(f.mean)}`,
  );
  console.log(
    `plan --stack prod --format json:                            median ${fmt(p.median)}  min ${fmt(p.min)}  mean ${fmt(p.mean)}`,
  );
  console.log(`  (${evaluated(last!.stdout)})`);
  console.log(
    `ratio plan / floor (medians): ${(p.median / f.median).toFixed(2)}x; the plan's own work: ${fmt(p.median - f.median)}`,
  );
  return 0;
}

main().then(exitAfterFlush, (err: unknown) => {
  console.error(`bench:plan: ${(err as Error).message}`);
  process.exit(1);
});
