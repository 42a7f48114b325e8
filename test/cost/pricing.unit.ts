// Pricing math on small synthetic plans with round test prices (helpers.ts), against values worked out by hand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateCost } from "../../infra/cost/estimate.ts";
import { UNKNOWN_VALUE } from "../../infra/plan/types.ts";
import { USAGE } from "../../infra/usage.ts";
import { asgSchedule, close, nodeGroupWithTemplate, plan, rdsSchedule, resource, TEST_PRICES } from "./helpers.ts";

const estimate = (resources: Parameters<typeof plan>[0], tier = "medium") =>
  estimateCost(plan(resources, tier), { prices: TEST_PRICES });
const item = (report: ReturnType<typeof estimate>, name: string, type?: string) => {
  const found = report.items.find((i) => i.name === name && (!type || i.type === type));
  assert.ok(
    found,
    `no cost item ${name}; items: ${report.items.map((i) => i.name).join(", ")}; unpriced: ${JSON.stringify(report.unpriced)}`,
  );
  return found;
};

describe("node groups", () => {
  // Per node and month: $0.50 × 730 h + 100 GB × $0.10 = $375.
  it("instance type × desired size × 730 h, plus each node's root volume", () => {
    const r = estimate(nodeGroupWithTemplate("general", "m.x", 3, 100));
    assert.equal(item(r, "general").monthlyUsd, 1125);
    assert.equal(item(r, "general").onDemandMonthlyUsd, 1125);
  });

  it("a daily off-peak schedule (3 -> 2 from 00:00 to 06:00) saves a quarter node", () => {
    const r = estimate([
      ...nodeGroupWithTemplate("general", "m.x", 3, 100),
      asgSchedule("general-down", "general", "0 0 * * *", { desired: 2 }),
      asgSchedule("general-up", "general", "0 6 * * *", { desired: 3 }),
    ]);
    assert.equal(item(r, "general").monthlyUsd, 2.75 * 375);
    assert.equal(item(r, "general").onDemandMonthlyUsd, 1125);
    assert.equal(r.schedules.length, 1);
    assert.equal(r.schedules[0].target, "general");
  });

  it("weekday work hours only (min and desired to 0 outside 08:00-20:00 MON-FRI): 60 of 168 hours", () => {
    const r = estimate(
      [
        ...nodeGroupWithTemplate("general", "m.x", 1, 100),
        asgSchedule("up", "general", "0 8 * * 1-5", { min: 1, desired: 1 }),
        asgSchedule("down", "general", "0 20 * * 1-5", { min: 0, desired: 0 }),
      ],
      "dev",
    );
    assert.ok(Math.abs(item(r, "general").monthlyUsd - (375 * 60) / 168) < 0.01);
    assert.equal(item(r, "general").onDemandMonthlyUsd, 375);
  });

  it("weekends off: Friday 20:00 to Monday 08:00 in the schedule's time zone", () => {
    const r = estimate([
      ...nodeGroupWithTemplate("general", "m.x", 2, 100),
      asgSchedule("weekend", "general", "0 20 * * FRI", { desired: 0 }, "Europe/Berlin"),
      asgSchedule("monday", "general", "0 8 * * MON", { desired: 2 }, "Europe/Berlin"),
    ]);
    assert.ok(Math.abs(item(r, "general").monthlyUsd - (2 * 375 * 108) / 168) < 0.01);
  });

  it("each action is read in its own time zone: down at midnight UTC, up at midnight in Tokyo (15:00 UTC)", () => {
    const r = estimate([
      ...nodeGroupWithTemplate("general", "m.x", 3, 100),
      asgSchedule("down", "general", "0 0 * * *", { desired: 2 }, "UTC"),
      asgSchedule("up", "general", "0 0 * * *", { desired: 3 }, "Asia/Tokyo"),
    ]);
    // 2 nodes from 00:00 to 15:00 UTC, 3 for the other 9 hours (Tokyo keeps no daylight saving).
    assert.ok(close(item(r, "general").monthlyUsd, ((2 * 15 + 3 * 9) / 24) * 375), String(item(r, "general").monthlyUsd));
  });

  it("full size is the largest size a schedule sets (peak scale-up above the declared size)", () => {
    const r = estimate([
      ...nodeGroupWithTemplate("general", "m.x", 2, 100),
      asgSchedule("peak", "general", "0 9 * * *", { desired: 4 }),
      asgSchedule("normal", "general", "0 17 * * *", { desired: 2 }),
    ]);
    assert.equal(item(r, "general").onDemandMonthlyUsd, 4 * 375);
    assert.ok(Math.abs(item(r, "general").monthlyUsd - (2 + (2 * 8) / 24) * 375) < 0.01);
  });

  it("a schedule on an Auto Scaling group of no node group is a warning, and saves nothing", () => {
    const stray = asgSchedule("stray", "nope", "0 0 * * *", { desired: 0 });
    const r = estimate([...nodeGroupWithTemplate("general", "m.x", 1, 100), stray]);
    assert.equal(item(r, "general").monthlyUsd, 375);
    assert.match(r.warnings.join("\n"), /stray.*eks-nope-asg.*not a node group/);
  });

  it("an instance type missing from the price table is unpriced, never $0", () => {
    const r = estimate(nodeGroupWithTemplate("odd", "z9.huge", 1, 20));
    assert.equal(r.items.length, 0);
    assert.deepEqual(
      r.unpriced.map((u) => [u.name, u.reason]),
      [["odd", "no price for ec2:z9.huge in the us-east-1 table (infra/cost/prices/us-east-1.json)"]],
    );
  });

  it("a desired size still unknown at preview is unpriced with the reason", () => {
    const [lt, ng] = nodeGroupWithTemplate("later", "m.x", 1, 20);
    ng.inputs.scalingConfig = { minSize: 1, desiredSize: UNKNOWN_VALUE, maxSize: 3 };
    const r = estimate([lt, ng]);
    assert.match(r.unpriced[0].reason, /scalingConfig.desiredSize is not known until apply/);
  });
});

