// The preflight's command line: usage and credential errors exit 2 with one sentence, never a stack trace;
// the deploy workflow runs it before `pulumi up`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import YAML from "yaml";
import { runCli } from "../support/cli.ts";

const run = (args: string[], env: Record<string, string> = {}) =>
  runCli("infra/preflight/cli.ts", args, { NODE_NO_WARNINGS: "1", ...env });
const noStackTrace = (text: string) => assert.doesNotMatch(text, /^\s+at /m, text);

test("usage errors exit 2 with one sentence", async () => {
  const [missing, unknown, badConfig] = await Promise.all([
    run([]),
    run(["--stack", "nope"]),
    run(["--stack", "prod", "--config", "agent-stack:tier=huge"]),
  ]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^preflight: --stack is required, e\.g\. npm run preflight -- --stack prod$/m);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown stack "nope"; stacks in this project: .*prod/);
  assert.equal(badConfig.code, 2);
  assert.match(badConfig.stderr, /agent-stack:tier/);
  for (const r of [missing, unknown, badConfig]) noStackTrace(r.stderr);
});

test("no AWS credentials exit 2 saying how to sign in", async () => {
  const r = await run(["--stack", "prod"], {
    AWS_ACCESS_KEY_ID: "",
    AWS_SECRET_ACCESS_KEY: "",
    AWS_SESSION_TOKEN: "",
    AWS_PROFILE: "",
    AWS_CONFIG_FILE: "/nonexistent",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONTAINER_CREDENTIALS_FULL_URI: "",
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "",
    AWS_WEB_IDENTITY_TOKEN_FILE: "",
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^preflight: no usable AWS credentials \(.*\)\. Sign in first/m);
  noStackTrace(r.stderr);
});

test("the deploy workflow runs the preflight after getting credentials and before any pulumi command", () => {
  const steps = YAML.parse(readFileSync(".github/workflows/deploy-stack.yml", "utf8")).jobs.deploy.steps as {
    uses?: string;
    run?: string;
  }[];
  const index = (match: (s: { uses?: string; run?: string }) => boolean) => steps.findIndex(match);
  const preflight = index((s) => /npm run preflight -- --stack "\$STACK"/.test(s.run ?? ""));
  assert.ok(preflight > 0, "no preflight step");
  assert.ok(preflight > index((s) => (s.uses ?? "").startsWith("aws-actions/configure-aws-credentials")));
  assert.ok(preflight < index((s) => (s.uses ?? "").startsWith("pulumi/actions")));
  assert.ok(preflight < index((s) => /pulumi up/.test(s.run ?? "")));
});
