// Issue 13 on the dev plan: dev's one node is replaced every morning; its group must come back in the zone of
// the volumes it left (Qdrant, Prometheus, Loki), and Ollama keeps no volume at all.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadStackFile, REPO_ROOT } from "../../infra/plan/stackfile.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("dev");

test("dev's only group (it hosts every volume) sits in one zone", () => {
  const groups = ofType(plan, "aws:eks/nodeGroup:NodeGroup");
  assert.deepEqual(
    groups.map((g) => inputs(g).labels.role),
    ["general"],
  );
  assert.deepEqual(inputs(groups[0]).subnetIds, ["network-private-0-id"]);
});

test("dev's StatefulSets: Qdrant keeps its claim on the general group, Ollama has none", () => {
  const sets = Object.fromEntries(
    ofType(plan, "kubernetes:apps/v1:StatefulSet").map((s) => [inputs(s).metadata.name, inputs(s).spec]),
  );
  assert.equal(sets.qdrant.template.spec.nodeSelector.role, "general");
  assert.equal(sets.qdrant.volumeClaimTemplates.length, 1);
  assert.equal(sets.ollama.volumeClaimTemplates, undefined);
});

test("single-node Qdrant replicates nothing (1 peer), and the app is told so", () => {
  const api = inputs(ofType(plan, "kubernetes:apps/v1:Deployment").find((d) => inputs(d).metadata.name === "agent-api")!);
  const env = Object.fromEntries(api.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
  assert.deepEqual([env.QDRANT_REPLICATION_FACTOR, env.QDRANT_WRITE_CONSISTENCY], ["1", "1"]);
});

test("dev's alerts and budget warnings reach the stack file's receiver: its SNS topic mails notifyEmail", () => {
  const sub = inputs(one(plan, "aws:sns/topicSubscription:TopicSubscription"));
  assert.deepEqual([sub.protocol, sub.endpoint], ["email", loadStackFile("dev", REPO_ROOT).config["agent-stack:notifyEmail"]]);
});