describe("RDS", () => {
  const primary = (extra: Record<string, unknown> = {}) =>
    resource("aws:rds/instance:Instance", "db", {
      identifier: "agent-db",
      engine: "postgres",
      instanceClass: "db.x",
      allocatedStorage: 500,
      storageType: "gp3",
      multiAz: true,
      ...extra,
    });

  it("Multi-AZ doubles instance and storage rates: $2 × 730 + 500 GB × $0.20", () => {
    assert.equal(item(estimate([primary()]), "db").monthlyUsd, 1460 + 100);
  });

  it("single-AZ: $1 × 730 + 500 GB × $0.10", () => {
    assert.equal(item(estimate([primary({ multiAz: false })]), "db").monthlyUsd, 730 + 50);
  });

  it("a read replica is its own single-AZ instance with the source's storage", () => {
    const replica = resource("aws:rds/instance:Instance", "db-replica-0", {
      identifier: "agent-db-replica-0",
      replicateSourceDb: "agent-db",
      instanceClass: "db.x",
      storageType: "gp3",
    });
    const r = estimate([primary(), replica]);
    assert.equal(item(r, "db-replica-0").monthlyUsd, 730 + 50);
    assert.equal(r.monthlyUsd, 1560 + 780);
  });

  it("a stop/start schedule (weekdays 08:00-20:00) cuts instance hours, not storage", () => {
    const db = primary({ identifier: "agent-dev", instanceClass: "db.t", multiAz: false, allocatedStorage: 20 });
    const r = estimate(
      [
        db,
        rdsSchedule("db-stop", "agent-dev", "stop", "cron(0 20 ? * MON-FRI *)"),
        rdsSchedule("db-start", "agent-dev", "start", "cron(0 8 ? * MON-FRI *)"),
      ],
      "dev",
    );
    const it_ = item(r, "db");
    assert.ok(Math.abs(it_.monthlyUsd - (0.1 * 730 * 60) / 168 - 2) < 0.01, String(it_.monthlyUsd));
    assert.equal(it_.onDemandMonthlyUsd, 73 + 2);
    // Stopped at midnight UTC, started at midnight in Tokyo (15:00 UTC): each in its own zone, 9 of 24 hours running.
    const zoned = estimate(
      [
        db,
        rdsSchedule("db-stop", "agent-dev", "stop", "cron(0 0 * * ? *)", "UTC"),
        rdsSchedule("db-start", "agent-dev", "start", "cron(0 0 * * ? *)", "Asia/Tokyo"),
      ],
      "dev",
    );
    assert.ok(close(item(zoned, "db").monthlyUsd, (0.1 * 730 * 9) / 24 + 2), String(item(zoned, "db").monthlyUsd));
    assert.equal(r.schedules[0].effect, "runs 35.7 % of hours");
  });

  it("exported logs add the usage file's GB at the ingest price", () => {
    const r = estimate([primary({ enabledCloudwatchLogsExports: ["postgresql"] })]);
    assert.equal(item(r, "db").monthlyUsd, 1560 + USAGE.medium.rdsLogGbPerMonth * 0.5);
  });
});

