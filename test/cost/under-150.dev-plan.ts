// Issue 15: dev at most $150/month with schedules while running the whole stack. Dev has no ALB (tier
// network.publicIngress false): the API is reached with kubectl port-forward, so the plan has no Ingress.
import assert from "node:assert/strict";
import { test } from "node:test";
import { estimateCost } from "../../infra/cost/estimate.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { ofType } from "../support/plan.ts";

const ISSUE_15_DEV_TARGET_USD = 150;
const plan = await stackPlan("dev");
const estimate = estimateCost(plan);

test("dev declares no Ingress and no load balancer: nothing creates an ALB", () => {
  assert.deepEqual(
    ofType(plan, "kubernetes:networking.k8s.io/v1:Ingress").map((r) => r.name),
    [],
  );
  assert.deepEqual(
    ofType(plan, "aws:lb/loadBalancer:LoadBalancer").map((r) => r.name),
    [],
  );
  const loadBalancerServices = ofType(plan, "kubernetes:core/v1:Service").filter(
    (r) => (r.inputs as any).spec?.type === "LoadBalancer",
  );
  assert.deepEqual(
    loadBalancerServices.map((r) => r.name),
    [],
  );
  assert.ok(!estimate.items.some((i) => /ALB|load balancer/i.test(i.detail ?? "")), "an item is still priced as a load balancer");
});

test(`dev costs at most $${ISSUE_15_DEV_TARGET_USD}/month with schedules, with the whole stack running`, () => {
  assert.ok(estimate.monthlyUsd <= ISSUE_15_DEV_TARGET_USD, `dev with schedules: $${estimate.monthlyUsd.toFixed(2)}`);
  assert.deepEqual(estimate.unpriced, []);
  // The whole stack: API, Ollama, Qdrant and monitoring are still deployed.
  const workloads = [...ofType(plan, "kubernetes:apps/v1:Deployment"), ...ofType(plan, "kubernetes:apps/v1:StatefulSet")].map(
    (r) => r.name,
  );
  for (const name of ["agent-api", "ollama", "qdrant"]) assert.ok(workloads.includes(name), `${name} is missing`);
  assert.ok(
    ofType(plan, "kubernetes:helm.sh/v3:Release").some((r) => r.name.includes("kube-prometheus-stack")),
    "monitoring is missing",
  );
});
