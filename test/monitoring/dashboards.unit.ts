import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import YAML from "yaml";
import { FIREWALL_METRICS } from "../../infra/workloads/api-firewall.ts";
import {
  allPanels,
  allRules,
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
/** The panels titled `title` on dashboard `uid` (a stat and a graph may share a title); none fails the test. */
const panelsOf = (uid: string, title: string) => {
  const panels = allPanels(byUid(uid)!).filter((p) => p.title === title);
  assert.ok(panels.length > 0, `${uid}: no panel "${title}"`);
  return panels;
};
const panelOf = (uid: string, title: string) => panelsOf(uid, title)[0]!;
/** A panel's threshold values, lowest first (Grafana's base step, `null`, left out). */
const thresholdValues = (panel: any): number[] =>
  ((panel.fieldConfig?.defaults?.thresholds?.steps ?? []) as Array<{ value: number | null }>)
    .map((step) => step.value)
    .filter((v): v is number => v !== null);
/** Every query of the panels titled `title` on dashboard `uid`. */
const queriesOf = (uid: string, title: string): string[] =>
  panelsOf(uid, title).flatMap((p) => (p.targets ?? []).map((t: any) => t.expr as string));

describe("Grafana dashboards", () => {
  const work = tempDir("dashboards-test");
  after(() => rmSync(work, { recursive: true, force: true }));

  it("are the three the issue asks for and the Edge one, with unique uids", () => {
    assert.deepEqual(all.map((d) => d.dashboard.uid).sort(), [
      "agent-cost-tokens",
      "agent-edge",
      "agent-infrastructure",
      "agent-system-overview",
    ]);
  });

  /** Each query of those panels matches `pattern`. */
  const eachQuery = (uid: string, title: string, pattern: RegExp) => {
    for (const expr of queriesOf(uid, title)) assert.match(expr, pattern, `${uid} "${title}"`);
  };

  it("System Overview shows request rate, success rate, latency, active queries and errors", () => {
    assert.ok(titles("agent-system-overview").includes("Latency: p50, p95, p99"));
    eachQuery("agent-system-overview", "Request rate", /^job:http_requests:rate5m\{job="\$job"\}$/);
    eachQuery("agent-system-overview", "Success rate", /^job:http_requests:success_ratio_rate5m\{job="\$job"\}$/);
    eachQuery("agent-system-overview", "Active queries", /^sum(?: by \(instance\) )?\(active_queries\{job="\$job"\}\)$/);
    eachQuery("agent-system-overview", "Errors by type", /^sum by \(agent_name, error_type\) \(rate\(agent_errors_total\{/);
  });

  it("its latency panel shows the agent's p50, p95 and p99 and each route's p95 and p99 (guides 000 and 004)", () => {
    const exprs = queriesOf("agent-system-overview", "Latency: p50, p95, p99");
    const quantile = (q: string, metric: string) =>
      exprs.some((e) => e.includes(`histogram_quantile(${q}, `) && e.includes(`${metric}_bucket`));
    assert.ok(quantile("0.5", "agent_execution_duration_seconds"), "agent p50");
    assert.ok(exprs.includes('job:agent_execution_duration_seconds:p95_5m{job="$job"}'), "agent p95");
    assert.ok(quantile("0.99", "agent_execution_duration_seconds"), "agent p99");
    assert.ok(exprs.includes('job_route:http_request_duration_seconds:p95_5m{job="$job"}'), "route p95");
    assert.ok(quantile("0.99", "http_request_duration_seconds"), "route p99");
  });

  it("System Overview shows each pod's database pool use and the statements' p95 (guides 000 and 002)", () => {
    const exprsOf = (title: string) => queriesOf("agent-system-overview", title);
    const pool = exprsOf("Database pool by pod");
    // Busy over size, per pod: what DatabasePoolExhausted and DatabasePoolHighUtilization read.
    assert.ok(
      pool.some((e) => /by \(pod\)/.test(e) && /db_pool_active\{[^}]*\} \/ db_pool_size\{/.test(e)),
      `busy / size by pod: ${pool}`,
    );
    assert.ok(
      pool.some((e) => /by \(pod\)/.test(e) && e.includes("db_pool_waiting{")),
      `waiting by pod: ${pool}`,
    );
    const latency = exprsOf("Database statement p95 duration");
    assert.ok(
      latency.some((e) => e.startsWith("histogram_quantile(0.95, ") && e.includes("db_statement_duration_seconds_bucket{")),
      `p95: ${latency}`,
    );
  });

  it("Cost and Token Usage shows tokens/min, cost/hour, tokens by model and tokens per query", () => {
    const tokens = String.raw`rate\(agent_token_usage_sum\{job="\$job", model=~"\$model"\}`;
    eachQuery("agent-cost-tokens", "Tokens per minute", new RegExp(String.raw`^sum\(${tokens}\[\$__rate_interval\]\)\) \* 60$`));
    // The last hour's tokens at the configured price per 1,000.
    eachQuery(
      "agent-cost-tokens",
      "Estimated cost per hour",
      new RegExp(String.raw`^sum\(${tokens}\[1h\]\)\) \* 3600 \* \$price_per_1k_tokens / 1000$`),
    );
    eachQuery(
      "agent-cost-tokens",
      "Tokens per minute by model",
      /^sum by \(model\) \(job_model:agent_token_usage:rate5m\{.*\}\) \* 60$/,
    );
    // Tokens over answers: the histogram's sum over its count.
    eachQuery(
      "agent-cost-tokens",
      "Average tokens per query",
      /agent_token_usage_sum\{.*\/ sum\(rate\(agent_token_usage_count\{/,
    );
  });

  it("Infrastructure has a row each for nodes, PostgreSQL, Redis, Qdrant and GPU", () => {
    const rows = allPanels(byUid("agent-infrastructure")!)
      .filter((p) => p.type === "row")
      .map((p) => p.title);
    assert.deepEqual(rows, ["Nodes and pods", "PostgreSQL", "Redis", "Qdrant", "GPU"]);
  });

  it("System Overview shows the feedback submission rate: ratings recorded per minute (guide 004)", () => {
    const exprs = queriesOf("agent-system-overview", "Feedback per minute");
    assert.ok(
      exprs.some((e) => /http_requests_total\{[^}]*route="\/api\/v1\/feedback"[^}]*status="201"/.test(e) && e.endsWith("* 60")),
      exprs.join("\n"),
    );
  });

  it("Infrastructure's node row shows each node's disk I/O: throughput and busy time by device (guide 002: Disk I/O)", () => {
    const panels = allPanels(byUid("agent-infrastructure")!);
    const rowOf = (title: string) => {
      const at = panels.findIndex((p) => p.title === title);
      return panels.slice(0, at).findLast((p) => p.type === "row")?.title;
    };
    const exprs = (title: string) => (panels.find((p) => p.title === title)?.targets ?? []).map((t: any) => t.expr);
    assert.equal(rowOf("Disk throughput by node"), "Nodes and pods");
    assert.ok(exprs("Disk throughput by node").some((e) => e.includes("node_disk_read_bytes_total")));
    assert.ok(exprs("Disk throughput by node").some((e) => e.includes("node_disk_written_bytes_total")));
    assert.ok(exprs("Disk busy by node").some((e) => e.includes("node_disk_io_time_seconds_total")));
  });

  it("query through their data source variable, so they work with any data source uid", () => {
    for (const { file, dashboard } of all) {
      const sources = dashboard.templating.list.filter((v) => v.type === "datasource");
      assert.equal(sources.length, 1, file);
      const source = { type: sources[0]!.query as string, uid: `\${${sources[0]!.name}}` };
      assert.ok(["prometheus", "cloudwatch"].includes(source.type), `${file}: ${source.type}`);
      for (const p of allPanels(dashboard).filter((p) => p.type !== "row")) {
        assert.deepEqual(p.datasource, source, `${file}: ${p.title}`);
        assert.ok((p.targets ?? []).length > 0, `${file}: ${p.title} has no query`);
      }
    }
  });

  // A panel drawn for an alert's quantity reads the alert's expression and marks the alert's threshold: one that drifted
  // from its alert showed a node at 70 % CPU as 87.5 % busy (every CPU mode averaged), or a red line where nothing pages.
  it("draw each alerted quantity with its alert's expression, its threshold as the last step", () => {
    const alerts = new Map(allRules().flatMap(({ rule }) => (rule.alert ? [[rule.alert, rule.expr] as const] : [])));
    // The panel's PromQL as the alert reads it: one job (the alerts keep the job label), 5-minute rates.
    const normal = (expr: string) =>
      expr
        .replace(/\{job="\$job"\}|job="\$job",\s*/g, "")
        .replaceAll("$__rate_interval", "5m")
        .replace(/\s+/g, " ")
        .trim();
    // [dashboard uid, panel, alert, whether the panel draws the alert's own expression]
    const ALERTED: Array<[string, string, string, boolean]> = [
      ["agent-infrastructure", "CPU busy by node", "HighCPU", true],
      ["agent-infrastructure", "Memory used by node", "HighMemory", true],
      ["agent-infrastructure", "Connections used", "DatabaseConnectionPoolExhausted", true],
      // The raw gauges: the alerts average utilisation over 5 minutes and take each GPU's highest memory use.
      ["agent-infrastructure", "GPU utilisation", "GpuHighUtilization", false],
      ["agent-infrastructure", "GPU memory used", "GpuMemoryHigh", false],
      ["agent-system-overview", "Agent error rate", "HighErrorRate", true],
      ["agent-cost-tokens", "Tokens in the last hour", "HighTokenUsage", true],
    ];
    for (const [uid, title, alert, sameExpr] of ALERTED) {
      const panel = panelOf(uid, title) as any;
      const [, lhs, threshold] = /^(.*?)\s*[<>]=?\s*([\d.e+]+)$/.exec(normal(alerts.get(alert)!))!;
      assert.equal(thresholdValues(panel).at(-1), Number(threshold), `${title}: ${alert}'s threshold`);
      if (sameExpr) {
        const exprs = (panel.targets as Array<{ expr: string }>).map((t) => normal(t.expr));
        assert.ok(exprs.includes(lhs!), `${title}: ${exprs.join(" | ")}\n is not ${alert}'s ${lhs}`);
      }
    }
  });

  it("count as not running the phases PodNotReady fires on, and price tokens per 1,000", () => {
    const phases = (expr: string) => /phase=~"([^"]+)"/.exec(expr)?.[1];
    const podNotReady = allRules().find(({ rule }) => rule.alert === "PodNotReady")!.rule.expr;
    const panel = panelOf("agent-infrastructure", "Pods not running");
    assert.deepEqual(
      panel.targets!.map((t) => phases(t.expr!)),
      [phases(podNotReady)],
    );
    // $price_per_1k_tokens is dollars per 1,000 tokens: every cost panel divides its tokens by 1000.
    const priced = all.flatMap(({ dashboard }) =>
      dashboardExprs(dashboard).filter(({ expr }) => expr.includes("$price_per_1k_tokens")),
    );
    assert.ok(priced.length >= 2, `${priced.length} priced panels`);
    for (const { where, expr } of priced) assert.match(expr, /\* \$price_per_1k_tokens \/ 1000$/, where);
  });

  it("keep a panel's thresholds in its unit: 0-1 for percentunit, 0-100 for percent", () => {
    for (const { file, dashboard } of all) {
      for (const panel of allPanels(dashboard) as any[]) {
        const unit = panel.fieldConfig?.defaults?.unit;
        const values = thresholdValues(panel);
        if (unit === "percentunit")
          assert.ok(
            values.every((v) => v >= 0 && v <= 1),
            `${file} "${panel.title}": ${values}`,
          );
        if (unit === "percent")
          assert.ok(
            values.every((v) => v > 1 && v <= 100),
            `${file} "${panel.title}": ${values}`,
          );
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

  it("Nodes ready / not ready counts the nodes not ready (promtool, on kube-state-metrics' series)", async () => {
    const panel = panelOf("agent-infrastructure", "Nodes ready / not ready");
    const expr = (legend: string) => substituteGrafanaVariables(panel.targets!.find((t) => t.legendFormat === legend)!.expr!);
    // kube-state-metrics' node collector: one series per condition status, 1 for the status the node is in.
    const node = (name: string, status: string) =>
      ["true", "false", "unknown"].map((s) => ({
        series: `kube_node_status_condition{node="${name}", condition="Ready", status="${s}"}`,
        values: s === status ? "1" : "0",
      }));
    const tests = {
      rule_files: [],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [...node("a", "true"), ...node("b", "false"), ...node("c", "unknown")],
          promql_expr_test: [
            { expr: expr("ready"), eval_time: "0m", exp_samples: [{ labels: "{}", value: 1 }] },
            // Summing the Ready=true series equal to 0 added zeros: 0 whatever the number of nodes down.
            { expr: expr("not ready"), eval_time: "0m", exp_samples: [{ labels: "{}", value: 2 }] },
          ],
        },
      ],
    };
    const file = join(work, "nodes-panel.test.yml");
    writeFileSync(file, YAML.stringify(tests));
    const { code, output } = await run("promtool", ["test", "rules", file]);
    assert.equal(code, 0, output);
  });
});

/**
 * What CloudWatch publishes, from AWS's docs: Application Load Balancer metrics (load-balancer-cloudwatch-metrics:
 * counts are Sum, TargetResponseTime Average or pNN.NN; every metric here has the LoadBalancer dimension, value
 * app/<name>/<id>) and AWS WAF's (monitoring-cloudwatch: AWS/WAFV2, Sum only, dimensions WebACL, Rule, Region).
 */
const CLOUDWATCH = {
  "AWS/ApplicationELB": {
    dimensions: ["LoadBalancer"],
    counts: [
      "RequestCount",
      "HTTPCode_ELB_5XX_Count",
      "HTTPCode_ELB_502_Count",
      "HTTPCode_ELB_503_Count",
      "HTTPCode_ELB_504_Count",
      "HTTPCode_Target_5XX_Count",
    ],
    timings: ["TargetResponseTime"],
  },
  "AWS/WAFV2": { dimensions: ["WebACL", "Rule", "Region"], counts: ["AllowedRequests", "BlockedRequests"], timings: [] },
} as const;

describe("Edge dashboard (CloudWatch)", () => {
  const edge = byUid("agent-edge")!;
  const targets = allPanels(edge).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
  const variables = new Set(edge.templating.list.map((v) => v.name));

  it("shows what never reaches the API: the load balancer's own 5xx and the firewall's blocks", () => {
    const metricsOf = (title: string) => targets.filter((t) => t.panel === title).map((t) => t.metricName);
    assert.deepEqual(metricsOf("5xx the load balancer sent itself"), [
      "HTTPCode_ELB_502_Count",
      "HTTPCode_ELB_503_Count",
      "HTTPCode_ELB_504_Count",
    ]);
    assert.deepEqual(metricsOf("5xx by origin"), ["HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count"]);
    assert.deepEqual(metricsOf("Firewall: allowed and blocked requests"), ["AllowedRequests", "BlockedRequests"]);
  });

  it("queries only metrics, dimensions and statistics CloudWatch publishes", () => {
    assert.ok(targets.length >= 8, `${targets.length} queries`);
    for (const t of targets) {
      const where = `${t.panel} ${t.refId}`;
      assert.equal(t.queryMode, "Metrics", where);
      assert.equal(t.region, "default", `${where}: the data source's region, the stack's`);
      const published = CLOUDWATCH[t.namespace as keyof typeof CLOUDWATCH];
      assert.ok(published, `${where}: namespace ${t.namespace}`);
      const timing = (published.timings as readonly string[]).includes(t.metricName!);
      assert.ok(timing || (published.counts as readonly string[]).includes(t.metricName!), `${where}: ${t.metricName}`);
      assert.match(t.statistic!, timing ? /^(Average|p\d{2}(\.\d{1,2})?)$/ : /^Sum$/, where);
      for (const key of Object.keys(t.dimensions!))
        assert.ok((published.dimensions as readonly string[]).includes(key), `${where}: ${key}`);
      for (const value of Object.values(t.dimensions!).flat()) {
        const variable = /^\$(\w+)$/.exec(value)?.[1];
        if (variable) assert.ok(variables.has(variable), `${where}: $${variable} is not a dashboard variable`);
      }
    }
  });

  it("picks the load balancer and web ACL from the dimension values CloudWatch has", () => {
    const pick = (name: string) => edge.templating.list.find((v) => v.name === name)?.query as Record<string, string>;
    assert.deepEqual(pick("load_balancer"), {
      refId: "load_balancer",
      queryType: "dimensionValues",
      region: "default",
      namespace: "AWS/ApplicationELB",
      metricName: "RequestCount",
      dimensionKey: "LoadBalancer",
    });
    assert.equal(pick("web_acl").namespace, "AWS/WAFV2");
    assert.equal(pick("web_acl").dimensionKey, "WebACL");
  });

  it("counts the rate-limit rule under the metric name the web ACL gives it", () => {
    const rules = targets.filter((t) => t.namespace === "AWS/WAFV2").map((t) => t.dimensions!.Rule);
    // "ALL": the whole web ACL (a reserved metric name, so no rule can take it).
    assert.deepEqual([...new Set(rules)].sort(), ["ALL", FIREWALL_METRICS.rateLimitRule].sort());
  });
});
