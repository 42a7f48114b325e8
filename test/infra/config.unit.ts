// Stack config validation: every bad value names the key, the value and what is allowed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { configFailure as failure } from "../support/config.ts";
import { ConfigError, configuredSecrets, notifyEmails, parseStackConfig, requireAlertReceiver } from "../../infra/config.ts";
import { DB_MEMORY_GIB, DB_VCPUS, postgresTuning, replicaWorkerProcesses } from "../../infra/postgres-tuning.ts";
import { instanceOf, rdsParameterValue } from "../support/rds-formula.ts";
import { configFlags } from "../../infra/review/args.ts";
import { TIERS } from "../../infra/tiers.ts";

const base = { "aws:region": "us-east-1", "agent-stack:tier": "medium" };
const withOverrides = (o: unknown) => ({ ...base, "agent-stack:overrides": JSON.stringify(o) });

test("a valid stack gets its tier's sizes", () => {
  const config = parseStackConfig(base, "prod");
  assert.deepEqual(config.sizes, TIERS.medium);
  assert.equal(config.kubernetesVersion, "1.35");
  assert.equal(config.region, "us-east-1");
});

test("an override replaces one value and keeps the rest of the tier", () => {
  const config = parseStackConfig(withOverrides({ nodeGroups: { general: { max: 8 } }, database: { readReplicas: 2 } }), "prod");
  assert.equal(config.sizes.nodeGroups.general.max, 8);
  assert.equal(config.sizes.nodeGroups.general.min, TIERS.medium.nodeGroups.general.min);
  assert.equal(config.sizes.database.readReplicas, 2);
  assert.equal(config.sizes.database.instanceClass, TIERS.medium.database.instanceClass);
});

test("an unknown tier lists the tiers", () => {
  assert.equal(
    failure({ ...base, "agent-stack:tier": "huge" }),
    'agent-stack:tier: "huge" is not allowed; allowed: dev, small, medium, large',
  );
});

test("a missing tier is required", () => {
  assert.match(failure({ "aws:region": "us-east-1" }), /^agent-stack:tier is required; allowed: dev, small, medium, large$/);
});

test("a negative count names the key, the value and the bound", () => {
  assert.equal(
    failure(withOverrides({ nodeGroups: { gpu: { min: -1 } } })),
    "agent-stack:overrides.nodeGroups.gpu.min: got -1; allowed: >= 0",
  );
});

test("a min above a max names both", () => {
  assert.match(
    failure(withOverrides({ nodeGroups: { general: { min: 6 } } })),
    /agent-stack:overrides\.nodeGroups\.general\.min: 6 is above max 5/,
  );
  assert.match(
    failure(withOverrides({ api: { minReplicas: 12 } })),
    /agent-stack:overrides\.api\.minReplicas: 12 is above maxReplicas 10/,
  );
});

test("an unknown key under our namespace lists the allowed keys", () => {
  const message = failure({ ...base, "agent-stack:nodeCount": "3" });
  assert.match(message, /^agent-stack:nodeCount is not a known key; allowed: tier, overrides, kubernetesVersion/);
});

test("an unknown key inside overrides lists the keys allowed there", () => {
  assert.match(
    failure(withOverrides({ database: { sizeGb: 5 } })),
    /^agent-stack:overrides\.database\.sizeGb is not a known key; allowed: instanceClass, allocatedStorageGb/,
  );
});

test("keys of other namespaces are not ours to judge", () => {
  assert.doesNotThrow(() => parseStackConfig({ ...base, "aws:profile": "x", "kubernetes:context": "y" }, "prod"));
});

test("a missing region says how to set it", () => {
  assert.match(failure({ "agent-stack:tier": "dev" }), /aws:region is not set/);
});

test("the tier's one GPU flag and its gpu node group must agree, either way", () => {
  assert.match(
    failure(withOverrides({ nodeGroups: { gpu: null } })),
    /overrides\.gpu: true needs a gpu node group; set nodeGroups\.gpu or gpu: false/,
  );
  assert.match(failure(withOverrides({ gpu: false })), /overrides\.gpu: false, but nodeGroups\.gpu is set/);
});

