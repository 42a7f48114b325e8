import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import YAML from "yaml";
import {
  allPanels,
  dashboardExprs,
  dashboards,
  grafanaQueryToPromQL,
  metricNames,
  run,
  substituteGrafanaVariables,
  tempDir,
} from "./lib.ts";

const all = dashboards();
const byUid = (uid: string) => all.find((d) => d.dashboard.uid === uid)?.dashboard;
const titles = (uid: string) => allPanels(byUid(uid)!).map((p) => p.title);

describe("Grafana dashboards", () => {
  const work = tempDir("dashboards-test");
  after(() => rmSync(work, { recursive: true, force: true }));

  it("are the three the issue asks for, with unique uids", () => {
    assert.deepEqual(all.map((d) => d.dashboard.uid).sort(), [
      "agent-cost-tokens",
      "agent-infrastructure",
      "agent-system-overview",
    ]);
  });

  it("System Overview shows request rate, success rate, p95 latency, active queries and errors", () => {
    for (const t of ["Request rate", "Success rate", "P95 latency", "Active queries", "Errors by type"]) {
      assert.ok(titles("agent-system-overview").includes(t), t);
    }
  });

  it("Cost and Token Usage shows tokens/min, cost/hour, tokens by model and tokens per query", () => {
    for (const t of ["Tokens per minute", "Estimated cost per hour", "Tokens per minute by model", "Average tokens per query"]) {
      assert.ok(titles("agent-cost-tokens").includes(t), t);
    }
  });

  it("Infrastructure has a row each for nodes, PostgreSQL, Redis, Qdrant and GPU", () => {
    const rows = allPanels(byUid("agent-infrastructure")!)
      .filter((p) => p.type === "row")
      .map((p) => p.title);
    assert.deepEqual(rows, ["Nodes and pods", "PostgreSQL", "Redis", "Qdrant", "GPU"]);
  });

  it("query through the data source variable, so they work with any Prometheus data source uid", () => {
    for (const { file, dashboard } of all) {
      assert.ok(
        dashboard.templating.list.some((v) => v.name === "datasource" && v.type === "datasource"),
        file,
      );
      for (const p of allPanels(dashboard).filter((p) => p.type !== "row")) {
        assert.deepEqual(p.datasource, { type: "prometheus", uid: "${datasource}" }, `${file}: ${p.title}`);
        assert.ok((p.targets ?? []).length > 0, `${file}: ${p.title} has no query`);
      }
    }
  });

  it("only use PromQL that parses (checked by promtool, variables substituted)", async () => {
    const rules = all.flatMap(({ file, dashboard }) =>
      dashboardExprs(dashboard).map(({ where, expr }, i) => {
        const promql = substituteGrafanaVariables(grafanaQueryToPromQL(expr));
        metricNames(promql); // the parser the catalogue test uses must read it too
        return { record: `dashboard:expr_${i}:check`, expr: promql, labels: { source: `${file} ${where}` } };
      }),
    );
    assert.ok(rules.length > 40, `only ${rules.length} expressions found`);
    const file = join(work, "dashboard-exprs.yml");
    writeFileSync(file, YAML.stringify({ groups: [{ name: "dashboard-exprs", rules }] }));
    const { code, output } = await run("promtool", ["check", "rules", file]);
    assert.equal(code, 0, output);
  });
});
