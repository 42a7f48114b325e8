// The offline runner: the arguments it builds for policies and how it applies pack config, like the engine.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as aws from "@pulumi/aws";
import { validateResourceOfType, type ResourceValidationPolicy, type StackValidationPolicy } from "@pulumi/policy";
import { PolicyConfigError } from "../../policy/lib/pack-config.ts";
import { runPolicies, toPolicyResources } from "../../policy/offline.ts";
import { UNKNOWN_VALUE } from "../../infra/plan/types.ts";
import { planOf, resource } from "./support.ts";

const bucket = resource("aws:s3/bucket:Bucket", "logs", { bucket: "agent-logs" });
const block = resource(
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  "logs-pab",
  { bucket: "logs-id" },
  { parent: "urn:pulumi:test::agent-stack::agent-stack:platform:Backups::backups" },
);
const component = resource("agent-stack:platform:Backups", "backups", {}, { custom: false });

/** Reports each bucket with the config it received. */
const echoConfig: ResourceValidationPolicy = {
  name: "echo-config",
  description: "test",
  enforcementLevel: "advisory",
  configSchema: { properties: { limit: { type: "integer", default: 7 }, tags: { type: "array", default: ["a"] } } },
  validateResource: validateResourceOfType(aws.s3.Bucket, (_props, args, report) => report(JSON.stringify(args.getConfig()))),
};

test("getConfig returns the schema defaults, overlaid with the configured values", () => {
  const plan = planOf([bucket], "dev");
  assert.equal(runPolicies(plan, { policies: [echoConfig] }).violations[0].message, '{"limit":7,"tags":["a"]}');
  const configured = runPolicies(plan, { policies: [echoConfig], config: { "echo-config": { limit: 30 } } });
  assert.equal(configured.violations[0].message, '{"limit":30,"tags":["a"]}');
});

test("enforcement levels: the policy's own, then `all`, then the policy's entry; disabled policies do not run", () => {
  const plan = planOf([bucket], "dev");
  const level = (config?: Record<string, unknown>) =>
    runPolicies(plan, { policies: [echoConfig], config: config as never }).violations.map((v) => v.level);
  assert.deepEqual(level(), ["advisory"]);
  assert.deepEqual(level({ all: "mandatory" }), ["mandatory"]);
  assert.deepEqual(level({ all: "mandatory", "echo-config": "advisory" }), ["advisory"]);
  assert.deepEqual(
    level({ "echo-config": { enforcementLevel: "remediate" } }),
    ["mandatory"],
    "the engine reports remediate as mandatory",
  );
  assert.deepEqual(level({ "echo-config": "disabled" }), []);
});

test("config mistakes fail loudly: unknown policies, unknown properties, wrong types, bad levels", () => {
  const plan = planOf([bucket], "dev");
  const run = (config: Record<string, unknown>) => () => runPolicies(plan, { policies: [echoConfig], config: config as never });
  assert.throws(run({ "no-such-policy": "advisory" }), PolicyConfigError);
  assert.throws(run({ "echo-config": { limt: 3 } }), /"limt" is not a config property; allowed: limit, tags/);
  assert.throws(run({ "echo-config": { limit: "7" } }), /limit must be integer, got "7"/);
  assert.throws(run({ all: "strict" }), /"strict" is not one of/);
});

test("validations see the engine's arguments: inputs, urn, provider with default tags, isType/asType, options", () => {
  const seen: Record<string, unknown>[] = [];
  const spy: ResourceValidationPolicy = {
    name: "spy",
    description: "test",
    validateResource: (args) => {
      if (!args.isType(aws.s3.BucketPublicAccessBlock)) args.notApplicable("not a block");
      seen.push({
        urn: args.urn,
        props: args.props,
        asType: args.asType(aws.s3.BucketPublicAccessBlock),
        provider: args.provider?.urn,
        parent: args.opts.parent,
      });
    },
  };
  assert.deepEqual(runPolicies(planOf([bucket, block], "medium"), { policies: [spy] }).violations, []);
  assert.deepEqual(seen, [
    {
      urn: block.urn,
      props: block.inputs,
      asType: block.inputs,
      provider: "urn:pulumi:test::agent-stack::pulumi:providers:aws::aws",
      parent: block.parent,
    },
  ]);
});

test("stack resources link parents and recover property dependencies from the mocks' ids", () => {
  const resources = toPolicyResources(planOf([component, bucket, block], "medium"));
  const pab = resources.find((r) => r.name === "logs-pab")!;
  assert.equal(pab.parent?.name, "backups");
  assert.deepEqual(
    pab.propertyDependencies.bucket.map((r) => r.name),
    ["logs"],
  );
  assert.deepEqual(
    pab.dependencies.map((r) => r.name),
    ["logs"],
  );
  assert.equal(resources.find((r) => r.name === "logs")!.provider?.props.region, "us-east-1");
});