test("all problems are reported at once", () => {
  const message = failure(withOverrides({ nodeGroups: { gpu: { min: -1 } }, cache: { nodes: 0 } }));
  assert.equal(message.split("\n").length, 2, message);
  assert.match(message, /nodeGroups\.gpu\.min/);
  assert.match(message, /cache\.nodes/);
});

test("corsOrigins: one origin, a comma-separated string or a list (the app's CORS_ORIGINS), or * alone; none by default", () => {
  const origins = (value?: string) =>
    parseStackConfig(value === undefined ? base : { ...base, "agent-stack:corsOrigins": value }, "prod").corsOrigins;
  assert.deepEqual(origins(), []);
  assert.deepEqual(origins("https://app.example.com"), ["https://app.example.com"]);
  assert.deepEqual(origins("https://app.example.com, http://localhost:5173"), [
    "https://app.example.com",
    "http://localhost:5173",
  ]);
  assert.deepEqual(origins('["https://app.example.com","http://[::1]:8080"]'), ["https://app.example.com", "http://[::1]:8080"]);
  assert.deepEqual(origins("*"), ["*"]);
  assert.deepEqual(origins("[]"), []);
});

test("a corsOrigins entry the app would refuse fails the plan, naming the key, the entry's place and the form to write", () => {
  const allowed = 'allowed: origins scheme://host\\[:port\\] \\(http or https, no path or trailing slash\\), or "\\*" alone$';
  const cases: Array<[string, string]> = [
    // Origins are compared exactly: each of these would have matched no page, and the pods would not have started.
    ["https://App.example.com/", "entry 1 is not written as a browser sends it \\(https://app\\.example\\.com\\)"],
    ['["https://app.example.com:443"]', "entry 1 is not written as a browser sends it \\(https://app\\.example\\.com\\)"],
    ['["https://a.example.com","app.example.com"]', "entry 2 is not an http:// or https:// URL"],
    ['["null"]', "entry 1 is not an http:// or https:// URL"],
  ];
  for (const [value, problem] of cases) {
    assert.match(
      failure({ ...base, "agent-stack:corsOrigins": value }),
      new RegExp(`^agent-stack:corsOrigins: ${problem}; ${allowed}`),
      value,
    );
  }
  assert.match(
    failure({ ...base, "agent-stack:corsOrigins": '["*","https://app.example.com"]' }),
    new RegExp(`^agent-stack:corsOrigins: \\* admits every origin, so it stands alone; ${allowed}`),
  );
  // Never the entry itself: it may hold a user:password@ (app/src/origins.ts).
  assert.doesNotMatch(failure({ ...base, "agent-stack:corsOrigins": "https://u:secret@app.example.com" }), /secret/);
  assert.match(
    failure({ ...base, "agent-stack:corsOrigins": "true" }),
    /^agent-stack:corsOrigins: got true; allowed: an origin scheme/,
  );
});

test("the README's config table matches the schema and the tiers (npm run docs:config)", async () => {
  const { readFileSync } = await import("node:fs");
  const { withConfigTable } = await import("../../infra/config-table.ts");
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  assert.equal(readme, withConfigTable(readme), "README.md config table is stale: run npm run docs:config");
});

test("the README documents exactly the keys the program reads", async () => {
  const { STACK_KEYS, SECRET_KEYS } = await import("../../infra/config.ts");
  const { DOCUMENTED_KEYS } = await import("../../infra/config-table.ts");
  assert.deepEqual(DOCUMENTED_KEYS.map(([k]) => k).sort(), [...STACK_KEYS, ...SECRET_KEYS].sort());
});

test("numbers and booleans given as strings (pulumi config set --path) are read as the tier's types", () => {
  const config = parseStackConfig(
    withOverrides({ nodeGroups: { general: { max: "8" } }, database: { multiAz: "false" }, api: { cpuRequest: "2" } }),
    "prod",
  );
  assert.equal(config.sizes.nodeGroups.general.max, 8);
  assert.equal(config.sizes.database.multiAz, false);
  assert.equal(config.sizes.api.cpuRequest, "2");
  assert.match(
    failure(withOverrides({ nodeGroups: { general: { max: "eight" } } })),
    /nodeGroups\.general\.max: got "eight"; allowed: number/,
  );
});

