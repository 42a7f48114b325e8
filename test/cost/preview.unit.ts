// Pricing `pulumi preview --json` (fixtures follow Pulumi's display.PreviewDigest / apitype.ResourceV3 shapes):
// creates, updates, deletes, replaces, sames and reads; unknown values and secrets; the delta.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { diffCosts } from "../../infra/cost/diff.ts";
import { estimateCost } from "../../infra/cost/estimate.ts";
import type { PreviewDigest } from "../../infra/cost/preview.ts";
import { previewPlans as plansFromPreview } from "../../infra/review/preview-config.ts";
import { HOURS_PER_MONTH, loadPrices } from "../../infra/cost/prices.ts";
import { USAGE } from "../../infra/usage.ts";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8")) as PreviewDigest;
const prices = loadPrices("us-east-1");
const h = HOURS_PER_MONTH;

function priced(name: string) {
  const { base, head, notes, ops } = plansFromPreview(fixture(name));
  const baseCost = estimateCost(base);
  const headCost = estimateCost(head);
  return {
    base,
    head,
    notes,
    ops,
    baseCost,
    headCost,
    diff: diffCosts({ ...base, cost: baseCost }, { ...head, cost: headCost }, notes),
  };
}

describe("preview of an update (prod, --show-sames)", () => {
  const p = priced("preview-update.json");
  const change = (name: string, type: string) => {
    const c = p.diff.changes.find((x) => x.name === name && x.type === type);
    assert.ok(c, `no change for ${type} ${name}`);
    return c;
  };

  it("reads stack, tier and region from the URNs and the preview's config", () => {
    assert.equal(p.head.stack, "prod");
    assert.equal(p.head.tier, "medium");
    assert.equal(p.head.region, "us-east-1");
  });

  it("puts each step on its side: create -> head, delete -> base, update/replace/same -> both, read -> neither", () => {
    const names = (plan: typeof p.base) => new Set(plan.resources.map((r) => `${r.type.split(":").pop()}/${r.name}`));
    assert.ok(names(p.head).has("NodeGroup/cluster-batch") && !names(p.base).has("NodeGroup/cluster-batch"));
    assert.ok(names(p.base).has("NatGateway/network-nat-2") && !names(p.head).has("NatGateway/network-nat-2"));
    assert.ok(names(p.base).has("Instance/database") && names(p.head).has("Instance/database"));
    assert.ok(
      !names(p.head).has("Vpc/shared-vpc") && !names(p.base).has("Vpc/shared-vpc"),
      "a read resource is not this stack's cost",
    );
    assert.ok(![...names(p.head)].some((n) => n.startsWith("Stack/")), "the root stack is skipped");
    assert.equal(
      p.ops.get(
        "urn:pulumi:prod::agent-stack::agent-stack:platform:Cache$aws:elasticache/replicationGroup:ReplicationGroup::cache",
      ),
      "replace",
    );
  });

  it("an update of instance class is priced from old and new inputs", () => {
    assert.equal(
      change("database", "aws:rds/instance:Instance").deltaMonthlyUsd,
      (prices.usd("rds:postgres:db.r6i.4xlarge:multi-az") - prices.usd("rds:postgres:db.r6i.2xlarge:multi-az")) * h,
    );
  });

  it("one more GPU node is one more g5.4xlarge and its 200 GB root volume", () => {
    const perNode = prices.usd("ec2:g5.4xlarge") * h + 200 * prices.usd("ebs:gp3");
    assert.ok(Math.abs(change("cluster-gpu", "aws:eks/nodeGroup:NodeGroup").deltaMonthlyUsd - perNode) < 0.01);
  });

  it("new off-peak schedules lower an unchanged node group, matched through its real ASG name in the outputs", () => {
    const general = change("cluster-general", "aws:eks/nodeGroup:NodeGroup");
    assert.deepEqual(general.changedInputs, []);
    const perNode = prices.usd("ec2:c6i.2xlarge") * h + 100 * prices.usd("ebs:gp3");
    assert.ok(Math.abs(general.deltaMonthlyUsd - -0.25 * perNode) < 0.01, String(general.deltaMonthlyUsd));
  });

  it("a replacement (Redis OSS -> Valkey) shows as a change of the same URN", () => {
    const cache = change("cache", "aws:elasticache/replicationGroup:ReplicationGroup");
    assert.equal(cache.change, "changed");
    assert.deepEqual(cache.changedInputs, ["engine", "replicationGroupId"]);
    const nodes = 2 * h * (prices.usd("elasticache:valkey:cache.r6g.large") - prices.usd("elasticache:redis:cache.r6g.large"));
    assert.ok(Math.abs(cache.deltaMonthlyUsd - nodes) < 0.01);
  });

  it("deleting a NAT gateway removes it and its address, and moves its traffic to the one left", () => {
    assert.equal(change("network-nat-2", "aws:ec2/natGateway:NatGateway").change, "removed");
    assert.equal(change("network-nat-2", "aws:ec2/eip:Eip").deltaMonthlyUsd, -prices.usd("vpc:public-ipv4-hour") * h);
    assert.equal(
      change("network-nat-0", "aws:ec2/natGateway:NatGateway").deltaMonthlyUsd,
      (USAGE.medium.natGbPerMonth / 2) * prices.usd("vpc:nat-gateway-gb"),
    );
  });

  it("an input unknown until apply makes that resource unpriced, with the reason, not $0", () => {
    assert.deepEqual(p.headCost.unpriced, [
      {
        type: "aws:eks/nodeGroup:NodeGroup",
        name: "cluster-batch",
        reason: "scalingConfig.desiredSize is not known until apply",
      },
    ]);
    assert.equal(change("cluster-batch", "aws:eks/nodeGroup:NodeGroup").pricing, "unpriced");
  });

  it("secrets and unknown names do not stop pricing what does not depend on them", () => {
    assert.ok(
      p.headCost.items.some((i) => i.name === "database"),
      "the RDS instance with a [secret] password is priced",
    );
    assert.equal(change("backups-bucket", "aws:s3/bucketV2:BucketV2").change, "added");
    assert.equal(change("database-credentials", "aws:secretsmanager/secretVersion:SecretVersion").pricing, "free");
  });

  it("the total delta is the head total minus the base total", () => {
    assert.ok(Math.abs(p.diff.deltaMonthlyUsd - (p.headCost.monthlyUsd - p.baseCost.monthlyUsd)) < 0.01);
    assert.ok(Math.abs(p.diff.changes.reduce((s, c) => s + c.deltaMonthlyUsd, 0) - p.diff.deltaMonthlyUsd) < 0.05);
    assert.ok(!p.notes.some((n) => n.includes("--show-sames")), "this preview lists its unchanged resources");
  });
});

