// The dev stack under mocks: one small node, no GPU, single-AZ burstable data stores, easy to tear down.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { MOCK_SECRET_PREFIX } from "../../infra/plan/mocks.ts";
import { inputs, ofType, one, newYorkStartHour } from "../support/plan.ts";

const plan = await stackPlan("dev");

/** The local start hour of a UTC "HH:MM-HH:MM" window in New York today (RDS converts at today's offset). */
test("dev is one general node group of one Spot Graviton node, with no GPU or vector group", () => {
  assert.equal(plan.tier, "dev");
  const groups = ofType(plan, "aws:eks/nodeGroup:NodeGroup");
  assert.deepEqual(
    groups.map((g) => inputs(g).labels.role),
    ["general"],
  );
  const g = inputs(groups[0]);
  assert.deepEqual(g.instanceTypes, ["m7g.xlarge", "m6g.xlarge"]);
  assert.equal(g.capacityType, "SPOT");
  assert.equal(g.scalingConfig.desiredSize, 1);
  assert.equal(g.amiType, "AL2023_ARM_64_STANDARD", "Graviton types need the ARM AMI");
  assert.equal(g.taints, undefined);
});

test("dev RDS is single-AZ burstable without replicas, and can be destroyed", () => {
  const dbs = ofType(plan, "aws:rds/instance:Instance");
  assert.equal(dbs.length, 1);
  const db = inputs(dbs[0]);
  assert.match(db.instanceClass, /^db\.t4g\./);
  assert.equal(db.multiAz, false);
  assert.equal(db.storageEncrypted, true);
  assert.equal(db.skipFinalSnapshot, true);
  assert.equal(db.deletionProtection, false);
  assert.equal(dbs[0].options.protect, undefined);
});

test("dev cache is one burstable node without failover, still TLS and encrypted", () => {
  const c = inputs(one(plan, "aws:elasticache/replicationGroup:ReplicationGroup"));
  assert.match(c.nodeType, /^cache\.t4g\./);
  assert.equal(c.numCacheClusters, 1);
  assert.equal(c.automaticFailoverEnabled, false);
  assert.equal(c.transitEncryptionEnabled, true);
  assert.equal(c.atRestEncryptionEnabled, true);
});

test("dev network: two AZs, no NAT gateway; private subnets reach the internet through one NAT instance", () => {
  assert.equal(ofType(plan, "aws:ec2/natGateway:NatGateway").length, 0);
  assert.equal(ofType(plan, "aws:ec2/subnet:Subnet").length, 4);
  const nat = inputs(one(plan, "aws:ec2/instance:Instance"));
  assert.equal(nat.instanceType, "t4g.nano");
  assert.deepEqual(nat.creditSpecification, { cpuCredits: "standard" });
  assert.equal(nat.metadataOptions.httpTokens, "required");
  assert.equal(nat.associatePublicIpAddress, undefined, "the address is an EIP on the interface, not a launch-time public IP");
  assert.match(nat.userData, /net\.ipv4\.ip_forward = 1/);
  assert.match(nat.userData, /MASQUERADE/);
  const eni = one(plan, "aws:ec2/networkInterface:NetworkInterface");
  assert.equal(inputs(eni).sourceDestCheck, false, "a NAT must forward traffic that is not its own");
  assert.equal(
    nat.primaryNetworkInterface.networkInterfaceId,
    `${eni.name}-id`,
    "the instance runs on that interface (mock ids: <name>-id)",
  );
  assert.equal(inputs(one(plan, "aws:ec2/eip:Eip")).networkInterface, nat.primaryNetworkInterface.networkInterfaceId);
  const privateRoutes = ofType(plan, "aws:ec2/routeTable:RouteTable").filter((r) => r.name.includes("private"));
  assert.equal(privateRoutes.length, 2);
  for (const r of privateRoutes) {
    assert.equal(inputs(r).routes[0].networkInterfaceId, nat.primaryNetworkInterface.networkInterfaceId, r.name);
    assert.equal(inputs(r).routes[0].natGatewayId, undefined, r.name);
  }
  // Only the VPC may send traffic through it.
  const sg = inputs(one(plan, "aws:ec2/securityGroup:SecurityGroup", "network-nat-sg"));
  assert.deepEqual(
    sg.ingress.map((i: any) => i.cidrBlocks),
    [["10.0.0.0/16"]],
  );
});

test("dev ECR can be force-deleted; launch templates still require IMDSv2", () => {
  assert.equal(inputs(one(plan, "aws:ecr/repository:Repository")).forceDelete, true);
  for (const t of ofType(plan, "aws:ec2/launchTemplate:LaunchTemplate"))
    assert.equal(inputs(t).metadataOptions.httpTokens, "required");
  assert.ok(!JSON.stringify(plan.resources).includes(MOCK_SECRET_PREFIX));
});

test("dev's RDS backs up while it runs: its backup window is inside work hours, not at night", () => {
  const db = inputs(one(plan, "aws:rds/instance:Instance"));
  // An hour into 08:00-20:00 in the stack's zone (us-east-1: America/New_York), at its standard time.
  assert.equal(newYorkStartHour(db.backupWindow), 9, db.backupWindow);
});