test("only dev may go without the public ALB entry: a production tier refuses network.publicIngress false", () => {
  for (const tier of ["small", "medium", "large"]) {
    const config = {
      "aws:region": "us-east-1",
      "agent-stack:tier": tier,
      "agent-stack:overrides": JSON.stringify({ network: { publicIngress: false } }),
    };
    assert.match(
      failure(config),
      new RegExp(
        `agent-stack:overrides\\.network\\.publicIngress: false in tier ${tier}: .*only dev may go without it \\(set true\\)`,
      ),
    );
  }
  assert.equal(
    parseStackConfig({ "aws:region": "us-east-1", "agent-stack:tier": "dev" }, "dev").sizes.network.publicIngress,
    false,
  );
  const devWithAlb = {
    "aws:region": "us-east-1",
    "agent-stack:tier": "dev",
    "agent-stack:overrides": JSON.stringify({ network: { publicIngress: true } }),
  };
  assert.equal(parseStackConfig(devWithAlb, "dev").sizes.network.publicIngress, true);
});

test("network.perIpRequestsPerMinute: AWS WAF's lowest limit is 10, and a web ACL needs an ALB to guard", () => {
  assert.match(failure(withOverrides({ network: { perIpRequestsPerMinute: 5 } })), /network\.perIpRequestsPerMinute: .*10/);
  const devWithAcl = {
    "aws:region": "us-east-1",
    "agent-stack:tier": "dev",
    "agent-stack:overrides": JSON.stringify({ network: { perIpRequestsPerMinute: 600 } }),
  };
  assert.match(failure(devWithAcl), /network\.perIpRequestsPerMinute: set, but publicIngress is false/);
  assert.equal(
    parseStackConfig(withOverrides({ network: { perIpRequestsPerMinute: null } }), "prod").sizes.network.perIpRequestsPerMinute,
    null,
  );
});

test("domain: a DNS name the Ingress takes as its host (a DNS-1123 subdomain), else refused here, naming the key", () => {
  // kubernetes pkg/apis/networking/validation: spec.rules[].host must pass IsDNS1123Subdomain (apimachinery v0.35.0
  // pkg/util/validation/validation.go: labels of [a-z0-9-], at most 63, not starting or ending with '-').
  const https = { ...base, "agent-stack:hostedZoneId": "Z0123456789ABCDEFGHIJ" };
  for (const domain of ["-agents.example.com", "agents-.example.com", `${"a".repeat(64)}.example.com`])
    assert.match(
      failure({ ...https, "agent-stack:domain": domain }),
      /^agent-stack:domain: .*a DNS name like agents\.example\.com/,
      domain,
    );
  assert.equal(
    parseStackConfig({ ...https, "agent-stack:domain": "api-1.agents.example.co.uk" }, "prod").domain,
    "api-1.agents.example.co.uk",
  );
});

test("kubernetesVersion is read as typed: `pulumi config set agent-stack:kubernetesVersion 1.30` is 1.30, not the number 1.3", () => {
  // Pulumi hands every value over as a string; numbers-looking values of other keys are decoded (overrides, booleans).
  for (const version of ["1.36", "1.30"])
    assert.equal(parseStackConfig({ ...base, "agent-stack:kubernetesVersion": version }, "dev").kubernetesVersion, version);
  assert.match(failure({ ...base, "agent-stack:kubernetesVersion": "1.3" }), /^agent-stack:kubernetesVersion: .*1\.35/);
});

test('overrides: a quantity set as a bare integer (`--path ...api.cpuLimit 2`, stored as the number 2) is the quantity "2"', () => {
  // `pulumi config set --path` stores integers as numbers; the tier's quantities are strings ("500m", "2", "512Mi").
  assert.equal(parseStackConfig(withOverrides({ api: { cpuLimit: 2 } }), "prod").sizes.api.cpuLimit, "2");
  assert.equal(parseStackConfig(withOverrides({ api: { maxReplicas: "12" } }), "prod").sizes.api.maxReplicas, 12);
});

