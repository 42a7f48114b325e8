// One verdict on a stack's budget: `plan` (its cost section and the budget policy) and `cost` read the budget
// the stack resolved, overrides included, from the plan, never the tier preset.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../support/cli.ts";

const OVERRIDE = ["--stack", "prod", "--config", 'agent-stack:overrides={"budget":{"monthlyUsd":5000}}'];

test("prod with its budget overridden to $5,000: plan and cost both exit 1 and both name $5,000, never the tier's $7,000", async () => {
  const [plan, cost] = await Promise.all(
    ["plan-cli.ts", "cost-cli.ts"].map(async (cli) => {
      const r = await runCli(`infra/review/${cli}`, OVERRIDE);
      return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
    }),
  );
  assert.equal(plan!.code, 1, plan!.out);
  assert.equal(cost!.code, 1, cost!.out);
  assert.match(plan!.out, /budget {2}\$5,000\/month \(tier medium\): OVER by/);
  assert.match(plan!.out, /\[mandatory\] stack-within-budget .*exceeds the \$5,000 budget/);
  assert.match(cost!.out, /over budget: .* is above \$5,000\.00\/month/);
  for (const out of [plan!.out, cost!.out]) assert.doesNotMatch(out, /\$7,000/);
});
