// Issue 13's plan-time refusals, as a user meets them: a stack with no alert receiver, and models that do not
// fit the GPU. Both exit 2 with one message naming what to set.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../../infra/plan/stackfile.ts";
import { planCli, runCli, TWO_AT_ONCE } from "../support/cli.ts";

describe("plan-time refusals", TWO_AT_ONCE, () => {
  it("a stack that names no receiver fails the plan and says what to set", async () => {
    const root = mkdtempSync(join(tmpdir(), "no-receiver-"));
    writeFileSync(join(root, "Pulumi.lonely.yaml"), "config:\n  aws:region: us-east-1\n  agent-stack:tier: dev\n");
    // runPlan reads stack files from `root`; the CLI from the repository, so this one goes through the harness.
    const run = await runCli("-e", [
      `import("${join(REPO_ROOT, "infra/plan/harness.ts")}").then((h) => h.runPlan({ stack: "lonely", root: ${JSON.stringify(root)} }))
      .then(() => process.exit(0), (e) => { console.error(e.name + ": " + e.message); process.exit(3); });`,
    ]);
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /ConfigError: stack lonely has no alert receiver, so alerts and budget warnings would reach nobody; set agent-stack:notifyEmail/,
    );
    assert.match(run.stderr, /agent-stack:alertSlackWebhookUrl or agent-stack:alertPagerdutyKey/);
  });

  it("models that do not fit the GPU fail the plan with the memory budget (exit 2)", async () => {
    const run = await planCli(
      "--stack",
      "prod",
      "--config",
      `agent-stack:overrides=${JSON.stringify({ ollama: { models: { large: "qwen2.5:32b" }, kvCacheType: "f16" } })}`,
    );
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /agent-stack:overrides\.ollama\.models: 4 models resident, 4 parallel x 4096 tokens, KV f16 need \d+ MiB but NVIDIA A10G on g5\.2xlarge/,
    );
  });

  it("the table report prints the memory budget", async () => {
    const run = await planCli("--stack", "prod");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\ncapacity\n {2}memory vector node r7g\.2xlarge: 65536 MiB - .* = 60242 MiB; requests qdrant 56Gi/);
    assert.match(run.stdout, / {4}total \d+ MiB of 22516 MiB, \d+ MiB free/);
  });
});
