// Day-two replacements on the prod plan: inputs a later `pulumi up` can change that AWS cannot change in place
// (ForceNew in terraform-provider-aws, which @pulumi/aws bridges), on resources Pulumi would otherwise create anew before
// deleting the old one. The mocks accept any replacement; these checks hold the program to what AWS does not.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { mockZones } from "../../infra/plan/mocks.ts";
import { chooseZones, nextZone, qualifyingZones, zonesLacking } from "../../infra/platform/zones.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const urnOf = new Map(plan.resources.map((r) => [`${r.type}::${r.name}`, r.urn]));
const SUBNET = "aws:ec2/subnet:Subnet";
const LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration";

/** us-east-1 as the mocks have it, with `lacking` zone IDs offering none of the given types. */
function facts(types: string[], lacking: Record<string, string[]>) {
  const zones = mockZones("us-east-1");
  const pairs = zones.flatMap((z) => types.filter((t) => !lacking[z.zoneId]?.includes(t)).map((t) => [t, z.zoneId]));
  return {
    names: zones.map((z) => z.name),
    zoneIds: zones.map((z) => z.zoneId),
    offerings: { instanceTypes: pairs.map((p) => p[0]), locations: pairs.map((p) => p[1]) },
  };
}

test("the zone choice moves with the tier's instance types, so a subnet does not follow it: it keeps its zone", () => {
  // A dev stack (m7g only) in an account whose use1-az2 has no g5: small brings g5, and today's choice skips use1-az2.
  const lacking = { "use1-az2": ["g5.2xlarge"] };
  const ids = (zones: { zoneId: string }[]) => zones.map((z) => z.zoneId);
  assert.deepEqual(ids(chooseZones(facts(["m7g.xlarge"], lacking), ["m7g.xlarge"], 2, "us-east-1")), ["use1-az1", "use1-az2"]);
  const small = ["m7g.xlarge", "g5.2xlarge"];
  assert.deepEqual(ids(chooseZones(facts(small, lacking), small, 3, "us-east-1")), ["use1-az1", "use1-az4", "use1-az5"]);
  // availability_zone_id is ForceNew (internal/service/ec2/vpc_subnet.go) and the CIDR block is the index's: following
  // the choice, network-*-1 would be created anew beside itself (InvalidSubnet.Conflict). Every subnet ignores it.
  const subnets = ofType(plan, SUBNET);
  assert.equal(subnets.length, 6);
  for (const s of subnets) assert.deepEqual(s.options.ignoreChanges, ["availabilityZoneId"], s.name);
});

test("a new pair of subnets takes the first qualifying zone the earlier subnets are not in (where they are, not today's pick)", () => {
  // That stack going to three zones: its subnets 0 and 1 stay in az1 and az2; the third pair goes to az4, not az2 again.
  assert.equal(nextZone(["use1-az1", "use1-az4", "use1-az5"], ["use1-az1", "use1-az2"], "us-east-1"), "use1-az4");
  assert.equal(nextZone(["use1-az1", "use1-az2", "use1-az4"], ["use1-az1", "use1-az4"], "us-east-1"), "use1-az2");
  assert.throws(() => nextZone(["use1-az1", "use1-az2"], ["use1-az1", "use1-az2"], "us-east-1"), /no zone left/);
  // The plan: each subnet's zone is read from the private subnets before it (their outputs), in order.
  for (const i of [1, 2]) {
    for (const kind of ["public", "private"]) {
      const deps = one(plan, SUBNET, `network-${kind}-${i}`).propertyDependencies?.availabilityZoneId ?? [];
      for (let j = 0; j < i; j++)
        assert.ok(deps.includes(urnOf.get(`${SUBNET}::network-private-${j}`)!), `${kind}-${i} <- private-${j}`);
    }
  }
  const zones = ofType(plan, SUBNET).map((s) => inputs(s).availabilityZoneId);
  assert.deepEqual([...new Set(zones)], ["use1-az1", "use1-az2", "use1-az4"], "a new stack's choice is unchanged");
});

test("zonesLacking names a kept zone that lacks a type the node groups now use (network.ts refuses the plan with it)", () => {
  const types = ["c7g.2xlarge", "g5.2xlarge"];
  const { offerings } = facts(types, { "use1-az2": ["g5.2xlarge"] });
  assert.deepEqual(zonesLacking(["use1-az1", "use1-az2"], offerings, types), ["use1-az2: g5.2xlarge"]);
  assert.deepEqual(zonesLacking(["use1-az1", "use1-az4"], offerings, types), []);
  // qualifyingZones is chooseZones' whole list: the next pair may need a zone past the first `count`.
  assert.deepEqual(
    qualifyingZones(facts(types, {}), types, 2, "us-east-1").map((z) => z.zoneId),
    ["use1-az1", "use1-az2", "use1-az4", "use1-az5", "use1-az6"],
  );
});

