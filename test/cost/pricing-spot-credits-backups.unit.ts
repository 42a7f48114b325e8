// Issue 15's estimator fixes on synthetic plans with round test prices (helpers.ts): Spot at an expected discount
// shown as an assumption, T-family unlimited credits counted, Qdrant's EBS recovery points on the backup vault,
// and the cost with every node group at its maximum.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateCost } from "../../infra/cost/estimate.ts";
import { PriceTable } from "../../infra/cost/prices.ts";
import type { Usage } from "../../infra/plan/types.ts";
import { USAGE } from "../../infra/usage.ts";
import { renderCostMarkdown, renderCostTable } from "../../infra/cost/render.ts";
import { close, nodeGroupWithTemplate, plan, rdsSchedule, resource, TEST_PRICES } from "./helpers.ts";

const usage = (over: Partial<Usage> = {}): Usage => ({ ...USAGE.medium, backupGb: 0, ...over });
const estimate = (resources: Parameters<typeof plan>[0], over: Partial<Usage> = {}, prices = TEST_PRICES) =>
  estimateCost(plan(resources), { prices, usage: usage(over) });
const item = (r: ReturnType<typeof estimate>, name: string, type?: string) => {
  const found = r.items.find((i) => i.name === name && (!type || i.type === type));
  assert.ok(found, `no item ${name}: ${JSON.stringify(r.unpriced)}`);
  return found;
};

describe("Spot node groups", () => {
  // m.x $0.50/h, 100 GB gp3 root $10/month: $375 per node-month at list; Spot saves 60 % of the instance hours.
  const spot = () => {
    const [lt, ng] = nodeGroupWithTemplate("spot", "m.x", 2, 100, 1, 4);
    ng.inputs.capacityType = "SPOT";
    return [lt, ng];
  };

  it("bills the expected Spot price with schedules and keeps list price on demand and at maximum", () => {
    const r = estimate(spot());
    assert.ok(close(item(r, "spot").monthlyUsd, 2 * (0.5 * 0.4 * 730 + 10)), String(item(r, "spot").monthlyUsd));
    assert.equal(item(r, "spot").onDemandMonthlyUsd, 2 * 375);
    assert.equal(item(r, "spot").maxMonthlyUsd, 4 * 375);
    assert.match(item(r, "spot").detail!, /SPOT: expected \$0\.2\/h, 60 % below list/);
  });

  it("shows the discount as a dated, sourced assumption in the report", () => {
    const r = estimate(spot());
    assert.deepEqual(r.assumptions, [
      { name: "spot-discount", value: 0.6, unit: "share saved", source: "https://example.test/spot", date: "2026-11-24" },
    ]);
    assert.match(
      renderCostTable(r),
      /assumption spot-discount: 0\.6 \(share saved; https:\/\/example\.test\/spot; recorded 2026-11-24\)/,
    );
    assert.deepEqual(estimate(nodeGroupWithTemplate("od", "m.x", 1, 100)).assumptions, [], "no Spot, no assumption");
  });

  it("a table without the assumption leaves the Spot group unpriced rather than guessing", () => {
    const bare = new PriceTable("us-east-1", "2026-11-24", {
      "ec2:m.x": { usd: 0.5, unit: "h", source: "t", date: "2026-11-24" },
      "ebs:gp3": { usd: 0.1, unit: "GB", source: "t", date: "2026-11-24" },
    });
    const r = estimate(spot(), {}, bare);
    assert.deepEqual(
      r.unpriced.map((u) => u.name),
      ["spot"],
    );
    assert.match(r.unpriced[0].reason, /no assumption "spot-discount"/);
  });
});

