// The cost CLI as a user runs it: plan files, diff, preview JSON, and the budget guard's exit code.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { nodeGroupWithTemplate, plan } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "cost-cli-"));

function cost(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "infra/cost/cli.ts", ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function planFile(name: string, tier: string, gpuNodes: number): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(plan(nodeGroupWithTemplate("gpu", "g5.4xlarge", gpuNodes, 200), tier)));
  return file;
}

// One g5.4xlarge with 200 GB gp3: $1.624 × 730 + 200 × $0.08 = $1,201.52 a month.
const oneGpu = planFile("one", "medium", 1);
const sixGpus = planFile("six", "medium", 6);

describe("npm run cost", () => {
  it("prices a plan file and passes when within --max-monthly", () => {
    const r = cost(oneGpu, "--max-monthly", "1500");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /total\s+\$1,201\.52\s+\$1,201\.52/);
    assert.match(r.stderr, /within budget: estimated \$1,201\.52\/month/);
  });

  it("exits 1 with the reason when the estimate is above --max-monthly", () => {
    const r = cost(oneGpu, "--max-monthly", "1000");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /over budget: estimated \$1,201\.52\/month .* is above \$1,000\.00\/month, --max-monthly, by \$201\.52/);
  });

  it("defaults to the budget of the plan's tier", () => {
    const r = cost(sixGpus);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /above \$6,000\.00\/month, the budget of tier medium/);
    assert.equal(cost(oneGpu).code, 0);
  });

  it("prints JSON and markdown", () => {
    const json = JSON.parse(cost(oneGpu, "--format", "json", "--max-monthly", "1e6").stdout);
    assert.equal(json.monthlyUsd, 1201.52);
    assert.equal(json.items[0].type, "aws:eks/nodeGroup:NodeGroup");
    assert.match(cost(oneGpu, "--format", "markdown", "--max-monthly", "1e6").stdout, /^#### Cost: \*\*\$1,201\.52\/month\*\*/);
  });

  it("diff: what head adds to base", () => {
    const r = cost("diff", oneGpu, sixGpus, "--max-monthly", "1e6");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\$1,201\.52 -> \$7,209\.12\/month with schedules: \+\$6,007\.60/);
    assert.match(r.stdout, /changed\s+gpu\s+aws:eks:NodeGroup .* scalingConfig/);
  });

  it("--preview-json: prices a pulumi preview and guards the head total", () => {
    const fixture = "test/cost/fixtures/preview-update.json";
    const over = cost("--preview-json", fixture);
    assert.equal(over.code, 1, "the head of the prod preview is above the medium budget");
    assert.match(over.stdout, /cost diff prod -> prod/);
    assert.match(over.stdout, /UNPRICED in head: aws:eks\/nodeGroup:NodeGroup cluster-batch/);
    assert.equal(cost("--preview-json", fixture, "--max-monthly", "100000").code, 0);
  });

  it("exits 2 on bad usage, naming the problem", () => {
    assert.equal(cost().code, 2);
    const badFormat = cost(oneGpu, "--format", "xml");
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /--format: "xml" is not a format/);
    assert.match(cost(oneGpu, "--max-monthly", "lots").stderr, /--max-monthly: "lots" is not an amount/);
    assert.match(cost(join(dir, "missing.json")).stderr, /plan .*missing\.json: ENOENT/);
  });
});
