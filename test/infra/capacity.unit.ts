// infra/capacity.ts and the tier rules of issue 13: memory that fits the node, models that fit the GPU,
// Qdrant replication from the tier.
import assert from "node:assert/strict";
import { test } from "node:test";
import { capacityReport, instanceShape, podMemoryBudget, residentModels } from "../../infra/capacity.ts";
import { splitOverZones, zonalRoles } from "../../infra/node-zones.ts";
import { acceleratorLabel, GPU_LABEL } from "../../infra/platform/cluster.ts";
import { TIERS, type Tier } from "../../infra/tiers.ts";
import { configFailure } from "../support/config.ts";

const raw = (tier: string, overrides: object) => ({
  "aws:region": "us-east-1",
  "agent-stack:tier": tier,
  "agent-stack:overrides": JSON.stringify(overrides),
});
const withOllama = (t: Tier, o: Partial<Tier["ollama"]>): Tier => ({ ...t, ollama: { ...t.ollama, ...o } });

test("every tier passes: its stateful pods fit their nodes and its models fit the GPU", () => {
  for (const t of Object.values(TIERS)) assert.deepEqual(capacityReport(t).problems, [], t.name);
});

test("the API at its largest must fit the database's max_connections, old pods still draining in a rollout, with the sum shown", () => {
  const [line] = capacityReport(TIERS.medium).lines.filter((l) => l.startsWith("database connections"));
  assert.equal(
    line,
    "database connections at peak: 23 API pods (a rollout at api.maxReplicas 10: 10 new, 10 old still draining, 3 more for the 25 % surge) x 11 (api.dbPoolMax 10 + LISTEN) + 15 others = 268 of max_connections 400",
  );
  assert.match(
    capacityReport({ ...TIERS.medium, api: { ...TIERS.medium.api, maxReplicas: 40 } }).problems[0],
    /^database\.maxConnections: 400 is below what the API opens at its largest: 90 API pods .* = 1005; raise it, or lower api\.maxReplicas or api\.dbPoolMax/,
  );
  assert.deepEqual(capacityReport({ ...TIERS.medium, api: { ...TIERS.medium.api, maxReplicas: 40, dbPoolMax: 3 } }).problems, []);
  // Probe BO: the small tier's 200 (the guide's) held the new pods and their surge (171), not the old ones draining.
  const small200 = { ...TIERS.small, database: { ...TIERS.small.database, maxConnections: 200 } };
  assert.match(capacityReport(small200).problems[0] ?? "", /^database\.maxConnections: 200 is below .* = 268;/);
});

test("the guide's qwen2.5:32b beside llama3.1:8b with 4 parallel 4096-token f16 caches does not fit a 24 GB A10G", () => {
  const old = withOllama(TIERS.medium, { models: { ...TIERS.medium.ollama.models, large: "qwen2.5:32b" }, kvCacheType: "f16" });
  const [problem] = capacityReport(old).problems;
  assert.match(
    problem,
    /^ollama\.models: 4 models resident, 4 parallel x 4096 tokens, KV f16 need (\d+) MiB but NVIDIA A10G on g5\.2xlarge: 23028 MiB - 512 CUDA context leaves 22516 MiB/,
  );
  // 32b alone: 20 GB of weights + 64 layers x 8 heads x 128 x 2 (K,V) x 2 bytes x 16384 tokens = 4 GiB of KV.
  const big = (residentModels(old.ollama) as any[]).find((m) => m.model === "qwen2.5:32b");
  assert.deepEqual([big.weightsMib, big.kvMib], [19073, 4096]);
});

test("a model's KV cache is sized at the shorter of the tier's context and its own longest (Ollama caps it there)", () => {
  // nomic-embed-text takes 2048 tokens: a tier's 8192 does not grow its cache, while a chat model's grows.
  const kv = (contextLength: number, model: string) =>
    (residentModels(withOllama(TIERS.medium, { contextLength }).ollama) as any[]).find((m) => m.model === model).kvMib;
  assert.equal(kv(8192, "nomic-embed-text:latest"), kv(2048, "nomic-embed-text:latest"));
  assert.ok(kv(1024, "nomic-embed-text:latest") < kv(2048, "nomic-embed-text:latest"));
});

