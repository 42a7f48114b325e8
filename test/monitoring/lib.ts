// Shared by the test/monitoring suites: where the monitoring files are, how to
// read them, and the tools (promtool, amtool, PromQL parser) that check them.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parser } from "@prometheus-io/lezer-promql";
import YAML from "yaml";
import { spawnTracked, stopProcess } from "../support/process.ts";

const dir = (rel: string) => fileURLToPath(new URL(`../../monitoring/${rel}`, import.meta.url));
export const RULES_DIR = dir("prometheus/rules");
export const RULE_TESTS_DIR = dir("prometheus/tests");
export const DASHBOARDS_DIR = dir("grafana/dashboards");
export const ALERTMANAGER_FILE = dir("alertmanager/alertmanager.yml");

export const RUNBOOK_BASE = "https://github.com/agent-stack/agent-stack/blob/main/README.md#runbook-";

const execFileAsync = promisify(execFile);

/** Runs a binary; resolves with its output whatever the exit code. */
export async function run(file: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, { timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

export const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), `${prefix}-`));

const yamlFiles = (d: string, suffix: string) =>
  readdirSync(d)
    .filter((f) => f.endsWith(suffix))
    .sort()
    .map((f) => join(d, f));

export const ruleFiles = () => yamlFiles(RULES_DIR, ".yml");
export const ruleTestFiles = () => yamlFiles(RULE_TESTS_DIR, ".test.yml");

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  interval?: string;
  rules: Rule[];
}

export const readYaml = <T>(file: string): T => YAML.parse(readFileSync(file, "utf8")) as T;

/** Every rule of every rule file, with the file it is in. */
export function allRules(): Array<{ file: string; group: string; rule: Rule }> {
  return ruleFiles().flatMap((file) =>
    readYaml<{ groups: RuleGroup[] }>(file).groups.flatMap((g) => g.rules.map((rule) => ({ file, group: g.name, rule }))),
  );
}

type DataSourceRef = { type: string; uid: string };

export interface Dashboard {
  uid: string;
  title: string;
  templating: { list: Array<{ name: string; type: string; query?: unknown; datasource?: DataSourceRef }> };
  panels: Panel[];
}

/** A panel target: PromQL (`expr`) or a CloudWatch metric query (namespace, metricName, dimensions, statistic). */
export interface Target {
  refId: string;
  datasource?: DataSourceRef;
  expr?: string;
  legendFormat?: string;
  namespace?: string;
  metricName?: string;
  dimensions?: Record<string, string | string[]>;
  statistic?: string;
  queryMode?: string;
  region?: string;
}

export interface Panel {
  type: string;
  title: string;
  datasource?: DataSourceRef;
  panels?: Panel[];
  targets?: Target[];
}

export function dashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(DASHBOARDS_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => ({ file: f, dashboard: JSON.parse(readFileSync(join(DASHBOARDS_DIR, f), "utf8")) as Dashboard }));
}

export const allPanels = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

const isPrometheus = (ds: DataSourceRef | undefined) => ds?.type === "prometheus";

/** Every PromQL expression of a dashboard: Prometheus panel targets (with their legends) and query variables. */
export function dashboardExprs(d: Dashboard): Array<{ where: string; expr: string; legend?: string }> {
  const targets = allPanels(d).flatMap((p) =>
    (p.targets ?? [])
      .filter((t) => isPrometheus(t.datasource ?? p.datasource))
      .map((t) => ({ where: `panel "${p.title}"`, expr: t.expr!, legend: t.legendFormat })),
  );
  const variables = d.templating.list
    .filter((v) => v.type === "query" && isPrometheus(v.datasource))
    .map((v) => ({ where: `variable $${v.name}`, expr: (v.query as { query: string }).query }));
  return [...targets, ...variables];
}

// Values a Grafana variable stands for when an expression is checked on its own.
const GRAFANA_VALUES: Record<string, string> = {
  __rate_interval: "5m",
  __interval: "1m",
  __range: "1h",
  job: "agent-api",
  model: ".*",
  price_per_1k_tokens: "0.02",
};

/** Replaces $var, ${var} and [[var]]; an unknown variable is an error, not a silent pass. */
export function substituteGrafanaVariables(expr: string): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (_, a, b, c) => {
    const name = (a ?? b ?? c) as string;
    const value = GRAFANA_VALUES[name];
    if (value === undefined) throw new Error(`unknown Grafana variable $${name} in: ${expr}`);
    return value;
  });
}

/** label_values(metric{...}, label) is Grafana's, not PromQL: check its selector. */
export const grafanaQueryToPromQL = (q: string) => q.replace(/^label_values\((.+),\s*\w+\)$/, "$1");

/** Each metric selector of a PromQL expression: its name and where it stands (throws if it does not parse). */
export function metricSelectors(expr: string): Array<{ name: string; from: number; to: number }> {
  const selectors: Array<{ name: string; from: number; to: number }> = [];
  let error: number | undefined;
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) error = node.from;
      if (node.name === "Identifier" && node.node.parent?.name === "VectorSelector")
        selectors.push({ name: expr.slice(node.from, node.to), from: node.from, to: node.to });
    },
  });
  if (error !== undefined) throw new Error(`PromQL does not parse at ${error}: ${expr}`);
  return selectors;
}

/** Metric names selected by a PromQL expression (throws if it does not parse). */
export const metricNames = (expr: string): string[] => [...new Set(metricSelectors(expr).map((s) => s.name))];

/** Starts a long-running binary (killed if the test process dies first); output is kept for failure messages. */
export function startDaemon(file: string, args: string[]) {
  const child = spawnTracked(file, args);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d));
  child.stderr?.on("data", (d: Buffer) => (output += d));
  return { output: () => output, stop: () => stopProcess(child) };
}
