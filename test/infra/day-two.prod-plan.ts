// Issue 13 on the prod plan (tier medium): stateful pods that come back in their zone, Qdrant replicated over
// zones, no scrape of what EKS hides, a notification path, cost tags, a bounded snapshot scratch volume, and
// stateful pods with requests == limits that fit their nodes and GPU.
import assert from "node:assert/strict";
import { test } from "node:test";
import YAML from "yaml";
import { stackPlan } from "../support/stack-plan.ts";
import type { PlannedResource } from "../../infra/plan/types.ts";
import { OFF_PEAK_WARM_UP_MINUTES } from "../../infra/tier-schema.ts";
import { TIERS } from "../../infra/tiers.ts";
import { RELEASE_HISTORY } from "../../infra/workloads/helm.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const stackFile = YAML.parse(
  (await import("node:fs")).readFileSync(new URL("../../Pulumi.prod.yaml", import.meta.url), "utf8"),
).config;
const nodeGroups = ofType(plan, "aws:eks/nodeGroup:NodeGroup");
const subnetZone = new Map(
  ofType(plan, "aws:ec2/subnet:Subnet").map((s) => [`${s.name}-id`, inputs(s).availabilityZoneId as string]),
);
const zonesOf = (g: PlannedResource) => new Set((inputs(g).subnetIds as string[]).map((id) => subnetZone.get(id)!));
const groupsOf = (role: string) => nodeGroups.filter((g) => inputs(g).labels.role === role);
const kps = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-kube-prometheus-stack")).values;
const statefulSet = (name: string) =>
  inputs(ofType(plan, "kubernetes:apps/v1:StatefulSet").find((s) => inputs(s).metadata.name === name)!);

test("every pod with an EBS volume claim is pinned to node groups that each sit in one zone", () => {
  // Kubernetes StatefulSets with claims, and the chart-made ones (Prometheus, Alertmanager, Loki) by their node selector.
  const pinned: [string, string | undefined][] = ofType(plan, "kubernetes:apps/v1:StatefulSet")
    .filter((s) => (inputs(s).spec.volumeClaimTemplates ?? []).length > 0)
    .map((s) => [inputs(s).metadata.name, inputs(s).spec.template.spec.nodeSelector?.role]);
  const loki = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-loki")).values.singleBinary;
  pinned.push(
    ["prometheus", kps.prometheus.prometheusSpec.nodeSelector?.role],
    ["alertmanager", kps.alertmanager.alertmanagerSpec.nodeSelector?.role],
    ["loki", loki.nodeSelector?.role],
  );
  assert.ok(pinned.some(([name]) => name === "qdrant"));
  for (const [name, role] of pinned) {
    assert.ok(role, `${name} has no node selector: it could land on any group`);
    const groups = groupsOf(role);
    assert.ok(groups.length > 0, `${name}: no node group with role ${role}`);
    for (const g of groups)
      assert.equal(zonesOf(g).size, 1, `${name} runs on ${g.name}, which spans ${[...zonesOf(g)].join(", ")}`);
  }
});

test("Qdrant's three peers get one vector group per zone; Ollama keeps no volume and spreads over every zone", () => {
  const vector = groupsOf("vector");
  assert.equal(vector.length, 3);
  assert.equal(new Set(vector.flatMap((g) => [...zonesOf(g)])).size, 3);
  assert.equal(
    vector.reduce((n, g) => n + inputs(g).scalingConfig.desiredSize, 0),
    TIERS.medium.nodeGroups.vector!.desired,
  );
  const ollama = statefulSet("ollama");
  assert.equal(ollama.spec.volumeClaimTemplates, undefined);
  assert.ok(
    ollama.spec.template.spec.volumes.some((v: any) => v.name === "models" && v.emptyDir),
    "models on an emptyDir",
  );
  assert.ok(zonesOf(groupsOf("gpu")[0]).size >= 2, "the gpu group spans zones");
  assert.deepEqual(
    ollama.spec.template.spec.topologySpreadConstraints.map((c: any) => c.topologyKey),
    ["topology.kubernetes.io/zone"],
  );
});

