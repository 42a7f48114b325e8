// The prod stack (tier medium) under mocks: the guide's production shape, encrypted and closed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { MOCK_SECRET_PREFIX } from "../../infra/plan/mocks.ts";
import { SECRET_PLACEHOLDER } from "../../infra/plan/types.ts";
import { inputs, nodeGroupsIgnoringScheduledSizes, ofType, one, newYorkStartHour } from "../support/plan.ts";
import { instanceOf, rdsParameterValue } from "../support/rds-formula.ts";

const plan = await stackPlan("prod");
const nodeGroups = ofType(plan, "aws:eks/nodeGroup:NodeGroup");
const group = (role: string) => inputs(nodeGroups.find((g) => inputs(g).labels?.role === role)!);

/** The local start hour of a UTC "HH:MM-HH:MM" window in New York today (RDS converts at today's offset). */
test("prod is tier medium with the guide's node groups", () => {
  assert.equal(plan.tier, "medium");
  // Issue 13: the vector role is one group per zone (three of one node each).
  assert.deepEqual(nodeGroups.map((g) => inputs(g).labels.role).sort(), [
    "general",
    "gpu",
    "monitoring",
    "vector",
    "vector",
    "vector",
  ]);
  // Issue 15: the guide's capacity on Graviton (same vCPU and memory as c6i/r6i/t3, ARM AMI).
  assert.deepEqual(group("general").instanceTypes, ["c7g.2xlarge"]);
  assert.deepEqual([group("general").scalingConfig.maxSize, group("general").amiType], [5, "AL2023_ARM_64_STANDARD"]);
  assert.deepEqual(group("vector").instanceTypes, ["r7g.2xlarge"]);
  const vector = nodeGroups.filter((g) => inputs(g).labels.role === "vector");
  assert.equal(
    vector.reduce((n, g) => n + inputs(g).scalingConfig.desiredSize, 0),
    3,
  );
  for (const g of vector) assert.equal(inputs(g).amiType, "AL2023_ARM_64_STANDARD");
  assert.deepEqual(group("monitoring").instanceTypes, ["t4g.large"]);
  assert.equal(group("monitoring").amiType, "AL2023_ARM_64_STANDARD");
});

test("the GPU nodes carry the cluster autoscaler's GPU label, naming their GPU; no other group does", () => {
  // Without it a GPU node counted as ready before its device plugin advertised nvidia.com/gpu, and the autoscaler added
  // another for the still-pending Ollama pod (kubernetes/autoscaler cluster-autoscaler-1.35.0, aws README "Special
  // note on GPU instances").
  assert.equal(group("gpu").labels["k8s.amazonaws.com/accelerator"], "nvidia-a10g");
  for (const g of nodeGroups.filter((n) => inputs(n).labels.role !== "gpu")) {
    assert.equal(inputs(g).labels["k8s.amazonaws.com/accelerator"], undefined, g.name);
  }
});

test("burstable groups launch with standard CPU credits (never billed beyond the hour); others set none", () => {
  const templates = ofType(plan, "aws:ec2/launchTemplate:LaunchTemplate");
  const credits = Object.fromEntries(templates.map((t) => [t.name, inputs(t).creditSpecification?.cpuCredits]));
  assert.deepEqual(credits, {
    "cluster-general": undefined,
    "cluster-vector": undefined,
    "cluster-gpu": undefined,
    "cluster-monitoring": "standard",
  });
});

