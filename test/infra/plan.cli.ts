// The offline plan as a user runs it: JSON contract, unknown stacks, secure config values.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadStackFile, REPO_ROOT, UnknownStackError } from "../../infra/plan/stackfile.ts";
import { type Plan, type PlannedResource, UNKNOWN_VALUE } from "../../infra/plan/types.ts";
import { planCli, TWO_AT_ONCE } from "../support/cli.ts";

/** prod's plan as JSON, run once for the tests that read it. */
let prodRun: ReturnType<typeof planCli> | undefined;
const prodJson = async () => {
  const run = await (prodRun ??= planCli("--stack", "prod", "--format", "json"));
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
};

describe("npm run plan", TWO_AT_ONCE, () => {
  it("--format json prints the DESIGN.md contract for prod", async () => {
    const json = await prodJson();
    assert.equal(json.stack, "prod");
    assert.equal(json.tier, "medium");
    assert.ok(Array.isArray(json.resources) && json.resources.length > 50);
    for (const r of json.resources)
      assert.ok(typeof r.type === "string" && typeof r.name === "string" && typeof r.inputs === "object");
    assert.ok(typeof json.cost.monthlyUsd === "number" && json.cost.monthlyUsd > 0, JSON.stringify(json.cost).slice(0, 200));
    assert.ok(json.cost.items.length > 0);
    assert.ok(Array.isArray(json.policies.violations), JSON.stringify(json.policies).slice(0, 200));
    const types = new Set(json.resources.map((r: any) => r.type));
    for (const t of [
      "aws:ec2/vpc:Vpc",
      "aws:eks/cluster:Cluster",
      "aws:eks/nodeGroup:NodeGroup",
      "aws:rds/instance:Instance",
      "aws:elasticache/replicationGroup:ReplicationGroup",
      "aws:ecr/repository:Repository",
    ]) {
      assert.ok(types.has(t), `missing ${t}`);
    }
  });

  it("an unknown stack fails with the list of stacks", async () => {
    const run = await planCli("--stack", "nope");
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown stack "nope"; stacks in this project: dev, prod/);
    assert.equal(run.stdout, "");
  });

  it("a bad config value fails before any resource, naming the key and the allowed values", async () => {
    const run = await planCli("--stack", "dev", "--config", "agent-stack:tier=huge");
    assert.equal(run.code, 2);
    assert.match(run.stderr, /agent-stack:tier: "huge" is not allowed; allowed: dev, small, medium, large/);
    assert.equal(run.stdout, "");
  });

  it("--config evaluates another tier without editing the stack file", async () => {
    // A production tier needs its domain and hosted zone (policy production-https); dev's file has none.
    const run = await planCli(
      "--stack",
      "dev",
      "--config",
      "agent-stack:tier=small",
      "--config",
      "agent-stack:domain=api.example.com",
      "--config",
      "agent-stack:hostedZoneId=Z0EXAMPLE",
      "--format",
      "json",
    );
    assert.equal(run.code, 0, run.stderr);
    const json = JSON.parse(run.stdout);
    assert.equal(json.tier, "small");
    assert.ok(json.resources.some((r: any) => r.inputs.amiType === "AL2023_x86_64_NVIDIA"));
  });

  it("a stack name that has no file is rejected before anything runs", async () => {
    assert.throws(() => loadStackFile("other", REPO_ROOT), UnknownStackError);
    assert.throws(
      () => loadStackFile(undefined, REPO_ROOT),
      /no stack given \(--stack <name>\); stacks in this project: dev, prod/,
    );
  });

  it("secure values are passed as [secret] and marked secret; structured values as JSON", async () => {
    const root = mkdtempSync(join(tmpdir(), "plan-"));
    writeFileSync(
      join(root, "Pulumi.s.yaml"),
      [
        "config:",
        "  aws:region: eu-west-1",
        "  agent-stack:alertSlackWebhookUrl:",
        "    secure: v1:abcdef",
        "  agent-stack:overrides:",
        "    api:",
        "      maxReplicas: 4",
      ].join("\n"),
    );
    const file = loadStackFile("s", root);
    assert.equal(file.config["agent-stack:alertSlackWebhookUrl"], "[secret]");
    assert.deepEqual(file.secretKeys, ["agent-stack:alertSlackWebhookUrl"]);
    assert.deepEqual(JSON.parse(file.config["agent-stack:overrides"]), { api: { maxReplicas: 4 } });
  });

  it("table format groups by component and shows the sizes that matter", async () => {
    const run = await planCli("--stack", "dev");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^stack dev · tier dev/);
    assert.match(run.stdout, /\ncluster \(\d+\)\n/);
    assert.match(run.stdout, /m7g\.xlarge,m6g\.xlarge 1\/1\/2 \(min\/desired\/max\)/);
    assert.match(run.stdout, /db\.t4g\.micro single-AZ/);
  });

  it("the plan carries its cost and policy verdict, and a mandatory violation fails it", async () => {
    const ok = await planCli("--stack", "dev", "--format", "json");
    assert.equal(ok.code, 0, ok.stderr);
    const json = JSON.parse(ok.stdout);
    assert.ok(json.cost.monthlyUsd > 0 && json.cost.onDemandMonthlyUsd >= json.cost.monthlyUsd);
    assert.deepEqual(json.cost.unpriced, []);
    assert.deepEqual(
      json.policies.violations.filter((v: any) => v.level === "mandatory"),
      [],
    );

    const bad = await planCli(
      "--stack",
      "dev",
      "--config",
      'agent-stack:overrides={"database":{"backupRetentionDays":1}}',
      "--format",
      "json",
    );
    assert.equal(bad.code, 1);
    const violations = JSON.parse(bad.stdout).policies.violations;
    assert.ok(
      violations.some((v: any) => v.policy === "rds-backup-retention" && v.level === "mandatory"),
      JSON.stringify(violations),
    );
  });

  it("--first-preview: prod's first preview has every resource, the whole cost and no policy left unjudged", async () => {
    const [full, run] = await Promise.all([prodJson(), planCli("--stack", "prod", "--first-preview", "--format", "json")]);
    assert.equal(run.code, 0, run.stderr);
    const preview = JSON.parse(run.stdout) as Plan;
    assert.equal(preview.firstPreview, true);
    // No resource is declared inside an apply of a value a preview cannot know: the review would not show it. (In
    // another order: resources register as their inputs resolve.)
    assert.deepEqual(preview.resources.map((r) => r.urn).sort(), full.resources.map((r: PlannedResource) => r.urn).sort());
    const unknowns = preview.resources.filter((r) => JSON.stringify(r.inputs).includes(UNKNOWN_VALUE));
    assert.ok(unknowns.length > 50, `${unknowns.length} resources with an unknown input: the preview did not model them`);
    // The estimate reads nothing AWS computes: the Qdrant volumes' storage class, read from the class's own outputs,
    // was unknown, and the vault's EBS recovery points ($75 a month) went unpriced.
    assert.equal(preview.cost!.monthlyUsd, full.cost.monthlyUsd);
    const priced = (p: Plan) => p.cost!.items.map((i) => `${i.name} ${i.monthlyUsd} ${i.detail ?? ""}`).sort();
    assert.deepEqual(priced(preview), priced(full));
    // The engine reports a policy that read an unknown value as an advisory "can't run", judging nothing (five
    // mandatory ones did, on the keys and the image created in the same update); none is left so.
    assert.deepEqual(preview.policies!.violations, []);
    // The stack policies that read Kubernetes objects see none of them (no outputs before the cluster exists): the
    // review names them, as the engine does not. namespace-pod-security passed this way on every new stack.
    const blind = preview.policies!.blindOnFirstPreview!;
    assert.ok(blind.some((b) => b.policy === "namespace-pod-security"));
    for (const b of blind)
      assert.ok(
        b.resources.every((urn) => urn.includes("$kubernetes:")),
        b.policy,
      );
    assert.equal(full.policies.blindOnFirstPreview, undefined);
    // Kubernetes objects name their namespace as a known value that still depends on the Namespace.
    const namespaced = preview.resources.filter(
      (r) => r.type.startsWith("kubernetes:") && (r.inputs.metadata as { namespace?: unknown } | undefined)?.namespace,
    );
    assert.ok(namespaced.length > 50, `${namespaced.length} namespaced objects`);
    for (const r of namespaced) {
      const namespace = (r.inputs.metadata as { namespace: unknown }).namespace;
      assert.notEqual(namespace, UNKNOWN_VALUE, `${r.name}: namespace unknown`);
      assert.ok(
        r.propertyDependencies?.metadata?.some((urn) => urn.endsWith(`Namespace::${namespace}`)),
        `${r.name}: no dependency on namespace ${namespace}`,
      );
    }
  });
});
