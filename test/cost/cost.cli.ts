// The cost CLI as a user runs it: plan files, diff, preview JSON, and the budget guard's exit code.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { HOURS_PER_MONTH, loadPrices } from "../../infra/cost/prices.ts";
import { money } from "../../infra/cost/render.ts";
import { TIERS } from "../../infra/tiers.ts";
import { runCli, TWO_AT_ONCE } from "../support/cli.ts";
import { nodeGroupWithTemplate, plan } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "cost-cli-"));

const cost = (...args: string[]) => runCli("infra/review/cost-cli.ts", args);

function planFile(name: string, tier: string, gpuNodes: number): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(plan(nodeGroupWithTemplate("gpu", "g5.4xlarge", gpuNodes, 200), tier)));
  return file;
}

// One g5.4xlarge with a 200 GB gp3 root volume ($1.624 × 730 + 200 × $0.08 = $1,201.52 at the 2026-11-24 prices).
const prices = loadPrices("us-east-1");
const perNode = Math.round((prices.usd("ec2:g5.4xlarge") * HOURS_PER_MONTH + 200 * prices.usd("ebs:gp3")) * 100) / 100;
const esc = (text: string) => text.replace(/[$.*+?()[\]{}|^]/g, "\\$&");
const oneGpu = planFile("one", "medium", 1);
// Enough GPU nodes to go over the medium tier's budget, whatever it is set to.
const manyNodes = Math.floor(TIERS.medium.budget.monthlyUsd / perNode) + 1;
const overBudget = planFile("many", "medium", manyNodes);

describe("npm run cost", TWO_AT_ONCE, () => {
  it("prices a plan file and passes when within --max-monthly", async () => {
    const r = await cost(oneGpu, "--max-monthly", String(perNode + 300));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`total\\s+${esc(money(perNode))}\\s+${esc(money(perNode))}`));
    assert.match(r.stderr, new RegExp(`within budget: estimated ${esc(money(perNode))}/month`));
  });

  it("exits 1 with the reason when the estimate is above --max-monthly", async () => {
    const r = await cost(oneGpu, "--max-monthly", "1000");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `over budget: estimated ${esc(money(perNode))}/month .* is above \\$1,000\\.00/month, --max-monthly, by ${esc(money(perNode - 1000))}`,
      ),
    );
  });

  it("defaults to the budget the plan carries (config.budget)", async () => {
    const r = await cost(overBudget);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`above ${esc(money(TIERS.medium.budget.monthlyUsd))}/month, the budget of stack test`));
    assert.equal((await cost(oneGpu)).code, 0);
  });

  it("prints JSON and markdown", async () => {
    const json = JSON.parse((await cost(oneGpu, "--format", "json", "--max-monthly", "1e6")).stdout);
    assert.equal(json.monthlyUsd, perNode);
    assert.equal(json.items[0].type, "aws:eks/nodeGroup:NodeGroup");
    assert.match(
      (await cost(oneGpu, "--format", "markdown", "--max-monthly", "1e6")).stdout,
      new RegExp(`^#### Cost: \\*\\*${esc(money(perNode))}/month\\*\\*`),
    );
  });

  it("diff: what head adds to base", async () => {
    const r = await cost("diff", oneGpu, overBudget, "--max-monthly", "1e6");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `${esc(money(perNode))} -> ${esc(money(manyNodes * perNode))}/month with schedules: \\+${esc(money((manyNodes - 1) * perNode))}`,
      ),
    );
    assert.match(r.stdout, /changed\s+gpu\s+aws:eks:NodeGroup .* scalingConfig/);
  });

  it("--preview-json: prices a pulumi preview and guards the head total", async () => {
    const fixture = "test/cost/fixtures/preview-update.json";
    const over = await cost("--preview-json", fixture, "--max-monthly", "1000");
    assert.equal(over.code, 1, over.stderr);
    assert.match(over.stderr, /over budget: estimated \$[\d,.]+\/month/);
    assert.match(over.stdout, /cost diff prod -> prod/);
    assert.match(over.stdout, /UNPRICED in head: aws:eks\/nodeGroup:NodeGroup cluster-batch/);
    assert.equal((await cost("--preview-json", fixture, "--max-monthly", "100000")).code, 0);
  });

  it("exits 2 on bad usage, naming the problem", async () => {
    assert.equal((await cost()).code, 2);
    const badFormat = await cost(oneGpu, "--format", "xml");
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /--format: "xml" is not a format/);
    assert.match((await cost(oneGpu, "--max-monthly", "lots")).stderr, /--max-monthly: "lots" is not an amount/);
    assert.match((await cost(join(dir, "missing.json"))).stderr, /plan .*missing\.json: ENOENT/);
  });
});
