import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { catalogueEntry, METRICS } from "../../monitoring/metrics-catalogue.ts";
import { allRules, dashboardExprs, dashboards, grafanaQueryToPromQL, metricNames, substituteGrafanaVariables } from "./lib.ts";

const recorded = new Set(allRules().flatMap((r) => (r.rule.record ? [r.rule.record] : [])));

const uses = [
  ...allRules().map(({ file, rule }) => ({ where: `${file} ${rule.alert ?? rule.record}`, expr: rule.expr })),
  ...dashboards().flatMap(({ file, dashboard }) =>
    dashboardExprs(dashboard).map(({ where, expr }) => ({
      where: `${file} ${where}`,
      expr: substituteGrafanaVariables(grafanaQueryToPromQL(expr)),
    })),
  ),
].flatMap(({ where, expr }) => metricNames(expr).map((name) => ({ where, name })));

describe("metric catalogue", () => {
  it("lists (or our rules record) every metric a rule or dashboard queries", () => {
    const unknown = uses.filter(({ name }) => !recorded.has(name) && !catalogueEntry(name));
    assert.deepEqual(unknown, []);
  });

  it("lists no metric that nothing queries", () => {
    const used = new Set(uses.map(({ name }) => catalogueEntry(name)?.family).filter(Boolean));
    assert.deepEqual(
      Object.keys(METRICS).filter((name) => !used.has(name)),
      [],
    );
  });

  it("takes rate() and increase() of counters only (a histogram's series are counters), as the catalogue types them", () => {
    // A gauge's rate reads each fall as a counter reset: a dip in a restart count doubled its increase.
    const exprs = [
      ...allRules().map(({ file, rule }) => ({ where: `${file} ${rule.alert ?? rule.record}`, expr: rule.expr })),
      ...dashboards().flatMap(({ file, dashboard }) =>
        dashboardExprs(dashboard).map(({ where, expr }) => ({ where: `${file} ${where}`, expr })),
      ),
    ];
    const rated = exprs.flatMap(({ where, expr }) =>
      [...expr.matchAll(/\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][\w:]*)/g)].map((m) => ({ where, name: m[1]! })),
    );
    assert.ok(rated.length > 30, `only ${rated.length} rates found`);
    const notCounters = rated.filter(({ name }) => {
      const found = catalogueEntry(name);
      return found?.entry.type !== "counter" && !(found?.entry.type === "histogram" && name !== found.family);
    });
    assert.deepEqual(notCounters, []);
  });

  it("resolves histogram series only for histograms", () => {
    assert.equal(catalogueEntry("agent_token_usage_sum")?.family, "agent_token_usage");
    assert.equal(catalogueEntry("http_requests_total_count"), undefined);
    assert.equal(catalogueEntry("not_a_metric"), undefined);
  });

  it("covers the app contract's metric names (DESIGN.md App contract), and only the app's own metrics besides", () => {
    const app = Object.entries(METRICS)
      .filter(([, e]) => e.source === "app")
      .map(([name]) => name)
      .sort();
    const contract = [
      "active_queries",
      "agent_errors_total",
      "agent_execution_duration_seconds",
      "agent_queries_total",
      "agent_token_usage",
      "cache_requests_total",
      "http_request_duration_seconds",
      "http_requests_total",
      "tool_calls_total",
      "tool_duration_seconds",
    ];
    // Not in the contract: what our own rules and panels watch (ApiCacheErrors, TurnRetentionStalled, the
    // DatabasePool alerts and the System Overview's database panels).
    const operational = [
      "db_pool_active",
      "db_pool_size",
      "db_pool_waiting",
      "db_statement_duration_seconds",
      "redis_operations_total",
      "turn_retention_last_success_timestamp_seconds",
    ];
    assert.deepEqual(app, [...contract, ...operational].sort());
  });
});
