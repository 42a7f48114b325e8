// Labels Prometheus sets on every ServiceMonitor target shadow an exporter's own label of the same name: with
// honor_labels false, a ServiceMonitor endpoint's default, the scraped one is renamed exported_<name> and the target's
// value takes its place (Prometheus v3.9.1 scrape/scrape.go mutateSampleLabels). A rule, panel or legend that selects
// or groups an exporter's metric by such a label then sees the target's value, and matches nothing.
import assert from "node:assert/strict";
import { basename } from "node:path";
import { describe, it } from "node:test";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";
import { QDRANT_SCRAPE } from "../../infra/workloads/monitoring.ts";
import { catalogueEntry, type MetricSource } from "../../monitoring/metrics-catalogue.ts";
import {
  allRules,
  dashboardExprs,
  dashboards,
  grafanaQueryToPromQL,
  metricNames,
  metricSelectors,
  substituteGrafanaVariables,
} from "./lib.ts";

/**
 * What a ServiceMonitor target carries: prometheus-operator v0.88.1 pkg/prometheus/promcfg.go
 * generateServiceMonitorConfig (node, pod, namespace, service, container, job, endpoint) and Prometheus' instance.
 */
const TARGET_LABELS = new Set(["job", "instance", "namespace", "service", "pod", "container", "endpoint", "node"]);

/** Exporters scraped without honor_labels, with the labels their metrics carry at the pinned tag. */
const SCRAPED: Partial<Record<MetricSource, { labels: string[]; honorLabels: boolean }>> = {
  // qdrant v1.15.5 src/common/metrics.rs: app_info (name, version), cluster_commit (peer_id), collection hardware (id),
  // rest_responses_* (method, endpoint, status), grpc_responses_* (endpoint).
  qdrant: {
    labels: ["name", "version", "peer_id", "id", "method", "endpoint", "status"],
    honorLabels: QDRANT_SCRAPE.honorLabels,
  },
  // dcgm-exporter 4.5.3-4.8.2 internal/pkg/rendermetrics/render_metrics.go, and the pod mapping's pod, namespace and
  // container (DCGM_EXPORTER_KUBERNETES, chart 4.8.2 daemonset.yaml); chart values serviceMonitor.honorLabels: false.
  "dcgm-exporter": {
    labels: [
      "gpu",
      "UUID",
      "pci_bus_id",
      "device",
      "modelName",
      "Hostname",
      "DCGM_FI_DRIVER_VERSION",
      "pod",
      "namespace",
      "container",
    ],
    honorLabels: false,
  },
};

const sourceOf = (name: string) => catalogueEntry(name)?.entry.source;

/** Each label an expression selects on, groups by or matches on, with the metrics it applies to. */
function labelUses(expr: string): Array<{ label: string; metrics: string[] }> {
  const selectors = metricSelectors(expr);
  const within = (node: SyntaxNode) => selectors.filter((s) => s.from >= node.from && s.to <= node.to).map((s) => s.name);
  const uses: Array<{ label: string; metrics: string[] }> = [];
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.name !== "LabelName") return;
      const label = expr.slice(ref.from, ref.to);
      // A matcher applies to its selector; by/without, on/ignoring and group_x to the expression they modify.
      let scope: SyntaxNode | null = ref.node.parent;
      while (scope && !["VectorSelector", "AggregateExpr", "BinaryExpr"].includes(scope.name)) scope = scope.parent;
      if (scope) uses.push({ label, metrics: within(scope) });
    },
  });
  return uses;
}

const expressions = [
  ...allRules().map(({ file, rule }) => ({
    where: `${basename(file)} ${rule.alert ?? rule.record}`,
    expr: rule.expr,
    legend: undefined,
  })),
  ...dashboards().flatMap(({ file, dashboard }) =>
    dashboardExprs(dashboard).map(({ where, expr, legend }) => ({
      where: `${file} ${where}`,
      expr: substituteGrafanaVariables(grafanaQueryToPromQL(expr)),
      legend,
    })),
  ),
];

describe("labels of scraped exporters", () => {
  it("are not ones the ServiceMonitor target overrides (they would be exported_<label>)", () => {
    const shadowed: string[] = [];
    for (const { where, expr, legend } of expressions) {
      const legendLabels = [...(legend ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
      const all = [...labelUses(expr), ...legendLabels.map((label) => ({ label, metrics: metricNames(expr) }))];
      for (const { label, metrics } of all) {
        if (!TARGET_LABELS.has(label)) continue;
        for (const metric of metrics) {
          const scraped = SCRAPED[sourceOf(metric)!];
          if (scraped && !scraped.honorLabels && scraped.labels.includes(label)) shadowed.push(`${where}: ${label} of ${metric}`);
        }
      }
    }
    assert.deepEqual(shadowed, []);
  });

  it("sees the selections it checks (Qdrant's endpoint in QdrantHighLatency)", () => {
    const rule = allRules().find(({ rule }) => rule.alert === "QdrantHighLatency")!.rule;
    assert.ok(
      labelUses(rule.expr).some((u) => u.label === "endpoint" && u.metrics.includes("rest_responses_duration_seconds_sum")),
    );
  });
});