test("a container's request above its limit is refused, naming both: Kubernetes refuses such a container", () => {
  // core/v1 validation ValidateResourceRequirements: "must be less than or equal to cpu limit"; the operator's
  // Prometheus StatefulSet would be refused while its Helm release reported success.
  assert.match(failure(withOverrides({ api: { cpuRequest: "2", cpuLimit: "1" } })), /api\.cpuRequest: 2 is above cpuLimit 1/);
  assert.match(
    failure(withOverrides({ api: { memoryRequest: "2Gi", memoryLimit: "1536Mi" } })),
    /api\.memoryRequest: 2Gi is above memoryLimit 1536Mi/,
  );
  assert.match(
    failure(withOverrides({ monitoring: { prometheusMemoryRequest: "2Gi", prometheusMemoryLimit: "1Gi" } })),
    /monitoring\.prometheusMemoryRequest: 2Gi is above prometheusMemoryLimit 1Gi/,
  );
  const config = parseStackConfig(withOverrides({ api: { cpuRequest: "1500m", cpuLimit: "2" } }), "prod");
  assert.equal(config.sizes.api.cpuRequest, "1500m");
  // Equal in whole millicores: 700 * 1e-3 is 0.7000000000000001, which was above 0.7.
  assert.equal(
    parseStackConfig(withOverrides({ api: { cpuRequest: "700m", cpuLimit: "0.7" } }), "prod").sizes.api.cpuLimit,
    "0.7",
  );
  // A quantity its pattern refuses is named by it: the request <= limit check, run after the pattern too, threw.
  assert.match(
    failure(withOverrides({ api: { memoryLimit: "1G" } })),
    /^agent-stack:overrides\.api\.memoryLimit: .*a memory quantity/,
  );
});

test("memory is bytes or a binary suffix: 1000m (millibytes) is refused here, naming the key", () => {
  assert.match(failure(withOverrides({ qdrant: { memoryRequest: "1000m" } })), /qdrant\.memoryRequest: .*a memory quantity/);
});

test("sizes AWS refuses are refused here: EBS and RDS gp3 sizes, PostgreSQL's connection cap", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ nodeGroups: { general: { diskGb: 16_385 } } }, /nodeGroups\.general\.diskGb: got 16385; allowed: <= 16384/],
    [{ qdrant: { storageGb: 20_000 } }, /qdrant\.storageGb: got 20000; allowed: <= 16384/],
    [{ monitoring: { prometheusStorageGb: 20_000 } }, /monitoring\.prometheusStorageGb: got 20000; allowed: <= 16384/],
    [{ database: { maxAllocatedStorageGb: 100_000 } }, /database\.maxAllocatedStorageGb: got 100000; allowed: <= 65536/],
    [{ database: { maxConnections: 300_000 } }, /database\.maxConnections: got 300000; allowed: <= 262143/],
    // RDS: the maximum storage threshold at least 10 % above the allocated storage (InvalidParameterCombination).
    [
      { database: { allocatedStorageGb: 100, maxAllocatedStorageGb: 105 } },
      /database\.maxAllocatedStorageGb: 105 is less than 10 % above allocatedStorageGb 100; RDS needs at least 110/,
    ],
    // 115 is 9.5 % above 105: the least is rounded up, not down.
    [{ database: { allocatedStorageGb: 105, maxAllocatedStorageGb: 115 } }, /RDS needs at least 116/],
  ];
  for (const [overrides, message] of cases) assert.match(failure(withOverrides(overrides)), message);
  const config = parseStackConfig(withOverrides({ database: { allocatedStorageGb: 100, maxAllocatedStorageGb: 110 } }), "prod");
  assert.equal(config.sizes.database.maxAllocatedStorageGb, 110);
});

test("domain: at most 64 characters, ACM's limit for a certificate's domain name", () => {
  const https = { ...base, "agent-stack:hostedZoneId": "Z0123456789ABCDEFGHIJ" };
  const long = `${"a".repeat(41)}.${"b".repeat(11)}.example.com`; // 65
  assert.match(failure({ ...https, "agent-stack:domain": long }), /^agent-stack:domain: .*at most 64 characters/);
  assert.equal(parseStackConfig({ ...https, "agent-stack:domain": long.slice(1) }, "prod").domain, long.slice(1));
});

