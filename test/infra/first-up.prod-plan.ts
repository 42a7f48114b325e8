// What a first real `pulumi up` needs beyond what the mocks accept (issue 12): ordering the engine must see,
// add-ons that take over EKS's self-managed ones, zones chosen by ID, a headless governing Service for Ollama.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mockZones } from "../../infra/plan/mocks.ts";
import { chooseZones, EKS_UNSUPPORTED_ZONE_IDS } from "../../infra/platform/zones.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const keyOf = new Map(plan.resources.map((r) => [r.urn, `${r.type}::${r.name}`]));
const inputsOf = (type: string) => ofType(plan, type).map(inputs);
/** The resource with its dependsOn URNs read back as "type::name". */
const find = (type: string, name?: string) => {
  const r = one(plan, type, name);
  return { ...r, dependsOn: (r.dependsOn ?? []).map((u) => keyOf.get(u) ?? u) };
};

test("the EKS cluster depends on its role's AmazonEKSClusterPolicy attachment", () => {
  const cluster = find("aws:eks/cluster:Cluster");
  assert.ok(
    cluster.dependsOn.includes("aws:iam/rolePolicyAttachment:RolePolicyAttachment::cluster-control-plane"),
    cluster.dependsOn.join(),
  );
});

test("the ALB controller and the cluster autoscaler wait for their IAM policies", () => {
  for (const addon of ["alb-controller", "cluster-autoscaler"]) {
    const release = find("kubernetes:helm.sh/v3:Release", `workloads-addons-${addon}`);
    assert.ok(
      release.dependsOn.includes(`aws:iam/rolePolicy:RolePolicy::workloads-addons-${addon}-inline`),
      `${addon}: ${release.dependsOn.join()}`,
    );
  }
});

test("the Ingress depends on the ALB controller and the VPC's public edge, so destroy removes it (and its ALB) first", () => {
  const ingress = find("kubernetes:networking.k8s.io/v1:Ingress");
  assert.ok(
    ingress.dependsOn.includes("kubernetes:helm.sh/v3:Release::workloads-addons-alb-controller"),
    ingress.dependsOn.join(),
  );
  assert.ok(ingress.dependsOn.includes("aws:ec2/internetGateway:InternetGateway::network-igw"), ingress.dependsOn.join());
  for (const i of [0, 1, 2])
    assert.ok(ingress.dependsOn.includes(`aws:ec2/subnet:Subnet::network-public-${i}`), `public subnet ${i}`);
});

test("zones: by zone ID, never one EKS refuses, only those offering every instance type", () => {
  const zones = mockZones("us-east-1");
  const facts = (lacking: Record<string, string[]>) => {
    const pairs = zones.flatMap((z) =>
      ["c6i.2xlarge", "g5.4xlarge"].filter((t) => !lacking[z.zoneId]?.includes(t)).map((t) => [t, z.zoneId]),
    );
    return {
      names: zones.map((z) => z.name),
      zoneIds: zones.map((z) => z.zoneId),
      offerings: { instanceTypes: pairs.map((p) => p[0]), locations: pairs.map((p) => p[1]) },
    };
  };
  const picked = chooseZones(facts({ "use1-az6": ["g5.4xlarge"] }), ["c6i.2xlarge", "g5.4xlarge"], 3, "us-east-1");
  assert.deepEqual(
    picked.map((z) => z.zoneId),
    ["use1-az1", "use1-az2", "use1-az4"],
  );
  assert.deepEqual(
    picked.map((z) => z.name),
    ["us-east-1c", "us-east-1d", "us-east-1a"],
  );
  assert.ok(EKS_UNSUPPORTED_ZONE_IDS.includes("use1-az3"));
  assert.throws(
    () =>
      chooseZones(
        facts({ "use1-az1": ["g5.4xlarge"], "use1-az2": ["g5.4xlarge"], "use1-az6": ["g5.4xlarge"] }),
        ["c6i.2xlarge", "g5.4xlarge"],
        3,
        "us-east-1",
      ),
    /needs 3 availability zones offering c6i.2xlarge, g5.4xlarge, found 2 \(use1-az1: g5.4xlarge; .*overrides\.nodeGroups/,
  );
});

test("prod's subnets sit in zones EKS accepts that offer the GPU type (the mocks' us-east-1 lacks g5 in use1-az6)", () => {
  const subnets = inputsOf("aws:ec2/subnet:Subnet");
  assert.equal(subnets.length, 6);
  const zoneIds = [...new Set(subnets.map((s) => s.availabilityZoneId))].sort();
  assert.deepEqual(zoneIds, ["use1-az1", "use1-az2", "use1-az4"]);
  for (const s of subnets) assert.equal(s.availabilityZone, undefined, "subnets are placed by zone ID");
});

test("every managed EKS add-on overwrites the self-managed copy on create (and on update)", () => {
  const addons = inputsOf("aws:eks/addon:Addon");
  assert.deepEqual(addons.map((a) => a.addonName).sort(), ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]);
  for (const a of addons) {
    assert.equal(a.resolveConflictsOnCreate, "OVERWRITE", a.addonName);
    assert.equal(a.resolveConflictsOnUpdate, "OVERWRITE", a.addonName);
  }
});

test("Ollama's StatefulSet is governed by a headless Service; the API keeps a ClusterIP one", () => {
  const [ollama] = inputsOf("kubernetes:apps/v1:StatefulSet").filter((s) => s.metadata.name === "ollama");
  const services = inputsOf("kubernetes:core/v1:Service");
  const governing = services.find((s) => s.metadata.name === ollama.spec.serviceName);
  assert.equal(governing?.spec.clusterIP, "None");
  assert.deepEqual(governing?.spec.selector, ollama.spec.selector.matchLabels);
  assert.equal(services.find((s) => s.metadata.name === "ollama")?.spec.type, "ClusterIP");
});
