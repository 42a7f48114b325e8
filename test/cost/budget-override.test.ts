// One verdict on a stack's budget: `plan` (its cost section and the budget policy) and `cost` read the budget
// the stack resolved, overrides included, from the plan, never the tier preset.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OVERRIDE = ["--stack", "prod", "--config", 'agent-stack:overrides={"budget":{"monthlyUsd":5000}}'];

function run(cli: string, ...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", `infra/review/${cli}`, ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test("prod with its budget overridden to $5,000: plan and cost both exit 1 and both name $5,000, never the tier's $7,000", () => {
  const plan = run("plan-cli.ts", ...OVERRIDE);
  const cost = run("cost-cli.ts", ...OVERRIDE);
  assert.equal(plan.code, 1, plan.out);
  assert.equal(cost.code, 1, cost.out);
  assert.match(plan.out, /budget {2}\$5,000\/month \(tier medium\): OVER by/);
  assert.match(plan.out, /\[mandatory\] stack-within-budget .*exceeds the \$5,000 budget/);
  assert.match(cost.out, /over budget: .* is above \$5,000\.00\/month/);
  for (const out of [plan.out, cost.out]) assert.doesNotMatch(out, /\$7,000/);
});