test("a class tuned with more connections than leave PostgreSQL 64 kB of work_mem each, or of unknown memory, is refused by its key", () => {
  // guc_tables.c: work_mem's minimum is 64 (kB); RDS refuses a parameter group below it.
  assert.equal(rdsParameterValue(String(postgresTuning("db.t4g.micro", 100).work_mem), instanceOf(1)), 1048);
  const database = (d: object) => failure(withOverrides({ database: d }));
  assert.match(
    database({ instanceClass: "db.t4g.micro", maxConnections: 2_000 }),
    /^agent-stack:overrides\.database\.maxConnections: 2000 leaves work_mem below PostgreSQL's 64 kB on db\.t4g\.micro \(1 GiB\); at most 1638, or a larger instanceClass$/m,
  );
  // medium's replica (db.r6g.xlarge) gets a parameter group of its own, so its class is checked and named too.
  assert.match(
    database({ replicaInstanceClass: "db.t4g.micro", maxConnections: 2_000 }),
    /^agent-stack:overrides\.database\.maxConnections: .* on db\.t4g\.micro .*, or a larger replicaInstanceClass$/m,
  );
  assert.match(
    database({ replicaInstanceClass: "db.x9.huge" }),
    /^agent-stack:overrides\.database\.replicaInstanceClass: .*no memory size known for db\.x9\.huge/m,
  );
  // Without replicas the replica's class is tuned nowhere.
  assert.equal(
    parseStackConfig(withOverrides({ database: { readReplicas: 0, replicaInstanceClass: "db.x9.huge" } }), "prod").sizes.database
      .replicaInstanceClass,
    "db.x9.huge",
  );
  // A class its pattern refuses is told so once.
  assert.doesNotMatch(database({ instanceClass: "DB.X" }), /no memory size known/);
});

test("an Ollama model is a name `ollama pull` takes", () => {
  const model = (name: string) => failure(withOverrides({ ollama: { models: { small: name } } }));
  for (const bad of ["", "llama3.1 8b", "a..b:1", "ns.x/model", "model:", "-x", "m:-q", `${"m".repeat(129)}`])
    assert.match(
      model(bad),
      /^agent-stack:overrides\.ollama\.models\.small: got .*; allowed: (an Ollama model name like llama3\.1:8b|<= 128)/m,
      bad,
    );
  // A leading '-' reached `ollama pull` in the pod's shell as a flag; a registry's port is allowed.
  for (const name of ["registry.example.com/team/qwen_2.5:7b-q4", "localhost:5000/team/m:1", "_x"]) {
    const ok = parseStackConfig(withOverrides({ ollama: { models: { small: name } } }), "prod");
    assert.equal(ok.sizes.ollama.models.small, name);
  }
});

test("a stack name AWS cannot take in the resources' names is refused, naming the rule", () => {
  // Each passed the plan and would fail at pulumi up (RDS and ElastiCache identifiers, S3, ECR, EKS, KMS, SNS names).
  for (const stack of ["Feature_Branch.x", "prod.eu", "PROD", "dev--x", "x-", "_x", "-x"])
    assert.match(
      failure(base, stack),
      new RegExp(
        `^stack "${stack.replace(/\./g, "\\.")}": use lowercase letters and digits, with single hyphens between them`,
        "m",
      ),
      stack,
    );
  const longest = "abcdefghijklmnopqrstuvwxyz12"; // agent-stack-<28> is 40, ElastiCache's limit
  assert.equal(parseStackConfig(base, longest).stack, longest);
  assert.match(
    failure(base, `${longest}3`),
    /^stack "abcdefghijklmnopqrstuvwxyz123": 29 characters, at most 28: ElastiCache's replication group id agent-stack-\S+ takes 40/m,
  );
  assert.equal(parseStackConfig(base, "prod-eu-2").stack, "prod-eu-2");
});