describe("preview of a first deploy (dev, no sames)", () => {
  const p = priced("preview-create.json");

  it("everything is added: the delta is the whole head", () => {
    assert.equal(p.base.resources.length, 0);
    assert.ok(p.diff.changes.every((c) => c.change === "added"));
    assert.equal(p.diff.deltaMonthlyUsd, p.headCost.monthlyUsd);
    assert.equal(p.head.tier, "dev");
  });

  it("says the totals cover only what the preview lists", () => {
    assert.match(p.notes.join("\n"), /--show-sames/);
  });

  it("matches schedules whose ASG name is unknown through the preview's property dependencies", () => {
    const ng = p.headCost.items.find((i) => i.name === "cluster-general" && i.type === "aws:eks/nodeGroup:NodeGroup")!;
    assert.ok(
      Math.abs(ng.monthlyUsd - (ng.onDemandMonthlyUsd * 60) / 168) < 0.01,
      `${ng.monthlyUsd} vs ${ng.onDemandMonthlyUsd}`,
    );
    assert.deepEqual(p.headCost.warnings, []);
  });

  it("stops the RDS instance outside weekday work hours from the EventBridge schedules", () => {
    const db = p.headCost.items.find((i) => i.name === "database")!;
    const instance = prices.usd("rds:postgres:db.t4g.small:single-az") * h;
    const storage = 20 * prices.usd("rds:storage:gp3:single-az");
    assert.ok(Math.abs(db.monthlyUsd - (instance * 60) / 168 - storage) < 0.01);
    assert.ok(Math.abs(db.onDemandMonthlyUsd - instance - storage) < 0.01);
  });
});
