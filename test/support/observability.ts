// Checks shared by the dev and prod observability tests: what the monitoring stack puts into a real plan.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import type { Plan } from "../../infra/plan/types.ts";
import { inputs, irsaSubject, ofType, one } from "./plan.ts";

const files = (dir: string) => readdirSync(new URL(`../../monitoring/${dir}`, import.meta.url));

export function assertMonitoringDeployed(
  plan: Plan,
  expect: { retentionDays: number; storageGb: number; loki: "filesystem" | "s3"; gpu: boolean },
) {
  const releases = ofType(plan, "kubernetes:helm.sh/v3:Release").filter((r) => r.component === "observability");
  const charts = releases.map((r) => inputs(r).chart).sort();
  const expected = [
    "alloy",
    "kube-prometheus-stack",
    "loki",
    "prometheus-postgres-exporter",
    "prometheus-redis-exporter",
    ...(expect.gpu ? ["dcgm-exporter"] : []),
  ];
  assert.deepEqual(charts, expected.sort());
  for (const r of releases) assert.match(inputs(r).version, /^\d+\.\d+\.\d+$/, `${r.name} chart version is not pinned`);

  const spec = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-kube-prometheus-stack")).values.prometheus
    .prometheusSpec;
  assert.equal(spec.retention, `${expect.retentionDays}d`);
  assert.equal(spec.storageSpec.volumeClaimTemplate.spec.resources.requests.storage, `${expect.storageGb}Gi`);

  // Grafana reads CloudWatch (the Edge dashboard) through an IRSA role of its own that can only read.
  const grafana = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-kube-prometheus-stack")).values.grafana;
  const roleName = irsaRoleOf(plan, grafana.serviceAccount);
  const policy = JSON.parse(inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", `${roleName}-inline`)).policy);
  const actions: string[] = policy.Statement.flatMap((st: { Action: string | string[] }) => [st.Action].flat());
  // Its queries, and the logs half of the data source's health check (grafana pkg/tsdb/cloudwatch checkHealthLogs).
  for (const needed of ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics", "logs:DescribeLogGroups"]) {
    assert.ok(actions.includes(needed), `${needed} in ${actions.join(", ")}`);
  }
  for (const action of actions) assert.match(action, /^(cloudwatch|ec2|tag|logs):(Get|List|Describe)/, "read-only");

  const loki = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-loki")).values;
  assert.equal(loki.loki.storage.type, expect.loki);
  // In S3 mode Loki's account carries its role; the chart names the account by serviceAccount.name, else by the chart.
  if (expect.loki === "s3") irsaRoleOf(plan, loki.serviceAccount);
  else assert.equal(loki.serviceAccount.annotations, undefined);

  // One PrometheusRule per rule file, plus the stack's own cost estimate (monitoring/cost/<stack>.json).
  const rules = ofType(plan, "kubernetes:monitoring.coreos.com/v1:PrometheusRule").map((r) => inputs(r).metadata.name);
  assert.equal(rules.length, files("prometheus/rules").length + 1);
  assert.ok(rules.includes("agent-stack-cost-estimate"), rules.join(", "));
  const dashboards = ofType(plan, "kubernetes:core/v1:ConfigMap").filter(
    (c) => inputs(c).metadata?.labels?.grafana_dashboard === "1",
  );
  assert.equal(dashboards.length, files("grafana/dashboards").length);
  const monitors = ofType(plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    .map((m) => inputs(m).metadata.name)
    .sort();
  assert.deepEqual(monitors, ["agent-api", "qdrant"]);
}

/**
 * The IRSA role a chart's service account values (`name`, `annotations`) give it, once its trust names exactly that
 * account in the monitoring namespace: a name the chart renders otherwise leaves the pod without AWS credentials.
 */
function irsaRoleOf(plan: Plan, serviceAccount: { name?: string; annotations?: Record<string, string> }): string {
  assert.ok(serviceAccount.name, "the account is named in the values, not left to the chart");
  const roleName = serviceAccount.annotations!["eks.amazonaws.com/role-arn"]!.split("/").pop()!;
  assert.equal(irsaSubject(one(plan, "aws:iam/role:Role", roleName)), `system:serviceaccount:monitoring:${serviceAccount.name}`);
  return roleName;
}