test("GPU nodes put the kubelet's directories on the instance-store NVMe (RAID0), so emptyDir is local NVMe", () => {
  const template = inputs(one(plan, "aws:ec2/launchTemplate:LaunchTemplate", "cluster-gpu"));
  const userData = Buffer.from(template.userData, "base64").toString();
  assert.match(userData, /Content-Type: application\/node\.eks\.aws/);
  assert.match(userData, /localStorage:\s+strategy: RAID0/);
});

test("per-zone groups of a role share one launch template (same node labels for balance-similar-node-groups)", () => {
  const ids = new Set(groupsOf("vector").map((g) => inputs(g).launchTemplate.id));
  assert.equal(ids.size, 1);
  const autoscaler = inputs(ofType(plan, "kubernetes:helm.sh/v3:Release").find((r) => inputs(r).chart === "cluster-autoscaler")!);
  assert.equal(autoscaler.values.extraArgs["balance-similar-node-groups"], true);
});

test("a role's per-zone groups update one zone at a time: their drains never wait on Qdrant's one budget together", () => {
  // A launch template or version change updates every vector group. EKS drains a node through the eviction API and
  // fails the update with PodEvictionFailure when its pods have not left within 15 minutes (EKS User Guide, "Understand
  // each phase of node updates", upgrade phase). Qdrant's budget lets one peer go at a time, and a 500 GiB peer loads
  // for more than 5 minutes (qdrant.ts startupProbe): updated at once, the third zone waited for two reloads.
  const vector = groupsOf("vector").sort((a, b) => a.name.localeCompare(b.name));
  assert.deepEqual(
    vector.map((g) => g.name),
    ["cluster-vector-0", "cluster-vector-1", "cluster-vector-2"],
  );
  vector.forEach((g, i) => {
    const others = vector.filter((o) => o !== g && g.dependsOn?.includes(o.urn)).map((o) => o.name);
    assert.deepEqual(others, i === 0 ? [] : [vector[i - 1].name], `${g.name} waits for the zone before it only`);
  });
});

test("a node group is replaced new before old: it is named by a prefix, so the new group's name is free", () => {
  // Instance types, capacity type, AMI type and subnets force a new group (a tier change, an override); with a fixed
  // name, creating it before the old one is deleted fails.
  const prefixes = nodeGroups.map((g) => {
    const { nodeGroupName, nodeGroupNamePrefix } = inputs(g);
    assert.equal(nodeGroupName, undefined, `${g.name} has a fixed name`);
    assert.match(nodeGroupNamePrefix, /^[a-z][a-z0-9-]*-$/, g.name);
    assert.ok(nodeGroupNamePrefix.length <= 63 - 26, `${g.name}: ${nodeGroupNamePrefix} leaves no room for the suffix`);
    return nodeGroupNamePrefix;
  });
  assert.equal(new Set(prefixes).size, nodeGroups.length);
  assert.ok(prefixes.includes("vector-0-") && prefixes.includes("gpu-"), prefixes.join(", "));
});

test("every Helm release keeps a bounded history, as the helm CLI does (pulumi-kubernetes keeps every revision)", () => {
  const releases = ofType(plan, "kubernetes:helm.sh/v3:Release");
  assert.ok(releases.length >= 10);
  for (const r of releases) assert.equal(inputs(r).maxHistory, RELEASE_HISTORY, r.name);
  assert.ok(RELEASE_HISTORY > 0, "0 means no limit");
});