test("the GPU group is g5 on the NVIDIA AMI and tainted so only GPU pods land there", () => {
  const gpu = group("gpu");
  // g5.2xlarge: one A10G 24 GB, 8 vCPU / 32 GiB; 2 by day, 3 at peak.
  assert.deepEqual(gpu.instanceTypes, ["g5.2xlarge"]);
  assert.equal(gpu.scalingConfig.maxSize, 3);
  assert.equal(gpu.amiType, "AL2023_x86_64_NVIDIA");
  assert.deepEqual(gpu.taints, [{ key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" }]);
  assert.equal(gpu.scalingConfig.desiredSize, 2);
});

test("node groups leave the desired size to schedules and autoscalers, and the sizes schedules move to them", () => {
  const groups = nodeGroupsIgnoringScheduledSizes(plan);
  for (const { group, ignored, scheduled } of groups) assert.deepEqual(ignored, scheduled, group);
  // general's off-peak lowers its minimum (3 -> 2): a refresh at night read it back, and the next update sent 3 above the
  // live desired 2, which EKS refuses. The others' minimum and maximum stay pulumi up's.
  const general = groups.find((g) => g.group === "cluster-general")!;
  assert.deepEqual(general.ignored, ["scalingConfig.desiredSize", "scalingConfig.minSize"]);
  assert.ok(groups.filter((g) => g.ignored.length === 1).length >= 2, JSON.stringify(groups));
});

test("a role split over zones leaves the minimum to the schedules only in the zones whose share they lower", async () => {
  // Tier small without a vector group: general spreads over three zones, and off-peak lowers no zone's share below its
  // minimum. Decided once for the whole role, every zone's group ignored a minimum no action ever set.
  const qdrant = { replicas: 1, memoryRequest: "4Gi", memoryLimit: "4Gi", cpuRequest: "1" };
  const zonal = await stackPlan("prod", {
    "agent-stack:tier": "small",
    "agent-stack:overrides": JSON.stringify({ nodeGroups: { vector: null }, qdrant }),
  });
  const groups = nodeGroupsIgnoringScheduledSizes(zonal);
  assert.ok(groups.filter((g) => /general-\d/.test(g.group)).length > 1, JSON.stringify(groups));
  for (const { group, ignored, scheduled } of groups) assert.deepEqual(ignored, scheduled, group);
});

test("every launch template requires IMDSv2 and encrypts a gp3 root volume, and every group uses one", () => {
  const templates = ofType(plan, "aws:ec2/launchTemplate:LaunchTemplate");
  // One template per role; a role's per-zone groups share it.
  assert.equal(templates.length, new Set(nodeGroups.map((g) => inputs(g).labels.role)).size);
  for (const t of templates) {
    assert.equal(inputs(t).metadataOptions.httpTokens, "required", t.name);
    const ebs = inputs(t).blockDeviceMappings[0].ebs;
    assert.equal(ebs.encrypted, "true", t.name);
    assert.equal(ebs.volumeType, "gp3", t.name);
  }
  for (const g of nodeGroups) assert.ok(inputs(g).launchTemplate?.id, `${g.name} has no launch template`);
});

test("RDS: PostgreSQL 16, Multi-AZ, encrypted gp3, protected, with a read replica of the primary", () => {
  const dbs = ofType(plan, "aws:rds/instance:Instance");
  const primary = dbs.find((d) => !inputs(d).replicateSourceDb)!;
  const replicas = dbs.filter((d) => inputs(d).replicateSourceDb);
  const p = inputs(primary);
  assert.equal(p.engine, "postgres");
  assert.match(p.engineVersion, /^16/);
  assert.equal(p.instanceClass, "db.m7g.2xlarge"); // 8 vCPU / 32 GiB Graviton, Multi-AZ
  assert.equal(p.multiAz, true);
  assert.equal(p.storageType, "gp3");
  assert.equal(p.storageEncrypted, true);
  assert.ok(p.kmsKeyId);
  assert.equal(p.publiclyAccessible, false);
  assert.equal(p.deletionProtection, true);
  assert.equal(p.skipFinalSnapshot, false);
  assert.ok(p.finalSnapshotIdentifier);
  assert.equal(p.performanceInsightsEnabled, true);
  assert.ok(p.backupRetentionPeriod >= 7);
  assert.equal(primary.options.protect, true);
  assert.equal(replicas.length, 1);
  assert.equal(inputs(replicas[0]).instanceClass, "db.r6g.xlarge");
  assert.equal(inputs(replicas[0]).replicateSourceDb, p.identifier);
});

test("RDS ships its PostgreSQL log (statements slower than 1 s) to CloudWatch; Performance Insights keeps its data under the data key", () => {
  const dbs = ofType(plan, "aws:rds/instance:Instance").map(inputs);
  const primary = dbs.find((d) => !d.replicateSourceDb)!;
  // Without the export log_min_duration_statement writes to the instance's own log files alone, which no alert reads.
  assert.deepEqual(primary.enabledCloudwatchLogsExports, ["postgresql"]);
  // Left out, RDS encrypts Performance Insights with the AWS-managed aws/rds key, outside the data key's policy.
  for (const d of dbs) assert.equal(d.performanceInsightsKmsKeyId, primary.kmsKeyId, d.identifier);
});

test("the read replica's storage may grow as far as the primary's (its autoscaling is its own)", () => {
  const [primary, replica] = [false, true].map((r) =>
    inputs(ofType(plan, "aws:rds/instance:Instance").find((d) => Boolean(inputs(d).replicateSourceDb) === r)!),
  );
  assert.equal(primary.maxAllocatedStorage, 1000);
  assert.equal(replica.maxAllocatedStorage, primary.maxAllocatedStorage);
});

test("the same-region read replica names no KMS key: RDS refuses one and encrypts it with the primary's", () => {
  const replica = inputs(ofType(plan, "aws:rds/instance:Instance").find((d) => inputs(d).replicateSourceDb)!);
  assert.equal(replica.kmsKeyId, undefined);
  assert.equal(replica.storageEncrypted, undefined);
});

/** A parameter group's values as RDS computes them on an instance of `gib` GiB. */
const parametersOn = (group: string, gib: number) =>
  Object.fromEntries(
    inputs(one(plan, "aws:rds/parameterGroup:ParameterGroup", group)).parameters.map((p: any) => [
      p.name,
      rdsParameterValue(p.value, instanceOf(gib)),
    ]),
  );

test("the parameter group carries the guide's tuning scaled to a 32 GiB instance (db.m7g.2xlarge)", () => {
  const params = parametersOn("database-params", 32);
  assert.equal(params.shared_buffers, (32 * 1024 * 1024 * 0.25) / 8); // 8 GiB in 8 kB pages
  assert.equal(params.effective_cache_size, (32 * 1024 * 1024 * 0.75) / 8);
  assert.equal(params.maintenance_work_mem, 2 * 1024 * 1024); // RAM/16 capped at 2 GB
  assert.equal(params.max_connections, 400);
  assert.equal(params["rds.force_ssl"], 1);
});

test("ElastiCache: TLS with a secret auth token, encrypted at rest, failover across AZs, volatile-lru", () => {
  const c = inputs(one(plan, "aws:elasticache/replicationGroup:ReplicationGroup"));
  assert.equal(c.transitEncryptionEnabled, true);
  assert.equal(c.atRestEncryptionEnabled, true);
  assert.ok(c.kmsKeyId);
  assert.equal(c.authToken, SECRET_PLACEHOLDER);
  assert.equal(c.numCacheClusters, 2);
  assert.equal(c.automaticFailoverEnabled, true);
  assert.equal(c.multiAzEnabled, true);
  assert.ok(c.snapshotRetentionLimit > 0);
  const params = inputs(one(plan, "aws:elasticache/parameterGroup:ParameterGroup")).parameters;
  // Evicts keys with an expiry alone: the rate limit's logs have none (test/app/hotpath.test.ts, "a full Redis").
  assert.deepEqual(params, [{ name: "maxmemory-policy", value: "volatile-lru" }]);
});

test("ElastiCache changes wait for its maintenance window: applied at once, a node type change replaces nodes at peak", () => {
  // ModifyReplicationGroup ApplyImmediately (default false): the change waits for the next maintenance window.
  assert.equal(inputs(one(plan, "aws:elasticache/replicationGroup:ReplicationGroup")).applyImmediately, false);
});

test("node groups update one node at a time: the disruption budgets let one pod of each workload leave at a time", () => {
  // EKS drains maxUnavailable nodes at once and fails the update (PodEvictionFailure) when a pod has not left within
  // 15 minutes (EKS User Guide, "Understand each phase of node updates"): two at once, the second node's evictions
  // wait on the same budgets as the first's, toward that limit.
  for (const g of nodeGroups) assert.deepEqual(inputs(g).updateConfig, { maxUnavailable: 1 }, g.name);
});

test("CoreDNS and the EBS CSI driver are created after the node groups: their pods need a node to become ACTIVE", () => {
  // EKS waits for an add-on's pods; with no node yet CoreDNS and the CSI controller stay pending and the add-on
  // goes DEGRADED, failing the first `pulumi up`.
  const addons = ofType(plan, "aws:eks/addon:Addon");
  for (const name of ["coredns", "aws-ebs-csi-driver"]) {
    const addon = addons.find((a) => inputs(a).addonName === name)!;
    for (const g of nodeGroups) assert.ok(addon.dependsOn?.includes(g.urn), `${name} waits for ${g.name}`);
  }
});

test("the cluster's OIDC provider admits the STS audience alone, the one IRSA's tokens carry", () => {
  // EKS User Guide, "Create an IAM OIDC provider for your cluster": audience sts.amazonaws.com.
  const [oidc] = ofType(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider");
  assert.deepEqual(inputs(oidc!).clientIdLists, ["sts.amazonaws.com"]);
});

test("secrets live in Secrets Manager under a customer key, EKS secrets are envelope-encrypted, keys rotate", () => {
  const secrets = ofType(plan, "aws:secretsmanager/secret:Secret");
  assert.ok(secrets.length >= 2);
  for (const s of secrets) assert.ok(inputs(s).kmsKeyId, s.name);
  const eks = inputs(one(plan, "aws:eks/cluster:Cluster"));
  assert.deepEqual(eks.encryptionConfig.resources, ["secrets"]);
  assert.ok(eks.encryptionConfig.provider.keyArn);
  assert.ok(eks.enabledClusterLogTypes.includes("audit"));
  for (const k of ofType(plan, "aws:kms/key:Key")) assert.equal(inputs(k).enableKeyRotation, true, k.name);
});

test("no security group opens PostgreSQL or Redis beyond the VPC", () => {
  const vpcCidr = inputs(one(plan, "aws:ec2/vpc:Vpc")).cidrBlock;
  const net = vpcCidr.split("/")[0].split(".").slice(0, 2).join(".");
  for (const sg of ofType(plan, "aws:ec2/securityGroup:SecurityGroup")) {
    for (const rule of inputs(sg).ingress ?? []) {
      const covers = (port: number) => rule.protocol === "-1" || (rule.fromPort <= port && port <= rule.toPort);
      if (!covers(5432) && !covers(6379)) continue;
      for (const cidr of rule.cidrBlocks ?? []) assert.ok(cidr.startsWith(`${net}.`), `${sg.name} opens to ${cidr}`);
      assert.equal(rule.ipv6CidrBlocks, undefined, `${sg.name} opens to IPv6`);
      assert.ok((rule.securityGroups ?? []).length > 0 || (rule.cidrBlocks ?? []).length > 0, `${sg.name} rule has no source`);
    }
  }
  // Rules are only inline: a rule resource of its own would open a group past the checks above.
  for (const type of ["aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:ec2/securityGroupRule:SecurityGroupRule"])
    assert.deepEqual(ofType(plan, type), [], type);
  for (const [name, port] of [
    ["database-sg", 5432],
    ["cache-sg", 6379],
  ] as const) {
    const sg = inputs(one(plan, "aws:ec2/securityGroup:SecurityGroup", name));
    assert.deepEqual(
      sg.ingress.map((r: any) => [r.fromPort, r.cidrBlocks, r.securityGroups.length > 0]),
      [[port, undefined, true]],
      name,
    );
  }
});

test("endpointPrivateAccessCidrs admits those networks to the private endpoint on 443, through the cluster's group", async () => {
  const withRunner = await stackPlan("prod", { "agent-stack:endpointPrivateAccessCidrs": '["10.0.128.0/24","192.168.4.0/22"]' });
  const rules = ofType(withRunner, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").map(inputs);
  const cluster = inputs(one(withRunner, "aws:eks/cluster:Cluster"));
  assert.deepEqual(
    rules.map((r) => [r.cidrIpv4, r.ipProtocol, r.fromPort, r.toPort]),
    [
      ["10.0.128.0/24", "tcp", 443, 443],
      ["192.168.4.0/22", "tcp", 443, 443],
    ],
  );
  // The group EKS made for the cluster, as the mocks name it (infra/plan/mocks.ts).
  for (const r of rules) assert.equal(r.securityGroupId, `sg-${cluster.name}-cluster`);
  assert.equal(cluster.vpcConfig.endpointPublicAccess, false, "the public endpoint stays off");
});

test("generated passwords reach resources only as secrets, never as plain text", () => {
  assert.ok(!JSON.stringify(plan.resources).includes(MOCK_SECRET_PREFIX), "a generated secret appears in plain text");
  assert.equal(
    inputs(ofType(plan, "aws:rds/instance:Instance").find((d) => !inputs(d).replicateSourceDb)!).password,
    SECRET_PLACEHOLDER,
  );
  for (const v of ofType(plan, "aws:secretsmanager/secretVersion:SecretVersion"))
    assert.equal(inputs(v).secretString, SECRET_PLACEHOLDER);
});

test("network: three AZs, a NAT gateway per AZ, private subnets for data, S3 gateway endpoint", () => {
  assert.equal(ofType(plan, "aws:ec2/natGateway:NatGateway").length, 3);
  const subnets = ofType(plan, "aws:ec2/subnet:Subnet");
  assert.equal(subnets.length, 6);
  assert.ok(subnets.every((s) => inputs(s).mapPublicIpOnLaunch === false));
  assert.equal(inputs(one(plan, "aws:ec2/vpcEndpoint:VpcEndpoint")).vpcEndpointType, "Gateway");
});

test("ECR scans on push, tags are immutable, old images expire", () => {
  const repo = inputs(one(plan, "aws:ecr/repository:Repository"));
  assert.equal(repo.imageScanningConfiguration.scanOnPush, true);
  assert.equal(repo.imageTagMutability, "IMMUTABLE");
  const rule = JSON.parse(inputs(one(plan, "aws:ecr/lifecyclePolicy:LifecyclePolicy")).policy).rules[0];
  assert.equal(rule.selection.countNumber, 50);
});

test("every AWS resource is tagged through the provider's default tags", () => {
  const provider = inputs(one(plan, "pulumi:providers:aws"));
  const tags = JSON.parse(
    typeof provider.defaultTags === "string" ? provider.defaultTags : JSON.stringify(provider.defaultTags),
  ).tags;
  assert.deepEqual(
    { project: tags.project, stack: tags.stack, tier: tags.tier },
    { project: "agent-stack", stack: "prod", tier: "medium" },
  );
});

test("stack outputs: endpoints and ARNs in the clear, kubeconfig as a secret", () => {
  for (const key of [
    "vpcId",
    "clusterName",
    "clusterEndpoint",
    "dbEndpoint",
    "dbSecretArn",
    "cacheEndpoint",
    "cacheSecretArn",
    "ecrRepositoryUrl",
    "tier",
  ]) {
    assert.ok(plan.outputs[key], `output ${key} missing`);
  }
  assert.equal(plan.outputs.kubeconfig, SECRET_PLACEHOLDER);
});

test("the replica gets tuning for its own memory (db.r6g.xlarge, 32 GiB) in its own parameter group", () => {
  assert.equal(parametersOn("database-replica-params", 32).shared_buffers, (32 * 1024 * 1024 * 0.25) / 8);
  const replica = ofType(plan, "aws:rds/instance:Instance").find((d) => inputs(d).replicateSourceDb)!;
  assert.equal(inputs(replica).parameterGroupName, "database-replica-params");
});

test("the replica's max_worker_processes is at least its source's, which a standby needs to take queries", () => {
  // PostgreSQL "Hot Standby" (administrator's overview): max_worker_processes no smaller on a standby than on the
  // primary. RDS's default, GREATEST(${DBInstanceVCPU*2},8), gave db.r6g.xlarge (4 vCPU) 8 under db.m7g.2xlarge's 16.
  const workers = (name: string) =>
    inputs(one(plan, "aws:rds/parameterGroup:ParameterGroup", name)).parameters.find(
      (p: any) => p.name === "max_worker_processes",
    );
  assert.deepEqual(workers("database-replica-params"), {
    name: "max_worker_processes",
    value: "16",
    applyMethod: "pending-reboot",
  });
  // The primary keeps RDS's default for its class (16).
  assert.equal(workers("database-params"), undefined);
});

test("the VPC CNI enforces NetworkPolicies", () => {
  const cni = inputs(one(plan, "aws:eks/addon:Addon", "cluster-vpc-cni"));
  assert.equal(JSON.parse(cni.configurationValues).enableNetworkPolicy, "true");
});

test("prod's RDS backs up inside the off-peak window", () => {
  const db = inputs(ofType(plan, "aws:rds/instance:Instance").find((d) => !inputs(d).replicateSourceDb)!);
  assert.equal(newYorkStartHour(db.backupWindow), 3, db.backupWindow); // 03:00 New York, not 03:00 UTC (22:00)
});