test("the Backup Vault Lock is replaced delete-first: created first, the old lock's delete would remove the new one", async () => {
  // internal/service/backup/vault_lock_configuration.go: no Update, every argument ForceNew, id = the vault's name;
  // Create is PutBackupVaultLockConfiguration (overwrites), Delete DeleteBackupVaultLockConfiguration (of the vault).
  const lock = one(plan, LOCK);
  const compliance = await runPlan({ stack: "prod", config: { "agent-stack:backupVaultLock": "compliance" } });
  const retention = await runPlan({
    stack: "prod",
    config: { "agent-stack:overrides": JSON.stringify({ backups: { monthly: { keepMonths: 24 } } }) },
  });
  // What a user changes: the mode (changeable_for_days) and the retention (min/max_retention_days), all ForceNew.
  assert.equal(inputs(lock).changeableForDays, undefined);
  assert.equal(inputs(one(compliance, LOCK)).changeableForDays, 3);
  assert.notEqual(inputs(one(retention, LOCK)).maxRetentionDays, inputs(lock).maxRetentionDays);
  for (const p of [plan, compliance, retention]) {
    const { options } = one(p, LOCK);
    assert.equal(options.deleteBeforeReplace, true);
    assert.equal(options.protect, true, "outside dev: pulumi up refuses the replacement until the lock is unprotected");
  }
});

test("the EKS control plane keeps the subnets it was created with (EKS takes none in a zone it was not created in)", () => {
  assert.deepEqual(one(plan, "aws:eks/cluster:Cluster").options.ignoreChanges, ["vpcConfig.subnetIds"]);
});

test("a role's managed-policy attachments are named by policy, and keep the names they had by position as aliases", () => {
  // policy_arn is ForceNew: named by position, a policy taken out of the middle of a list replaced the attachments
  // after it, and the last one's delete detached a policy another attachment had just claimed (a no-op attach). The
  // aliases are the names stacks deployed before hold, so they are written out here: an alias computed from a list
  // reordered since would hand an old attachment to another policy and detach one again.
  const DEPLOYED_BEFORE: Record<string, string> = {
    "cluster-node-0": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cluster-node-1": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "cluster-node-2": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "cluster-node-3": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    "backups-backup-0": "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "backups-backup-1": "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    "cluster-ebs-csi-0": "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
    "cluster-vpc-cni-0": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
  };
  const attachments = ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").filter(
    (a) => a.name !== "cluster-control-plane",
  );
  for (const a of attachments) {
    const policy = (inputs(a).policyArn as string).split("/").at(-1)!;
    assert.ok(a.name.endsWith(`-${policy}`), `${a.name} is not named after ${policy}`);
  }
  const aliased = Object.fromEntries(
    attachments.flatMap((a) => (a.options.aliases ?? []).map((alias) => [alias, inputs(a).policyArn as string])),
  );
  assert.deepEqual(aliased, DEPLOYED_BEFORE);
});

test("each e-mail subscription is named by its address: an address taken out unsubscribes that one, no other", async () => {
  // endpoint is ForceNew (internal/service/sns/topic_subscription.go: Create is Subscribe, Delete Unsubscribe of the
  // ARN), and SNS keeps one subscription per topic, protocol and endpoint: Subscribe of an address already subscribed
  // answers its subscription's ARN. Named by position, [a, b, c] -> [a, c] replaced email-1 (b -> c), whose Subscribe
  // took c's subscription, and email-2's delete then unsubscribed c: c heard nothing while the state held it.
  const SUB = "aws:sns/topicSubscription:TopicSubscription";
  const listed = async (emails: string[]) => {
    const p = await runPlan({ stack: "prod", config: { "agent-stack:notifyEmail": JSON.stringify(emails) } });
    return new Map(ofType(p, SUB).map((s) => [s.name, [inputs(s).endpoint, s.options.aliases]]));
  };
  const before = await listed(["a@example.com", "b@example.com", "c@example.com"]);
  const after = await listed(["a@example.com", "c@example.com"]);
  for (const [name, [endpoint]] of after) assert.equal(before.get(name)?.[0], endpoint, `${name} would be replaced`);
  assert.deepEqual(
    [...before.keys()].filter((name) => !after.has(name)),
    ["notifications-email-b@example.com"],
  );
  // A stack deployed before keeps its subscriptions: each takes over the one its position named.
  assert.deepEqual(
    [...before.values()].map(([endpoint, aliases]) => [endpoint, aliases]),
    [
      ["a@example.com", ["notifications-email-0"]],
      ["b@example.com", ["notifications-email-1"]],
      ["c@example.com", ["notifications-email-2"]],
    ],
  );
});
