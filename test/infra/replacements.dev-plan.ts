// Day-two replacements on the dev plan (see replacements.prod-plan.ts): the NAT instance, replaced after every new
// AL2023 AMI.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await stackPlan("dev");

test("the NAT instance is replaced delete-first: its successor boots on the same network interface", () => {
  const nat = one(plan, "aws:ec2/instance:Instance", "network-nat");
  const eni = one(plan, "aws:ec2/networkInterface:NetworkInterface", "network-nat-eni");
  // `ami` is ForceNew (internal/service/ec2/ec2_instance.go) and comes from the latest-AL2023 SSM parameter, so a new
  // release replaces the instance; the interface it boots on as its primary is the one the old instance holds.
  assert.equal(inputs(nat).primaryNetworkInterface.networkInterfaceId, `${eni.name}-id`);
  assert.equal(inputs(nat).userDataReplaceOnChange, true);
  assert.equal(nat.options.deleteBeforeReplace, true);
});