test("an unknown model or instance type names the table to extend", () => {
  assert.match(
    capacityReport(withOllama(TIERS.small, { models: { ...TIERS.small.ollama.models, large: "mystery:70b" } })).problems[0],
    /mystery:70b is not in infra\/capacity\.ts MODEL_SIZES/,
  );
  assert.match(String(instanceShape("x9.huge")), /instance type x9\.huge is not in infra\/capacity\.ts/);
});

test("the large tier's old 112 Gi Qdrant does not fit its 64 GiB r7g.2xlarge; the arithmetic is shown", () => {
  const old: Tier = { ...TIERS.large, qdrant: { ...TIERS.large.qdrant, memoryRequest: "112Gi", memoryLimit: "112Gi" } };
  assert.match(
    capacityReport(old).problems[0],
    /^qdrant\.memoryLimit: qdrant 112Gi \(qdrant\.memoryLimit\) = 114688 MiB does not fit a r7g\.2xlarge node \(65536 MiB - 3277 kernel/,
  );
  assert.equal(podMemoryBudget(instanceShape("r6i.2xlarge") as any).budgetMib, 65536 - 3277 - (11 * 58 + 255) - 100 - 1024);
});

test("the tier schema rejects requests below limits and single-copy Qdrant on several peers", () => {
  assert.match(
    configFailure(raw("medium", { qdrant: { memoryRequest: "16Gi" } })),
    /agent-stack:overrides\.qdrant\.memoryRequest: 16Gi differs from memoryLimit 56Gi/,
  );
  assert.match(
    configFailure(raw("medium", { ollama: { memoryLimit: "56Gi" } })),
    /agent-stack:overrides\.ollama\.memoryRequest: 24Gi differs from memoryLimit 56Gi/,
  );
  assert.match(
    configFailure(raw("medium", { qdrant: { replicationFactor: 1 } })),
    /qdrant\.replicationFactor: 1 keeps one copy of each shard on 3 peers/,
  );
  assert.match(
    configFailure(raw("medium", { qdrant: { writeConsistency: 3 } })),
    /qdrant\.writeConsistency: 3 is above replicationFactor 2/,
  );
  assert.match(
    configFailure(raw("dev", { qdrant: { replicationFactor: 2 } })),
    /qdrant\.replicationFactor: 2 is above replicas 1/,
  );
});

test("zonal roles and their split: one group per zone, totals kept; one zone for a single node", () => {
  assert.deepEqual(zonalRoles(TIERS.medium.nodeGroups).sort(), ["monitoring", "vector"]);
  assert.deepEqual(zonalRoles(TIERS.dev.nodeGroups), ["general"]);
  const five = splitOverZones({ ...TIERS.large.nodeGroups.vector! }, 3);
  assert.deepEqual(
    five.map((g) => [g.min, g.desired, g.max]),
    [
      [2, 2, 2],
      [2, 2, 2],
      [1, 1, 1],
    ],
  );
  assert.deepEqual(
    splitOverZones(TIERS.dev.nodeGroups.general, 2).map((g) => [g.min, g.desired, g.max]),
    [[1, 1, 2]],
  );
});

test("each GPU family's accelerator label is a GPU type the cluster autoscaler lists, and only GPU nodes carry one", () => {
  // cluster-autoscaler-1.35.0 cloudprovider/aws/aws_cloud_provider.go availableGPUTypes (an unlisted one is "not-listed").
  const listed = ["nvidia-tesla-t4", "nvidia-a10g", "nvidia-l4", "nvidia-l40s", "nvidia-tesla-a100"];
  for (const type of ["g4dn.xlarge", "g5.2xlarge", "g6.xlarge"]) {
    const label = acceleratorLabel([type])[GPU_LABEL];
    assert.ok(listed.includes(label), `${type}: ${label}`);
  }
  assert.deepEqual(acceleratorLabel(["c7g.2xlarge", "g5.2xlarge"]), {});
});
