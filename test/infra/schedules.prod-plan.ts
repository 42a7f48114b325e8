// Off-peak scale-down of the prod stack (tier medium, guide 000: 00:00-06:00, API and Ollama down) under mocks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { KUBERNETES_VERSION } from "../../infra/config.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { TIERS } from "../../infra/tiers.ts";
import { localTime, parseCron } from "../../infra/time.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const tier = TIERS.medium;
const ASG_SCHEDULE = "aws:autoscaling/schedule:Schedule";

/** The scheduled actions on a node group's ASG: those whose autoscalingGroupName the plan records as coming from it. */
function asgActions(group: string) {
  const nodeGroup = one(plan, "aws:eks/nodeGroup:NodeGroup", `cluster-${group}`);
  const actions = ofType(plan, ASG_SCHEDULE).filter((a) => a.propertyDependencies?.autoscalingGroupName?.includes(nodeGroup.urn));
  for (const a of actions) assert.ok(a.dependsOn?.includes(nodeGroup.urn), `${a.name} depends on ${nodeGroup.urn}`);
  return Object.fromEntries(actions.map((a) => [inputs(a).scheduledActionName, inputs(a)]));
}

test("the plan records each resource's URN, parent URN and dependencies", () => {
  const down = one(plan, ASG_SCHEDULE, "schedules-general-offpeak-down");
  assert.equal(
    down.urn,
    "urn:pulumi:prod::agent-stack::agent-stack:platform:OffPeakSchedules$aws:autoscaling/schedule:Schedule::schedules-general-offpeak-down",
  );
  assert.equal(down.parent, "urn:pulumi:prod::agent-stack::agent-stack:platform:OffPeakSchedules::schedules");
  assert.ok(plan.resources.some((r) => r.urn === down.parent && !r.custom));
  const urns = new Set(plan.resources.map((r) => r.urn));
  const dangling = plan.resources.flatMap((r) => (r.dependsOn ?? []).filter((u) => !urns.has(u)).map((u) => `${r.name} -> ${u}`));
  assert.deepEqual(dangling, []);
});

test("prod (us-east-1, no timeZone set) runs its schedules in America/New_York: off-peak is night in New York", () => {
  assert.equal(plan.config?.timeZone, "America/New_York");
  const { "offpeak-down": down, "offpeak-up": up } = asgActions("general");
  const week = [new Date(Date.UTC(2024, 6, 1)), new Date(Date.UTC(2024, 6, 8))] as const; // a summer week (EDT)
  const downs = parseCron(down.recurrence, "unix", down.timeZone).firings(...week);
  const ups = parseCron(up.recurrence, "unix", up.timeZone).firings(...week);
  assert.equal(downs.length, 7);
  for (const t of downs) {
    assert.equal(localTime("America/New_York", t).hour, 0);
    assert.equal(t.getUTCHours(), 4, "midnight in New York is 04:00 UTC in summer, not 00:00 UTC (20:00 the evening before)");
  }
  for (const t of ups) {
    const { hour, minute } = localTime("America/New_York", t);
    assert.deepEqual([hour, minute], [5, 40], "ready for the peak at 06:00");
  }
  for (const cronJob of ofType(plan, "kubernetes:batch/v1:CronJob").filter((j) => j.name.startsWith("offpeak-"))) {
    assert.equal(inputs(cronJob).spec.timeZone, "America/New_York", cronJob.name);
  }
});

test("general nodes: at 00:00 the minimum goes to the off-peak size, at 00:20 the size too, at 05:40 both back", () => {
  const { "offpeak-down": down, "offpeak-settle": settle, "offpeak-up": up, ...rest } = asgActions("general");
  assert.deepEqual(rest, {});
  const off = tier.schedule.offPeakSizes.generalNodes;
  // Not the size at 00:00: the group would pick the node to terminate at random, whatever runs on it.
  assert.deepEqual(
    [down.recurrence, down.timeZone, down.minSize, down.desiredCapacity, down.maxSize],
    ["0 0 * * *", "America/New_York", off, -1, -1],
  );
  assert.deepEqual(
    [settle.recurrence, settle.timeZone, settle.minSize, settle.desiredCapacity, settle.maxSize],
    ["20 0 * * *", "America/New_York", -1, off, -1],
  );
  assert.deepEqual(
    [up.recurrence, up.timeZone, up.minSize, up.desiredCapacity, up.maxSize],
    // Not at 06:00: a GPU node boots and Ollama pulls its models before it serves, and peak starts at 06:00.
    ["40 5 * * *", "America/New_York", tier.nodeGroups.general.min, tier.nodeGroups.general.desired, -1],
  );
});