describe("ElastiCache", () => {
  it("node type × nodes, Valkey at its own (lower) rate", () => {
    const group = (engine: string) =>
      resource("aws:elasticache/replicationGroup:ReplicationGroup", `cache-${engine}`, {
        engine,
        nodeType: "cache.x",
        numCacheClusters: 2,
        snapshotRetentionLimit: 1,
      });
    const r = estimate([group("valkey"), group("redis")]);
    assert.equal(item(r, "cache-valkey").monthlyUsd, 2 * 0.08 * 730);
    assert.equal(item(r, "cache-redis").monthlyUsd, 2 * 0.1 * 730);
  });

  it("cluster mode: shards × (replicas + 1), plus snapshots beyond the free one", () => {
    const r = estimate([
      resource("aws:elasticache/replicationGroup:ReplicationGroup", "c", {
        engine: "valkey",
        nodeType: "cache.x",
        numNodeGroups: 2,
        replicasPerNodeGroup: 1,
        snapshotRetentionLimit: 7,
      }),
    ]);
    assert.equal(item(r, "c").monthlyUsd, 4 * 0.08 * 730 + USAGE.medium.snapshotGb * 0.1);
  });
});

describe("network, load balancers, volumes", () => {
  it("NAT gateways: 730 h each plus the usage file's GB split between them", () => {
    const r = estimate([resource("aws:ec2/natGateway:NatGateway", "nat-0"), resource("aws:ec2/natGateway:NatGateway", "nat-1")]);
    assert.equal(item(r, "nat-0").monthlyUsd, 0.05 * 730 + (USAGE.medium.natGbPerMonth / 2) * 0.05);
  });

  it("an ALB Ingress is one ALB; a second Ingress of the same group shares it", () => {
    const ann = { "alb.ingress.kubernetes.io/group.name": "public", "alb.ingress.kubernetes.io/scheme": "internet-facing" };
    const ing = (name: string) =>
      resource("kubernetes:networking.k8s.io/v1:Ingress", name, {
        metadata: { annotations: ann },
        spec: { ingressClassName: "alb" },
      });
    const r = estimate([ing("api"), ing("docs")]);
    // hours + LCU + 2 public IPv4 (no public subnets in the plan: the 2-AZ minimum)
    assert.ok(
      Math.abs(item(r, "api").monthlyUsd - (0.02 * 730 + USAGE.medium.albLcuPerHour * 0.01 * 730 + 2 * 0.005 * 730)) < 0.01,
    );
    assert.equal(r.items.filter((i) => i.name === "docs").length, 0);
    assert.match(r.free.map((f) => f.reason).join("\n"), /shares the ALB of ingress group "public", priced on api/);
  });

  it("an Ingress of another class costs nothing itself", () => {
    const r = estimate([resource("kubernetes:networking.k8s.io/v1:Ingress", "nginx", { spec: { ingressClassName: "nginx" } })]);
    assert.equal(r.items.length, 0);
    assert.equal(r.unpriced.length, 0);
  });

  it("StatefulSet volume claims × replicas, at the storage class's EBS type", () => {
    const r = estimate([
      resource("kubernetes:storage.k8s.io/v1:StorageClass", "gp2-class", {
        metadata: { name: "slow" },
        provisioner: "ebs.csi.aws.com",
        parameters: { type: "gp2" },
      }),
      resource("kubernetes:apps/v1:StatefulSet", "qdrant", {
        spec: {
          replicas: 3,
          volumeClaimTemplates: [
            { metadata: { name: "data" }, spec: { resources: { requests: { storage: "100Gi" } } } },
            { metadata: { name: "snapshots" }, spec: { storageClassName: "slow", resources: { requests: { storage: "50Gi" } } } },
          ],
        },
      }),
    ]);
    assert.equal(item(r, "qdrant").monthlyUsd, 3 * 100 * 0.1 + 3 * 50 * 0.2);
  });

  it("a PVC of 1Ti is 1024 GiB", () => {
    const r = estimate([
      resource("kubernetes:core/v1:PersistentVolumeClaim", "models", {
        spec: { storageClassName: "gp3", resources: { requests: { storage: "1Ti" } } },
      }),
    ]);
    assert.equal(item(r, "models").monthlyUsd, 102.4);
  });

  it("Helm values: persistence blocks and volumeClaimTemplates, times the replicas beside them", () => {
    const r = estimate([
      resource("kubernetes:helm.sh/v3:Release", "monitoring", {
        chart: "kube-prometheus-stack",
        values: {
          prometheus: {
            prometheusSpec: {
              replicas: 2,
              storageSpec: { volumeClaimTemplate: { spec: { resources: { requests: { storage: "100Gi" } } } } },
            },
          },
          grafana: { persistence: { enabled: true, size: "10Gi" } },
          alertmanager: { alertmanagerSpec: { storage: {} } },
        },
      }),
      resource("kubernetes:helm.sh/v3:Release", "loki", {
        chart: "loki",
        values: { singleBinary: { replicas: 1, persistence: { enabled: false, size: "50Gi" } } },
      }),
    ]);
    assert.equal(item(r, "monitoring").monthlyUsd, 2 * 100 * 0.1 + 10 * 0.1);
    assert.equal(r.items.filter((i) => i.name === "loki").length, 0, "disabled persistence is not billed");
  });
});

