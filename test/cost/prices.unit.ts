// The real price tables: valid, dated, sourced, complete for every tier, and consistent across regions.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { availableRegions, loadPrices } from "../../infra/cost/prices.ts";
import { TIERS } from "../../infra/tiers.ts";

const usEast = loadPrices("us-east-1");

describe("price tables", () => {
  it("has us-east-1 and a second region", () => {
    assert.ok(availableRegions().includes("us-east-1"));
    assert.ok(availableRegions().length >= 2, availableRegions().join(", "));
  });

  it("every region has every key of us-east-1, each with a source and a date", () => {
    for (const region of availableRegions()) {
      const table = loadPrices(region);
      const missing = usEast.keys().filter((k) => !table.has(k));
      assert.deepEqual(missing, [], `${region} lacks ${missing.join(", ")}`);
      for (const key of table.keys()) {
        const e = table.entry(key)!;
        assert.match(e.source, /https?:\/\//, `${region} ${key} names no source page`);
        assert.match(e.date, /^\d{4}-\d{2}-\d{2}$/);
      }
    }
  });

  it("prices every instance type, RDS class and cache node type of every tier", () => {
    for (const tier of Object.values(TIERS)) {
      for (const group of Object.values(tier.nodeGroups)) {
        for (const t of group?.instanceTypes ?? []) assert.ok(usEast.has(`ec2:${t}`), `${tier.name}: ec2:${t}`);
      }
      for (const az of ["single-az", "multi-az"])
        assert.ok(
          usEast.has(`rds:postgres:${tier.database.instanceClass}:${az}`),
          `${tier.name}: ${tier.database.instanceClass} ${az}`,
        );
      for (const engine of ["valkey", "redis"])
        assert.ok(usEast.has(`elasticache:${engine}:${tier.cache.nodeType}`), `${tier.name}: ${engine} ${tier.cache.nodeType}`);
    }
  });

  it("Multi-AZ is twice single-AZ; Valkey is 20 % below Redis OSS", () => {
    assert.equal(usEast.usd("rds:postgres:db.r6i.2xlarge:multi-az"), 2 * usEast.usd("rds:postgres:db.r6i.2xlarge:single-az"));
    assert.equal(usEast.usd("rds:storage:gp3:multi-az"), 2 * usEast.usd("rds:storage:gp3:single-az"));
    assert.ok(
      Math.abs(usEast.usd("elasticache:valkey:cache.r6g.large") - 0.8 * usEast.usd("elasticache:redis:cache.r6g.large")) < 1e-9,
    );
  });

  it("the figures the guide quotes are close to the table (guide 000 Self-Hosted on AWS)", () => {
    assert.equal(usEast.usd("ec2:c6i.2xlarge"), 0.34); // "~$0.34/hr"
    assert.ok(Math.abs(usEast.usd("ec2:r6i.2xlarge") - 0.5) < 0.01); // "~$0.50/hr"
    assert.equal(usEast.usd("ec2:t3.large"), 0.0832); // "~$0.08/hr"
    assert.equal(usEast.usd("vpc:public-ipv4-hour"), 0.005);
  });

  it("eu-west-1 prices c6i at its own list prices, not c5's (issue 15)", () => {
    const eu = loadPrices("eu-west-1");
    assert.deepEqual(
      ["large", "xlarge", "2xlarge", "4xlarge"].map((s) => eu.usd(`ec2:c6i.${s}`)),
      [0.0912, 0.1824, 0.3648, 0.7296],
    );
  });

  it("Graviton types are priced from a dated source, below their x86 twins (same vCPU and memory)", () => {
    for (const [arm, x86] of [
      ["c7g.2xlarge", "c6i.2xlarge"],
      ["r7g.2xlarge", "r6i.2xlarge"],
      ["t4g.large", "t3.large"],
    ]) {
      const e = usEast.entry(`ec2:${arm}`)!;
      assert.match(e.source, /karpenter-provider-aws.*generated from the AWS Price List API at 2026-07-20/, arm);
      assert.ok(usEast.usd(`ec2:${arm}`) < usEast.usd(`ec2:${x86}`), `${arm} vs ${x86}`);
    }
    assert.equal(usEast.usd("ec2:c7g.2xlarge"), 0.29);
    assert.equal(usEast.usd("ec2:g5.2xlarge"), 1.212);
  });

  it("records the Spot discount as a dated, sourced assumption in every region", () => {
    for (const region of availableRegions()) {
      const spot = loadPrices(region).assumption("spot-discount");
      assert.ok(spot.value > 0 && spot.value < 0.9, `${region}: ${spot.value}`);
      assert.match(spot.source, /https?:\/\//);
      assert.match(spot.date, /^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it("an unknown region is an error naming the regions that have tables", () => {
    assert.throws(() => loadPrices("mars-north-1"), /no price table for region "mars-north-1"; tables exist for: .*us-east-1/);
  });
});