test("an empty alert secret is no receiver", () => {
  const config = parseStackConfig(base, "prod");
  const raw = { ...base, "agent-stack:alertSlackWebhookUrl": "" };
  // stack.ts passes the Alertmanager only these.
  assert.deepEqual(configuredSecrets({ ...raw, "agent-stack:alertPagerdutyKey": "k" }), ["alertPagerdutyKey"]);
  assert.throws(
    () => requireAlertReceiver(config, raw),
    (err) => err instanceof ConfigError && /no alert receiver/.test(err.message),
  );
  assert.doesNotThrow(() =>
    requireAlertReceiver(config, { ...raw, "agent-stack:alertSlackWebhookUrl": "https://hooks.example/x" }),
  );
});

test("--config: a key without a namespace is the project's, as `pulumi config set` stores it; another namespace is refused", () => {
  assert.deepEqual(configFlags(["tier=large", "aws:region=eu-west-1"]), {
    "agent-stack:tier": "large",
    "aws:region": "eu-west-1",
  });
  assert.throws(
    () => configFlags(["agent-stak:tier=large"]),
    /"agent-stak:tier": namespace "agent-stak" is not read by this program/,
  );
  assert.throws(() => configFlags(["agent-stack:=x"]), /"agent-stack:=x" names no key after "agent-stack:"/);
});

test("aws:region must be a region the AWS provider knows: a misspelled one planned every resource unpriced", () => {
  assert.match(
    failure({ ...base, "aws:region": "us-esat-1" }),
    /^aws:region: "us-esat-1" is not an AWS region; allowed: .*us-east-1/,
  );
  assert.equal(parseStackConfig({ ...base, "aws:region": "eu-central-1" }, "prod").region, "eu-central-1");
});

test("endpointPublicAccessCidrs: octets of 0-255 and a prefix of 0-32; notifyEmail: each address once", () => {
  for (const bad of ["999.1.1.1/99", "10.0.0.0/33", "10.0.0.256/8"])
    assert.match(
      failure({ ...base, "agent-stack:endpointPublicAccessCidrs": JSON.stringify([bad]) }),
      /^agent-stack:endpointPublicAccessCidrs\.0: .*an IPv4 CIDR like 203\.0\.113\.0\/24/,
      bad,
    );
  const cidrs = ["203.0.113.0/24", "0.0.0.0/0", "198.51.100.7/32"];
  const config = parseStackConfig({ ...base, "agent-stack:endpointPublicAccessCidrs": JSON.stringify(cidrs) }, "prod");
  assert.deepEqual(config.endpointPublicAccessCidrs, cidrs);
  assert.deepEqual(notifyEmails({ notifyEmail: ["ops@example.com", "ops@example.com", "sre@example.com"] }), [
    "ops@example.com",
    "sre@example.com",
  ]);
});

test("the endpoint CIDRs are network addresses, each listed once; the private endpoint's are /8 or narrower", () => {
  const set = (key: string, cidrs: string[]) => failure({ ...base, [`agent-stack:${key}`]: JSON.stringify(cidrs) });
  for (const key of ["endpointPublicAccessCidrs", "endpointPrivateAccessCidrs"]) {
    assert.match(
      set(key, ["10.0.128.5/24"]),
      new RegExp(
        `^agent-stack:${key}\\.0: a network address: 10\\.0\\.128\\.5/24 has host bits set; its network is 10\\.0\\.128\\.0/24`,
      ),
    );
    assert.match(set(key, ["203.0.113.7/0"]), /its network is 0\.0\.0\.0\/0/);
    assert.match(set(key, ["10.1.0.0/16", "10.1.0.0/16"]), new RegExp(`^agent-stack:${key}: each CIDR once`));
  }
  for (const wide of [["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/7"]]) {
    assert.match(set("endpointPrivateAccessCidrs", wide), /endpointPrivateAccessCidrs: the networks that call the endpoint/);
  }
  const cidrs = ["10.0.128.0/24", "192.168.4.0/22", "10.9.8.7/32"];
  const config = parseStackConfig({ ...base, "agent-stack:endpointPrivateAccessCidrs": JSON.stringify(cidrs) }, "prod");
  assert.deepEqual(config.endpointPrivateAccessCidrs, cidrs);
});

test("two or more Qdrant peers keep two copies of each shard: one copy takes data offline while a peer drains", () => {
  assert.match(
    failure(withOverrides({ qdrant: { replicas: 2, replicationFactor: 1, writeConsistency: 1 } })),
    /qdrant\.replicationFactor: 1 keeps one copy of each shard on 2 peers/,
  );
});