test("gpu nodes go 2 -> 1 off-peak: the cluster autoscaler removes the node Ollama's scaled-down pod left, the size follows at 00:20", () => {
  const { "offpeak-down": down, "offpeak-settle": settle, "offpeak-up": up } = asgActions("gpu");
  assert.equal(down, undefined, "their minimum (1) already allows it and is left alone");
  assert.deepEqual([settle.recurrence, settle.minSize, settle.desiredCapacity, settle.maxSize], ["20 0 * * *", -1, 1, -1]);
  assert.deepEqual(
    [up.recurrence, up.minSize, up.desiredCapacity, up.maxSize],
    ["40 5 * * *", -1, tier.nodeGroups.gpu!.desired, -1],
  );
});

test("Qdrant (vector) and monitoring nodes keep their size around the clock", () => {
  for (const zone of [0, 1, 2]) assert.deepEqual(asgActions(`vector-${zone}`), {}, `vector-${zone}`);
  assert.deepEqual(asgActions("monitoring"), {});
  assert.equal(ofType(plan, ASG_SCHEDULE).length, 5);
});

test("prod never stops its database", () => {
  assert.equal(ofType(plan, "aws:scheduler/schedule:Schedule").length, 0);
});

function cronJob(name: string) {
  const spec = inputs(one(plan, "kubernetes:batch/v1:CronJob", name)).spec;
  const pod = spec.jobTemplate.spec.template.spec;
  const argsOf = (container: string) => pod.containers.find((c: any) => c.name === container).args as string[];
  return { spec, pod, argsOf };
}

test("CronJobs lower the API HPA minimum and Ollama's replicas at 00:00 and restore them at 05:40, with the nodes", () => {
  const down = cronJob("offpeak-scale-down");
  const up = cronJob("offpeak-scale-up");
  assert.deepEqual([down.spec.schedule, down.spec.timeZone], ["0 0 * * *", "America/New_York"]);
  assert.deepEqual([up.spec.schedule, up.spec.timeZone], ["40 5 * * *", "America/New_York"]);
  const patchOf = (args: string[]) => JSON.parse(args.find((a) => a.startsWith("--patch="))!.slice("--patch=".length));
  assert.deepEqual(down.argsOf("api-hpa").slice(0, 3), ["patch", "horizontalpodautoscaler", "agent-api"]);
  assert.deepEqual(patchOf(down.argsOf("api-hpa")), { spec: { minReplicas: tier.schedule.offPeakSizes.apiMinReplicas } });
  assert.deepEqual(patchOf(up.argsOf("api-hpa")), { spec: { minReplicas: tier.api.minReplicas } });
  assert.deepEqual(down.argsOf("ollama").slice(0, 4), ["patch", "statefulsets", "ollama", "--subresource=scale"]);
  assert.deepEqual(patchOf(down.argsOf("ollama")), { spec: { replicas: tier.schedule.offPeakSizes.ollamaReplicas } });
  assert.deepEqual(patchOf(up.argsOf("ollama")), { spec: { replicas: tier.ollama.replicas } });
});

test("the scaler runs the cluster's kubectl version as its own ServiceAccount, non-root, on general nodes", () => {
  for (const name of ["offpeak-scale-down", "offpeak-scale-up"]) {
    const { pod } = cronJob(name);
    assert.equal(pod.serviceAccountName, "offpeak-scaler");
    assert.equal(pod.nodeSelector.role, "general");
    assert.equal(pod.securityContext.runAsNonRoot, true);
    for (const c of pod.containers) {
      assert.equal(c.image, `registry.k8s.io/kubectl:v${KUBERNETES_VERSION}.0`); // same minor as the cluster
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    }
  }
});

test("its Role may only get and patch that one HPA and Ollama's scale subresource", () => {
  const role = inputs(one(plan, "kubernetes:rbac.authorization.k8s.io/v1:Role", "offpeak-scaler"));
  assert.deepEqual(role.rules, [
    {
      apiGroups: ["autoscaling"],
      resources: ["horizontalpodautoscalers"],
      resourceNames: ["agent-api"],
      verbs: ["get", "patch"],
    },
    { apiGroups: ["apps"], resources: ["statefulsets/scale"], resourceNames: ["ollama"], verbs: ["get", "patch"] },
  ]);
  const binding = inputs(one(plan, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "offpeak-scaler"));
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "offpeak-scaler", namespace: "agent" }]);
  assert.equal(binding.roleRef.name, "offpeak-scaler");
});

test("pulumi up leaves the fields the CronJobs own alone", () => {
  const hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "agent-api");
  assert.ok(hpa.options.ignoreChanges?.includes("spec.minReplicas"));
  const ollama = one(plan, "kubernetes:apps/v1:StatefulSet", "ollama");
  assert.ok(ollama.options.ignoreChanges?.includes("spec.replicas"));
});

test("the schedule stack output says it in words", () => {
  assert.deepEqual(plan.outputs.schedule, [
    "off-peak every day 00:00-06:00 (America/New_York): general nodes 3 -> 2, gpu nodes 2 -> 1, API min replicas 3 -> 2, Ollama replicas 2 -> 1; peak sizes again from 05:40, serving by 06:00",
  ]);
});