describe("T-family CPU credits", () => {
  // t3.large: 2 vCPU, 30 % baseline; credits $0.05 per vCPU-hour in the test table.
  it("unlimited mode (the EC2 default) bills surplus credits above the baseline at the assumed CPU", () => {
    const r = estimate(nodeGroupWithTemplate("burst", "t3.large", 1, 100), { burstableCpuUtilization: 0.5 });
    // (0.1 + 2 × (0.5 - 0.3) × 0.05) × 730 + $10 root; at full CPU: 2 × 0.7 × 0.05 per hour.
    assert.ok(close(item(r, "burst").onDemandMonthlyUsd, (0.1 + 0.02) * 730 + 10));
    assert.ok(close(item(r, "burst").maxMonthlyUsd, 10 * ((0.1 + 0.07) * 730 + 10)), "max 10 nodes at full CPU");
    assert.match(item(r, "burst").detail!, /unlimited CPU credits: 50 % average CPU vs 30 % baseline on 2 vCPU/);
  });

  it("standard credits in the launch template bill nothing beyond the hour", () => {
    const [lt, ng] = nodeGroupWithTemplate("std", "t3.large", 1, 100);
    lt.inputs.creditSpecification = { cpuCredits: "standard" };
    const r = estimate([lt, ng], { burstableCpuUtilization: 0.9 });
    assert.ok(close(item(r, "std").onDemandMonthlyUsd, 0.1 * 730 + 10));
    assert.doesNotMatch(item(r, "std").detail!, /credits/);
  });

  it("RDS T classes always run unlimited: credits are counted, scaled by the hours the instance runs", () => {
    const db = resource("aws:rds/instance:Instance", "db", {
      engine: "postgres",
      instanceClass: "db.t4g.micro",
      allocatedStorage: 20,
      storageType: "gp3",
      identifier: "db",
    });
    const r = estimate([db], { burstableCpuUtilization: 0.3 });
    // db.t4g.micro: 2 vCPU, 10 % baseline: (0.02 + 2 × 0.2 × 0.1) × 730 + 20 GB × $0.1.
    assert.ok(close(item(r, "db").onDemandMonthlyUsd, 0.06 * 730 + 2), String(item(r, "db").onDemandMonthlyUsd));
    assert.ok(close(item(r, "db").maxMonthlyUsd, (0.02 + 2 * 0.9 * 0.1) * 730 + 2));
    // Stopped outside weekdays 08:00-20:00 (60 of 168 hours): no instance hours and no credits while stopped.
    const scheduled = estimate(
      [
        db,
        rdsSchedule("db-stop", "db", "stop", "cron(0 20 ? * MON-FRI *)"),
        rdsSchedule("db-start", "db", "start", "cron(0 8 ? * MON-FRI *)"),
      ],
      { burstableCpuUtilization: 0.3 },
    );
    assert.ok(close(item(scheduled, "db").monthlyUsd, (0.06 * 730 * 60) / 168 + 2), String(item(scheduled, "db").monthlyUsd));
  });
});

describe("backup vault", () => {
  const tagged = [
    resource("aws:backup/vault:Vault", "vault", {}),
    resource("aws:backup/selection:Selection", "sel", {
      selectionTags: [{ type: "STRINGEQUALS", key: "backup", value: "prod" }],
    }),
    resource("kubernetes:storage.k8s.io/v1:StorageClass", "backed-up", {
      metadata: { name: "gp3-backup" },
      provisioner: "ebs.csi.aws.com",
      parameters: { type: "gp3", tagSpecification_1: "backup=prod" },
    }),
    resource("kubernetes:storage.k8s.io/v1:StorageClass", "plain", {
      metadata: { name: "gp3" },
      provisioner: "ebs.csi.aws.com",
      parameters: { type: "gp3" },
    }),
    resource("kubernetes:apps/v1:StatefulSet", "qdrant", {
      spec: {
        replicas: 3,
        volumeClaimTemplates: [
          { metadata: { name: "data" }, spec: { storageClassName: "gp3-backup", resources: { requests: { storage: "100Gi" } } } },
        ],
      },
    }),
    resource("kubernetes:apps/v1:StatefulSet", "ollama", {
      spec: {
        replicas: 2,
        volumeClaimTemplates: [
          { metadata: { name: "models" }, spec: { storageClassName: "gp3", resources: { requests: { storage: "200Gi" } } } },
        ],
      },
    }),
  ];

  it("prices the EBS recovery points of the volumes its selections cover, beside the RDS ones", () => {
    const r = estimate(tagged, { backupGb: 10, ebsBackupGbPerVolumeGb: 0.5 });
    // RDS 10 GB × $0.1 + Qdrant 3 × 100 GiB × 0.5 × $0.05; Ollama's untagged class is not backed up.
    assert.ok(close(item(r, "vault").monthlyUsd, 1 + 7.5), String(item(r, "vault").monthlyUsd));
    assert.match(item(r, "vault").detail!, /150 GB of EBS recovery points .*qdrant 3 × 100 GiB/);
    assert.doesNotMatch(item(r, "vault").detail!, /ollama/);
  });

  it("without a selection tag on any class, only the RDS recovery points count", () => {
    const r = estimate(
      tagged.filter((t) => t.name !== "sel"),
      { backupGb: 10 },
    );
    assert.ok(close(item(r, "vault").monthlyUsd, 1));
  });
});

describe("cost at every group's maximum", () => {
  it("is each node group at its maxSize all month, summed beside on-demand and with schedules", () => {
    const r = estimate([...nodeGroupWithTemplate("a", "m.x", 2, 100, 1, 5), ...nodeGroupWithTemplate("b", "m.x", 1, 100, 1, 1)]);
    assert.equal(r.onDemandMonthlyUsd, 3 * 375);
    assert.equal(r.maxMonthlyUsd, 6 * 375);
    assert.deepEqual(
      r.components.map((c) => c.maxMonthlyUsd),
      [6 * 375],
    );
    assert.match(renderCostTable(r), /total\s+\$1,125\.00\s+\$1,125\.00\s+-\s+\$2,250\.00/);
    assert.match(
      renderCostMarkdown(r),
      /\| \*\*total\*\* \| \*\*\$1,125\.00\*\* \| \*\*\$1,125\.00\*\* \| \*\*-\*\* \| \*\*\$2,250\.00\*\* \|/,
    );
  });
});