test("more Qdrant peers than their role's nodes are refused: each needs a node of its own", () => {
  assert.match(
    failure(withOverrides({ qdrant: { replicas: 5, replicationFactor: 2 } })),
    /agent-stack:overrides\.qdrant\.replicas: 5 peers need a node each \(required anti-affinity\), but nodeGroups\.vector\.max is 3/,
  );
  const dev = { "aws:region": "us-east-1", "agent-stack:tier": "dev" };
  assert.match(
    failure({ ...dev, "agent-stack:overrides": JSON.stringify({ qdrant: { replicas: 3, replicationFactor: 2 } }) }),
    /qdrant\.replicas: 3 peers need a node each \(required anti-affinity\), but nodeGroups\.general\.max is 2/,
  );
});

test("every RDS class a tier may name has a vCPU count, and a replica gets its source's worker processes at least", () => {
  assert.deepEqual(Object.keys(DB_VCPUS).sort(), Object.keys(DB_MEMORY_GIB).sort());
  // RDS's default GREATEST(${DBInstanceVCPU*2},8), the larger of the two classes'.
  assert.equal(replicaWorkerProcesses("db.m7g.2xlarge", "db.r6g.xlarge"), 16);
  assert.equal(replicaWorkerProcesses("db.r6g.4xlarge", "db.r6g.2xlarge"), 32);
  assert.equal(replicaWorkerProcesses("db.m7g.large", "db.r6g.4xlarge"), 32);
  assert.equal(replicaWorkerProcesses("db.t4g.micro", "db.t4g.micro"), 8);
});

test("budgetSnsTopicArn: with it the budget mails the notifyEmail addresses itself, at most 10 (AWS Budgets per alert)", () => {
  // Budgets API Reference, CreateBudget NotificationsWithSubscribers: one SNS subscriber and up to 10 email subscribers.
  const topic = { ...base, "agent-stack:budgetSnsTopicArn": "arn:aws:sns:us-east-1:123456789012:budget-alerts" };
  const emails = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => `oncall${i}@example.com`));
  assert.match(
    failure({ ...topic, "agent-stack:notifyEmail": emails(11) }),
    /^agent-stack:budgetSnsTopicArn: .*AWS Budgets takes at most 10 per notification \(got 11\)/m,
  );
  assert.equal(notifyEmails(parseStackConfig({ ...topic, "agent-stack:notifyEmail": emails(10) }, "prod")).length, 10);
  // Without the topic the addresses are the stack topic's subscriptions, as many as SNS takes.
  assert.equal(notifyEmails(parseStackConfig({ ...base, "agent-stack:notifyEmail": emails(11) }, "prod")).length, 11);
});

test("the memory settings are RDS formulas of the instance's own memory: a restart before a new class lands keeps them in it", () => {
  // A group changes at once (pending-reboot), a new instanceClass in the maintenance window: a failover or dev's
  // nightly start between the two ran the old class with the settings of the new one.
  const micro = postgresTuning("db.t4g.micro", 100);
  assert.deepEqual(postgresTuning("db.t4g.medium", 100), micro, "the same group for either class");
  for (const [instanceClass, gib] of Object.entries(DB_MEMORY_GIB)) {
    const tuned = Object.fromEntries(
      Object.entries(postgresTuning(instanceClass, 100)).map(([name, v]) => [
        name,
        rdsParameterValue(String(v), instanceOf(gib)),
      ]),
    );
    const kib = gib * 1024 * 1024;
    assert.deepEqual(
      tuned,
      {
        max_connections: 100,
        shared_buffers: kib / 4 / 8,
        effective_cache_size: (kib * 3) / 4 / 8,
        work_mem: Math.floor((kib * 0.4) / 100 / 4),
        maintenance_work_mem: Math.min(kib / 16, 2 * 1024 * 1024),
      },
      instanceClass,
    );
  }
  // RDS keeps some of the memory for itself: work_mem never falls below PostgreSQL's 64 kB for it.
  assert.equal(rdsParameterValue(String(postgresTuning("db.t4g.micro", 1_638).work_mem), instanceOf(0.5)), 64);
});