describe("the catalog decides: priced, free, or unpriced", () => {
  it("a type outside the catalog is unpriced, named, with the reason", () => {
    const r = estimate([
      resource("aws:opensearch/domain:Domain", "search", { clusterConfig: { instanceType: "r6g.large.search" } }),
    ]);
    assert.deepEqual(r.unpriced, [
      { type: "aws:opensearch/domain:Domain", name: "search", reason: "type not in the cost catalog (infra/cost/catalog.ts)" },
    ]);
  });

  it("the project's own components are free; another package's component is unpriced (its children are invisible)", () => {
    const r = estimate([
      resource("agent-stack:platform:Cluster", "cluster", {}, { custom: false }),
      resource("kubernetes:helm.sh/v4:Chart", "remote", {}, { custom: false }),
    ]);
    assert.equal(r.free.length, 1);
    assert.deepEqual(
      r.unpriced.map((u) => u.type),
      ["kubernetes:helm.sh/v4:Chart"],
    );
  });

  it("EKS control plane: standard rate, or extended support once the version left standard support", () => {
    const cluster = (version: string) => resource("aws:eks/cluster:Cluster", `eks-${version}`, { version });
    const r = estimate([cluster("1.35"), cluster("1.33")]);
    assert.equal(item(r, "eks-1.35").monthlyUsd, 73);
    assert.equal(item(r, "eks-1.33").monthlyUsd, 438);
  });

  it("a region without a price table: priced types are unpriced with the reason, free ones stay free", () => {
    const r = estimateCost(
      plan([resource("aws:kms/key:Key", "key"), resource("aws:iam/role:Role", "role")], "medium", "mars-north-1"),
    );
    assert.equal(r.items.length, 0);
    assert.match(r.unpriced[0].reason, /no price table for region "mars-north-1"/);
    assert.equal(r.free.length, 1);
  });

  it("totals are the sum of the items; a plan of free resources costs $0 with nothing unpriced", () => {
    const r = estimate([
      resource("aws:iam/role:Role", "role"),
      resource("aws:kms/key:Key", "key"),
      resource("aws:kms/key:Key", "key2"),
    ]);
    assert.equal(r.monthlyUsd, 2);
    assert.equal(r.onDemandMonthlyUsd, 2);
    assert.deepEqual(r.free, [{ type: "aws:iam/role:Role", count: 1, reason: "IAM has no charge" }]);
  });
});
