// `npm run cost:metrics`: writes monitoring/cost/<stack>.json, the plan's estimate the stack publishes into
// Prometheus, for every Pulumi.<stack>.yaml. One offline plan per child process (Pulumi's runtime is global).
import { spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { costEstimatePath } from "../monitoring/cost-estimate.ts";
import type { CostEstimate } from "../infra/cost/estimate.ts";
import { costEstimateFile } from "../infra/cost/estimate-file.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

function estimate(stack: string): Promise<CostEstimate> {
  return new Promise((resolve, reject) => {
    const child = spawn("npx", ["tsx", "infra/review/cost-cli.ts", "--stack", stack, "--format", "json"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) =>
      code === 0 || code === 1
        ? resolve(JSON.parse(out))
        : reject(new Error(`cost of ${stack} failed (${code}): ${err.slice(-1000)}`)),
    );
  });
}

const stacks = readdirSync(ROOT).flatMap((f) => /^Pulumi\.([\w-]+)\.yaml$/.exec(f)?.[1] ?? []);
for (const stack of stacks) {
  const file = costEstimateFile(await estimate(stack));
  writeFileSync(costEstimatePath(stack), `${JSON.stringify(file, null, 2)}\n`);
  console.log(
    `monitoring/cost/${stack}.json: $${file.monthlyUsd}/month, ${Object.keys(file.hourlyUsdByComponent).length} components`,
  );
}