test("Qdrant: replication factor >= 2 reaches the API, peers spread over zones, vector nodes tainted and tolerated", () => {
  const api = inputs(ofType(plan, "kubernetes:apps/v1:Deployment").find((d) => inputs(d).metadata.name === "agent-api")!);
  const env = Object.fromEntries(api.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
  assert.ok(Number(env.QDRANT_REPLICATION_FACTOR) >= 2, `QDRANT_REPLICATION_FACTOR=${env.QDRANT_REPLICATION_FACTOR}`);
  assert.ok(
    Number(env.QDRANT_WRITE_CONSISTENCY) >= 1 && Number(env.QDRANT_WRITE_CONSISTENCY) <= Number(env.QDRANT_REPLICATION_FACTOR),
  );
  const pod = statefulSet("qdrant").spec.template.spec;
  assert.deepEqual(
    pod.topologySpreadConstraints.map((c: any) => [c.topologyKey, c.whenUnsatisfiable]),
    [["topology.kubernetes.io/zone", "DoNotSchedule"]],
  );
  for (const g of groupsOf("vector"))
    assert.deepEqual(inputs(g).taints, [{ key: "dedicated", value: "vector", effect: "NO_SCHEDULE" }]);
  assert.ok(pod.tolerations.some((t: any) => t.key === "dedicated" && t.value === "vector" && t.effect === "NoSchedule"));
});

test("Qdrant and Ollama request exactly their limits", () => {
  for (const name of ["qdrant", "ollama"]) {
    const r = statefulSet(name).spec.template.spec.containers[0].resources;
    assert.equal(r.requests.memory, r.limits.memory, name);
  }
});

test("kube-prometheus-stack scrapes nothing EKS hides, and creates none of their rules", () => {
  for (const c of ["kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"]) assert.equal(kps[c].enabled, false, c);
  for (const r of ["kubeControllerManager", "kubeSchedulerAlerting", "kubeSchedulerRecording", "etcd", "kubeProxy"]) {
    assert.equal(kps.defaultRules.rules[r], false, r);
  }
});

test("the chart's PodDisruptionBudget alert waits out the off-peak warm-up, in which Ollama's new pods pull their models", () => {
  const minutes = (duration: string) => Number(/^(\d+)m$/.exec(duration)![1]);
  // The template's default is 15m (81.4.3 kubernetes-apps.yaml): under the 20 minutes the warm-up takes.
  assert.ok(minutes(kps.customRules.KubePdbNotEnoughHealthyPods.for) > OFF_PEAK_WARM_UP_MINUTES);
  assert.ok(minutes(kps.customRules.KubeAggregatedAPIDown.for) >= 10, "past Prometheus' first, empty 10m window");
});

test("alerts and the budget go to the stack's SNS topic, which mails the stack file's address", () => {
  const topic = one(plan, "aws:sns/topic:Topic");
  const topicArn = `arn:aws:mock:us-east-1:123456789012:Topic/${topic.name}`; // the mocks' ARN shape
  const sub = inputs(one(plan, "aws:sns/topicSubscription:TopicSubscription"));
  assert.equal(sub.protocol, "email");
  assert.equal(sub.endpoint, stackFile["agent-stack:notifyEmail"]);
  const policy = JSON.parse(inputs(one(plan, "aws:sns/topicPolicy:TopicPolicy")).policy);
  assert.ok(policy.Statement.some((s: any) => s.Principal.Service === "budgets.amazonaws.com" && s.Action === "SNS:Publish"));

  const budget = inputs(one(plan, "aws:budgets/budget:Budget"));
  assert.ok(budget.notifications.length >= 2);
  for (const n of budget.notifications) assert.deepEqual(n.subscriberSnsTopicArns, [topicArn]);

  const receivers = kps.alertmanager.config.receivers;
  for (const name of ["pager", "chat"]) {
    const sns = receivers.find((r: any) => r.name === name).sns_configs;
    assert.deepEqual(
      sns.map((c: any) => [c.topic_arn, c.sigv4.region]),
      [[topicArn, "us-east-1"]],
      name,
    );
  }
  const sa = kps.alertmanager.serviceAccount;
  const roleName = ofType(plan, "aws:iam/role:Role").find((r) =>
    inputs(r).assumeRolePolicy.includes(`system:serviceaccount:monitoring:${sa.name}`),
  )!.name;
  assert.equal(sa.annotations["eks.amazonaws.com/role-arn"], `arn:aws:mock:us-east-1:123456789012:Role/${roleName}`);
  const rolePolicy = JSON.parse(inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", `${roleName}-inline`)).policy);
  assert.deepEqual(rolePolicy.Statement, [{ Effect: "Allow", Action: "sns:Publish", Resource: topicArn }]);
});

test("the stack tag is an active cost allocation tag and reaches instances, volumes, ALBs and claimed volumes", () => {
  const tag = one(plan, "aws:costexplorer/costAllocationTag:CostAllocationTag");
  assert.deepEqual([inputs(tag).tagKey, inputs(tag).status], ["stack", "Active"]);
  assert.equal(tag.options.retainOnDelete, true, "destroying one stack must not deactivate the tag for the others");
  for (const t of ofType(plan, "aws:ec2/launchTemplate:LaunchTemplate")) {
    const specs = Object.fromEntries(inputs(t).tagSpecifications.map((s: any) => [s.resourceType, s.tags]));
    for (const type of ["instance", "volume"]) assert.equal(specs[type]?.stack, "prod", `${t.name} ${type}`);
  }
  const alb = inputs(
    ofType(plan, "kubernetes:helm.sh/v3:Release").find((r) => inputs(r).chart === "aws-load-balancer-controller")!,
  );
  assert.equal(alb.values.defaultTags.stack, "prod");
  const ebs = inputs(ofType(plan, "aws:eks/addon:Addon").find((a) => inputs(a).addonName === "aws-ebs-csi-driver")!);
  assert.equal(JSON.parse(ebs.configurationValues).controller.extraVolumeTags.stack, "prod");
});

test("the snapshot job's scratch space is a generic ephemeral volume of the data's size, deleted with it", () => {
  const job = inputs(one(plan, "kubernetes:batch/v1:CronJob", "qdrant-snapshot"));
  const scratch = job.spec.jobTemplate.spec.template.spec.volumes.find((v: any) => v.name === "scratch");
  assert.equal(scratch.emptyDir, undefined);
  const claim = scratch.ephemeral.volumeClaimTemplate.spec;
  assert.equal(claim.resources.requests.storage, `${TIERS.medium.qdrant.storageGb}Gi`);
  const sc = inputs(
    ofType(plan, "kubernetes:storage.k8s.io/v1:StorageClass").find((c) => inputs(c).metadata.name === claim.storageClassName)!,
  );
  assert.equal(sc.reclaimPolicy, "Delete");
});

test("the plan shows the memory and GPU budgets, and every resident model fits the A10G", () => {
  const lines = plan.outputs.capacity as string[];
  assert.ok(
    lines.some((l) => /^memory vector node r7g\.2xlarge: .* = \d+ MiB; requests qdrant 56Gi/.test(l)),
    lines.join("\n"),
  );
  const total = lines.find((l) => /^\s+total/.test(l))!;
  const [, used, of] = /total (\d+) MiB of (\d+) MiB/.exec(total)!.map(Number);
  assert.ok(used <= of, total);
  const ollama = Object.fromEntries(
    statefulSet("ollama").spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]),
  );
  assert.equal(ollama.OLLAMA_MAX_LOADED_MODELS, "4", "every model of the tier stays resident");
  assert.equal(ollama.OLLAMA_NUM_PARALLEL, "4");
  assert.equal(ollama.OLLAMA_KV_CACHE_TYPE, "q8_0");
  assert.equal(ollama.OLLAMA_FLASH_ATTENTION, "1");
});

test("a kubernetesVersion bump upgrades the add-ons and node groups too, not the control plane alone", () => {
  // Each add-on takes EKS's default version for the stack's Kubernetes version (the mocks answer getAddonVersion with
  // one per version), and each node group the cluster's version, read from the cluster: both change in place, after it.
  // (A plan at another version needs the cluster autoscaler's pin bumped with it: addons.ts refuses otherwise.)
  const cluster = one(plan, "aws:eks/cluster:Cluster");
  const version = inputs(cluster).version;
  const addons = ofType(plan, "aws:eks/addon:Addon");
  assert.equal(addons.length, 4);
  for (const a of addons) assert.equal(inputs(a).addonVersion, `v${version}.0-eksbuild.1`, a.name);
  for (const g of nodeGroups) {
    assert.equal(inputs(g).version, version, g.name);
    assert.deepEqual(g.propertyDependencies?.version, [cluster.urn], `${g.name} takes the cluster's version`);
  }
});
