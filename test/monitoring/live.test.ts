// The monitoring files against the real app: its /metrics carries every app metric the catalogue lists,
// and a real Prometheus loads every rule file, scrapes the app and turns its traffic into recorded rates.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import YAML from "yaml";
import { METRICS } from "../../monitoring/metrics-catalogue.ts";
import { startStack, USER_KEY, type Stack } from "../support/app.ts";
import { api } from "../support/http.ts";
import { scrape } from "../support/metrics.ts";
import { freePort, waitFor } from "../support/process.ts";
import { allRules, ruleFiles, startDaemon, tempDir } from "./lib.ts";

let stack: Stack;
let prometheus: ReturnType<typeof startDaemon>;
let promUrl: string;
const work = tempDir("live-prometheus");

async function promApi<T>(path: string): Promise<T> {
  const res = await fetch(`${promUrl}/api/v1/${path}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`${path}: ${body.error}`);
  return body.data;
}

/** Value of an instant query's single sample, or undefined while it has none. */
async function sample(query: string): Promise<number | undefined> {
  const data = await promApi<{ result: Array<{ value: [number, string] }> }>(`query?query=${encodeURIComponent(query)}`);
  return data.result.length === 1 ? Number(data.result[0].value[1]) : undefined;
}

async function traffic() {
  const client = api(stack.url, USER_KEY);
  assert.equal(
    (await client.post("/api/v1/documents", { documents: [{ text: "Qdrant stores vectors. Ollama runs models." }] })).status,
    201,
  );
  for (let i = 0; i < 2; i++) assert.equal((await client.post("/api/v1/query", { query: "What stores vectors?" })).status, 200);
}

before(async () => {
  stack = await startStack();
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const config = join(work, "prometheus.yml");
  writeFileSync(
    config,
    YAML.stringify({
      // Seconds instead of the cluster's 30 s, so the test sees scrapes and evaluations quickly.
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: ruleFiles(),
      // The job name the ServiceMonitor gives the API in the cluster.
      scrape_configs: [{ job_name: "agent-api", static_configs: [{ targets: [new URL(stack.metricsUrl).host] }] }],
    }),
  );
  prometheus = startDaemon("/usr/bin/prometheus", [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(work, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn",
  ]);
  await waitFor("Prometheus", async () => (await fetch(`${promUrl}/-/ready`)).ok, 20_000).catch((err) => {
    throw new Error(`${err}\n${prometheus.output()}`);
  });
});

after(async () => {
  await prometheus?.stop();
  await stack?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("the running app's /metrics", () => {
  it("exports every app metric of the catalogue, with the catalogued type", async () => {
    await traffic();
    const exposition = await scrape(stack.metricsUrl);
    const types = Object.fromEntries([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    const app = Object.entries(METRICS).filter(([, e]) => e.source === "app");
    assert.ok(app.length > 0);
    for (const [name, entry] of app) assert.equal(types[name], entry.type, name);
  });
});

describe("a real Prometheus with monitoring/prometheus/rules", () => {
  it("scrapes the app as job agent-api", async () => {
    type Targets = { activeTargets: Array<{ labels: { job: string }; health: string; lastError: string }> };
    await waitFor(
      "agent-api target up",
      async () => {
        const { activeTargets } = await promApi<Targets>("targets");
        return activeTargets.some((t) => t.labels.job === "agent-api" && t.health === "up");
      },
      15_000,
    );
  });

  it("loads every rule group and evaluates every rule without error", async () => {
    type Rules = {
      groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string }> }>;
    };
    let groups: Rules["groups"] = [];
    await waitFor(
      "every rule evaluated",
      async () => {
        groups = (await promApi<Rules>("rules")).groups;
        return groups.flatMap((g) => g.rules).every((r) => !r.lastEvaluation.startsWith("0001-"));
      },
      15_000,
    );
    const loaded = groups.flatMap((g) => g.rules.map((r) => r.name)).sort();
    assert.deepEqual(
      loaded,
      allRules()
        .map((r) => r.rule.alert ?? r.rule.record!)
        .sort(),
    );
    const failing = groups.flatMap((g) => g.rules).filter((r) => r.health !== "ok");
    assert.deepEqual(
      failing.map((r) => `${r.name}: ${r.lastError}`),
      [],
    );
  });

  it("records the app's traffic as the rates the dashboards read", async () => {
    await traffic(); // after the first scrape, so the counters move between two samples
    const hitRatio = await waitForSample('job:cache_requests:hit_ratio_rate5m{job="agent-api"}');
    assert.ok(hitRatio > 0 && hitRatio < 1, `hit ratio ${hitRatio}`);
    assert.ok((await waitForSample('job:http_requests:rate5m{job="agent-api"}')) > 0);
    assert.equal(await waitForSample('job:http_requests:success_ratio_rate5m{job="agent-api"}'), 1);
    assert.ok((await waitForSample('sum(job_model:agent_token_usage:rate5m{job="agent-api"})')) > 0);
    assert.ok((await waitForSample("sum(model:agent_queries_per_hour:rate5m)")) > 0);
  });

  it("does not fire ServiceDown for the healthy app", async () => {
    assert.equal(await sample('up{job="agent-api"}'), 1);
    assert.equal(await sample('ALERTS{alertname="ServiceDown"}'), undefined);
  });
});

/** Waits until the query has one sample that is a number (a ratio of zero rates is NaN). */
async function waitForSample(query: string): Promise<number> {
  let value: number | undefined;
  await waitFor(
    query,
    async () => {
      value = await sample(query);
      return value !== undefined && !Number.isNaN(value) && value !== 0;
    },
    15_000,
  ).catch(async (err) => {
    throw new Error(`${err} (last value ${value})`);
  });
  return value!;
}
