// A view of a plan's Kubernetes workloads for the workload tests: pods, containers, env, the main objects.
import type { Plan, PlannedResource } from "../../infra/plan/types.ts";
import { containersOf, podSpecOf, WORKLOAD_TYPES, type Container } from "../../policy/lib/k8s.ts";
import { inputs, one } from "./plan.ts";

export function workloadView(plan: Plan) {
  const workloads = plan.resources.filter((r) => r.component === "workloads");
  const pod = (r: PlannedResource) => podSpecOf(r.type, inputs(r))!;
  const container = (r: PlannedResource, name: string) => containersOf(pod(r)).find((c) => c.name === name)!;
  const deployment = one(plan, "kubernetes:apps/v1:Deployment", "agent-api");
  return {
    workloads,
    k8sWorkloads: workloads.filter((r) => WORKLOAD_TYPES.includes(r.type)),
    pod,
    container,
    envOf: (c: Container) => Object.fromEntries((c.env as { name: string }[]).map((e) => [e.name, e as Record<string, any>])),
    deployment,
    api: container(deployment, "api"),
    ollama: one(plan, "kubernetes:apps/v1:StatefulSet", "ollama"),
    qdrant: one(plan, "kubernetes:apps/v1:StatefulSet", "qdrant"),
  };
}