test("stack violations without a resource are reported against the stack", () => {
  const stackWide: StackValidationPolicy = {
    name: "stack-wide",
    description: "test",
    enforcementLevel: "mandatory",
    validateStack: (args, report) => report(`${args.resources.length} resources`),
  };
  assert.deepEqual(runPolicies(planOf([bucket], "dev"), { policies: [stackWide] }).violations, [
    {
      policy: "stack-wide",
      resource: "urn:pulumi:test::agent-stack::pulumi:pulumi:Stack::agent-stack-test",
      level: "mandatory",
      message: "2 resources",
    },
  ]);
});

test("a crashing or asynchronous policy is an error naming the policy and the resource", () => {
  const crash: ResourceValidationPolicy = {
    name: "crash",
    description: "test",
    validateResource: () => {
      throw new Error("boom");
    },
  };
  assert.throws(
    () => runPolicies(planOf([bucket], "dev"), { policies: [crash] }),
    /policy crash failed on urn:pulumi:test::agent-stack::pulumi:providers:aws::aws: boom/,
  );
  const slow: ResourceValidationPolicy = { name: "slow", description: "test", validateResource: async () => {} };
  assert.throws(() => runPolicies(planOf([bucket], "dev"), { policies: [slow] }), /must be synchronous/);
});

test("a first preview is judged as the engine judges it: unknown values throw, the policy is reported as can't run", () => {
  const namespace = resource(
    "kubernetes:core/v1:Namespace",
    "agent",
    { metadata: { name: "agent", labels: { tier: "restricted" } } },
    { outputs: {} },
  );
  const key = resource("aws:rds/instance:Instance", "db", { kmsKeyId: UNKNOWN_VALUE, storageEncrypted: true });
  const plan = { ...planOf([namespace, key], "medium"), firstPreview: true };
  const readsKey: ResourceValidationPolicy = {
    name: "reads-key",
    description: "test",
    enforcementLevel: "mandatory",
    validateResource: (args, report) => report(`key ${args.props.kmsKeyId}`),
  };
  const seenByStack: StackValidationPolicy = {
    name: "seen-by-stack",
    description: "test",
    enforcementLevel: "mandatory",
    // Stack policies get the outputs: none for an object on a cluster not created yet.
    validateStack: ({ resources }, report) =>
      report(resources.map((r) => `${r.name}: ${JSON.stringify(r.props.metadata ?? null)}`).join(", ")),
  };
  const { violations } = runPolicies(plan, { policies: [readsKey, seenByStack] });
  const db = violations.find((v) => v.policy === "reads-key" && v.resource.endsWith("::db"));
  assert.deepEqual(db && { level: db.level, message: db.message }, {
    level: "advisory",
    message: "can't run policy 'reads-key' during preview: string value at .kmsKeyId can't be known during preview",
  });
  assert.equal(violations.find((v) => v.policy === "seen-by-stack")?.message, "aws: null, agent: null, db: null");
  // The same plan, not a first preview: the values are read as they are.
  const full = runPolicies({ ...plan, firstPreview: undefined }, { policies: [readsKey] }).violations;
  assert.equal(full.find((v) => v.resource.endsWith("::db"))?.message, `key ${UNKNOWN_VALUE}`);
});

test("a first preview names the stack policies that read resources it has no outputs for, and only those", () => {
  const namespace = resource("kubernetes:core/v1:Namespace", "agent", { metadata: { name: "agent" } }, { outputs: {} });
  const vpc = resource("aws:ec2/vpc:Vpc", "vpc", { cidrBlock: "10.0.0.0/16" }, { outputs: { cidrBlock: "10.0.0.0/16" } });
  const reading = (name: string, type: string): StackValidationPolicy => ({
    name,
    description: "test",
    enforcementLevel: "mandatory",
    validateStack: ({ resources }) => {
      for (const r of resources.filter((r) => r.type === type)) void r.props.metadata;
    },
  });
  const plan = { ...planOf([namespace, vpc], "medium"), firstPreview: true };
  const report = runPolicies(plan, {
    policies: [reading("reads-namespaces", namespace.type), reading("reads-vpcs", vpc.type)],
  });
  assert.deepEqual(report.blindOnFirstPreview, [{ policy: "reads-namespaces", resources: [namespace.urn] }]);
  assert.deepEqual(report.violations, []);
});
