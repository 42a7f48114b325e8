// Day-two replacements on the dev plan (see replacements.prod-plan.ts): the NAT instance, replaced after every new
// AL2023 AMI, and a dev stack that moves to a production tier (two zones -> three).
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("dev");
const zoneOf = (p: typeof plan) =>
  new Map(ofType(p, "aws:ec2/subnet:Subnet").map((s) => [`${s.name}-id`, inputs(s).availabilityZoneId as string]));

test("the NAT instance is replaced delete-first: its successor boots on the same network interface", () => {
  const nat = one(plan, "aws:ec2/instance:Instance", "network-nat");
  const eni = one(plan, "aws:ec2/networkInterface:NetworkInterface", "network-nat-eni");
  // `ami` is ForceNew (internal/service/ec2/ec2_instance.go) and comes from the latest-AL2023 SSM parameter, so a new
  // release replaces the instance; the interface it boots on as its primary is the one the old instance holds.
  assert.equal(inputs(nat).primaryNetworkInterface.networkInterfaceId, `${eni.name}-id`);
  assert.equal(inputs(nat).userDataReplaceOnChange, true);
  assert.equal(nat.options.deleteBeforeReplace, true);
});

test("dev -> small adds a third zone; the cluster keeps the subnets of the two it was created in", async () => {
  const small = await runPlan({ stack: "dev", config: { "agent-stack:tier": "small" } });
  const zones = (p: typeof plan) => {
    const z = zoneOf(p);
    const cluster = one(p, "aws:eks/cluster:Cluster");
    return { zones: new Set((inputs(cluster).vpcConfig.subnetIds as string[]).map((id) => z.get(id))), cluster };
  };
  const before = zones(plan);
  const after = zones(small);
  assert.equal(before.zones.size, 2);
  assert.equal(after.zones.size, 3, "the program's subnets for the cluster span the new zone");
  // UpdateClusterConfig refuses subnets outside the zones the cluster was created in: the option keeps the old list.
  for (const p of [before, after]) assert.deepEqual(p.cluster.options.ignoreChanges, ["vpcConfig.subnetIds"]);
});
