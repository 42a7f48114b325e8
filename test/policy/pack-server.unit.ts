// The pack as the Pulumi CLI runs it: @pulumi/pulumi's policy-pack runner loads policy/ (index.cjs -> tsx ->
// index.ts), the pack serves gRPC, and we call it like the engine does: GetAnalyzerInfo, Configure, Analyze.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { resolvePackConfig } from "../../policy/lib/pack-config.ts";
import { policies } from "../../policy/policies/index.ts";
import { spawnTracked, stopProcess } from "../support/process.ts";

// The same grpc and protobuf copies the pack's server uses.
const requireFromPolicy = createRequire(createRequire(import.meta.url).resolve("@pulumi/policy"));
const grpc = requireFromPolicy("@grpc/grpc-js");
const rpc = requireFromPolicy("@pulumi/pulumi/proto/analyzer_grpc_pb");
const pb = requireFromPolicy("@pulumi/pulumi/proto/analyzer_pb");
const { Struct } = requireFromPolicy("google-protobuf/google/protobuf/struct_pb");
const { Empty } = requireFromPolicy("google-protobuf/google/protobuf/empty_pb");

const POLICY_DIR = fileURLToPath(new URL("../../policy/", import.meta.url));
const RUNNER = createRequire(import.meta.url).resolve("@pulumi/pulumi/cmd/run-policy-pack");

const PROVIDER_URN = "urn:pulumi:prod::agent-stack::pulumi:providers:aws::aws";

function awsProviderProps(tier: string) {
  return { region: "us-east-1", defaultTags: JSON.stringify({ tags: { tier } }) };
}

function awsProvider(tier: string) {
  const provider = new pb.AnalyzerProviderResource();
  provider.setType("pulumi:providers:aws");
  provider.setName("aws");
  provider.setUrn(PROVIDER_URN);
  provider.setProperties(Struct.fromJavaScript(awsProviderProps(tier)));
  return provider;
}

let pack: ChildProcess;
let client: any;

function unary<T>(method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](request, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))),
  );
}

before(async () => {
  // How the nodejs language host starts a policy pack: node <run-policy-pack> <engine address> <pack dir>, in the pack dir.
  pack = spawnTracked(process.execPath, [RUNNER, "127.0.0.1:1", "."], { cwd: POLICY_DIR });
  let stderr = "";
  pack.stderr!.on("data", (d) => (stderr += d));
  let stdout = "";
  const port = await new Promise<number>((resolve, reject) => {
    pack.stdout!.on("data", (d) => {
      stdout += d;
      const m = /^(\d+)\s*$/m.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    pack.on("exit", (code) => reject(new Error(`policy pack exited (${code}) before serving:\n${stderr}`)));
  });
  client = new rpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  if (pack) await stopProcess(pack);
});

test("the served pack is agent-stack with every policy, their levels and config schemas", async () => {
  const info = await unary<any>("getAnalyzerInfo", new Empty());
  assert.equal(info.getName(), "agent-stack");
  const served = info.getPoliciesList().map((p: any) => p.getName());
  assert.deepEqual(
    served,
    policies.map((p) => p.name),
  );
  const retention = info.getPoliciesList().find((p: any) => p.getName() === "rds-backup-retention");
  assert.equal(retention.getEnforcementlevel(), pb.EnforcementLevel.MANDATORY);
  assert.equal(retention.getConfigschema().getProperties().toJavaScript().minRetentionDays.default, 7);
});

test("Analyze reports an unencrypted, single-AZ, public database in a medium-tier stack", async () => {
  // The engine sends the reconciled config (schema defaults filled in), as resolvePackConfig computes it.
  const configure = new pb.ConfigureAnalyzerRequest();
  for (const [name, { enforcementLevel, properties }] of resolvePackConfig(policies)) {
    const config = new pb.PolicyConfig();
    config.setEnforcementlevel(pb.EnforcementLevel[enforcementLevel.toUpperCase()]);
    config.setProperties(Struct.fromJavaScript(properties));
    configure.getPolicyconfigMap().set(name, config);
  }
  await unary("configure", configure);

  const request = new pb.AnalyzeRequest();
  request.setType("aws:rds/instance:Instance");
  request.setName("database");
  request.setUrn("urn:pulumi:prod::agent-stack::aws:rds/instance:Instance::database");
  request.setProperties(
    Struct.fromJavaScript({
      engine: "postgres",
      instanceClass: "db.m7g.2xlarge",
      storageEncrypted: false,
      publiclyAccessible: true,
      multiAz: false,
      backupRetentionPeriod: 14,
      deletionProtection: true,
    }),
  );
  request.setOptions(new pb.AnalyzerResourceOptions());
  request.setProvider(awsProvider("medium"));

  const response = await unary<any>("analyze", request);
  const found = response
    .getDiagnosticsList()
    .map((d: any) => `${d.getPolicyname()}:${d.getEnforcementlevel()}`)
    .sort();
  const mandatory = pb.EnforcementLevel.MANDATORY;
  assert.deepEqual(found, [`rds-multi-az:${mandatory}`, `rds-not-public:${mandatory}`, `rds-storage-encrypted:${mandatory}`]);
});

test("AnalyzeStack runs the stack policies, the cost estimator included, from the pack's directory", async () => {
  const stackResource = (type: string, name: string, props: Record<string, unknown>) => {
    const r = new pb.AnalyzerResource();
    r.setType(type);
    r.setName(name);
    r.setUrn(`urn:pulumi:prod::agent-stack::${type}::${name}`);
    r.setProperties(Struct.fromJavaScript(props));
    r.setOptions(new pb.AnalyzerResourceOptions());
    if (!type.startsWith("pulumi:")) r.setProvider(awsProvider("dev"));
    return r;
  };
  const request = new pb.AnalyzeStackRequest();
  request.setResourcesList([
    stackResource("pulumi:providers:aws", "aws", awsProviderProps("dev")),
    stackResource("aws:rds/instance:Instance", "database", {
      engine: "postgres",
      instanceClass: "db.t4g.small",
      allocatedStorage: 20,
      storageType: "gp3",
      tags: { backup: "agent-stack-prod" },
    }),
    stackResource("aws:eks/nodeGroup:NodeGroup", "gpu", {
      instanceTypes: ["g5.4xlarge"],
      capacityType: "ON_DEMAND",
      scalingConfig: { minSize: 4, desiredSize: 4, maxSize: 4 },
      labels: { role: "gpu" },
    }),
  ]);
  const response = await unary<any>("analyzeStack", request);
  const found = response
    .getDiagnosticsList()
    .map((d: any) => `${d.getPolicyname()} ${d.getUrn()}`)
    .sort();
  assert.deepEqual(found, [
    "rds-in-backup-plan urn:pulumi:prod::agent-stack::aws:rds/instance:Instance::database",
    "stack-within-budget ",
  ]);
});
