// scripts/watch-after-deploy.sh (the deploy workflow's watch for guide 002's rollback triggers) against stub pulumi,
// kubectl, curl and sleep on PATH: the stub curl answers each of the script's Prometheus queries from a scenario of
// checks, a minute apart, and fails the checks where Prometheus is down. jq and awk are the real ones.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { METRICS } from "../../monitoring/metrics-catalogue.ts";
import { withScriptStubs } from "../support/script-stubs.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/watch-after-deploy.sh", import.meta.url));

/** What Prometheus answers on one check: each signal's value, or null for no series. */
interface Check {
  traffic: string | null; // sum(job:http_requests:rate5m)
  ratio: string | null; // job:http_requests:server_error_ratio_rate5m
  p95: string | null; // job_route:http_request_duration_seconds:p95_5m, on /api/v1/sessions
  pg: string | null; // pg_up
  redis: string | null; // redis_up
  redisApi: string | null; // the API's failing share of Redis operations
}
const HEALTHY: Check = { traffic: "2.5", ratio: "0.004", p95: "0.35", pg: "1", redis: "1", redisApi: "0" };
/** Prometheus cannot be reached on this check. */
const DOWN = "down" as const;
type Step = Check | typeof DOWN;

const LABELS: Partial<Record<keyof Check, Record<string, string>>> = {
  p95: { job: "agent-api", route: "/api/v1/sessions" },
  pg: { instance: "10.0.1.7:9187" },
  redis: { instance: "10.0.1.8:9121" },
};

/** Runs the script on `steps` (the last one repeats), for `minutes`; `forwardEnds`: each port-forward exits at once. */
function run(steps: Step[], minutes: number, { forwardEnds = false } = {}) {
  return withScriptStubs("watch-deploy-", {}, ({ dir, stub, run: runScript, lines }) => {
    // As when the Prometheus pod it reached is replaced: kubectl's forward ends with it.
    if (forwardEnds) stub("kubectl", "exit 1");
    // The answers, one directory per check: <n>/<signal>, or <n>/down.
    const answers = join(dir, "answers");
    steps.forEach((step, i) => {
      const at = join(answers, String(i + 1));
      mkdirSync(at, { recursive: true });
      if (step === DOWN) {
        writeFileSync(join(at, "down"), "");
        return;
      }
      for (const [signal, value] of Object.entries(step)) {
        const result = value === null ? [] : [{ metric: LABELS[signal as keyof Check] ?? {}, value: [1_767_225_600, value] }];
        writeFileSync(join(at, signal), JSON.stringify({ status: "success", data: { resultType: "vector", result } }));
      }
    });
    stub("sleep", "true"); // the minute between checks
    // Each check starts with the traffic query: it moves the stub to the next check's answers (the last one repeats).
    const count = join(dir, "check.count");
    stub(
      "curl",
      `q=""; while [ $# -gt 0 ]; do [ "$1" = --data-urlencode ] && q=\${2#query=}; shift; done
      echo "\${q//$'\\n'/ }" >> "${join(dir, "queries.log")}"
      n=0; [ -e "${count}" ] && read -r n < "${count}"
      case "$q" in
        *server_error_ratio*) s=ratio ;;
        *"job:http_requests:rate5m"*) s=traffic; n=$((n + 1)); echo "$n" > "${count}" ;;
        *p95_5m*) s=p95 ;;
        *redis_operations_total*) s=redisApi ;;
        pg_up) s=pg ;;
        redis_up) s=redis ;;
        *) echo "unexpected query $q" >&2; exit 22 ;;
      esac
      [ "$n" -le ${steps.length} ] || n=${steps.length}
      [ -e "${answers}/$n/down" ] && { echo "curl: (7) Failed to connect to 127.0.0.1 port 19090" >&2; exit 7; }
      read -r answer < "${answers}/$n/$s"; echo "$answer"`,
    );
    const result = runScript(SCRIPT, ["prod", String(minutes)], 60_000);
    return {
      status: result.status,
      stdout: result.stdout,
      stderr: result.stderr,
      calls: lines("calls.log"),
      queries: lines("queries.log"),
    };
  });
}

const errors = (stdout: string) => stdout.split("\n").filter((l) => l.startsWith("::error::"));

test("a healthy window: a check a minute through a port-forward to the stack's Prometheus, then exit 0", () => {
  const r = run([HEALTHY], 3);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(errors(r.stdout), []);
  assert.ok(r.calls.includes("pulumi stack output kubeconfig --show-secrets --stack prod"));
  assert.deepEqual(
    r.calls.filter((c) => c.startsWith("kubectl")),
    ["kubectl -n monitoring port-forward svc/kube-prometheus-stack-prometheus 19090:9090"],
    "one forward, kept for the window",
  );
  assert.equal(r.calls.filter((c) => c.startsWith("sleep")).length, 3, "a minute before each check");
  assert.equal(r.calls.filter((c) => c.startsWith("curl")).length, 3 * 6);
  assert.ok(r.calls.every((c) => !c.startsWith("curl") || c.includes("http://127.0.0.1:19090/api/v1/query")));
  assert.match(r.stdout, /no rollback trigger held on prod in 3 minutes \(3 checks reached Prometheus\)/);
});

test("the queries name the project's recording rules and catalogued metrics, with the API's job label", () => {
  const { queries } = run([HEALTHY], 1);
  const recorded = new Set(
    YAML.parse(readFileSync(new URL("../../monitoring/prometheus/rules/recording.yml", import.meta.url), "utf8")).groups.flatMap(
      (g: any) => g.rules.map((r: any) => r.record),
    ),
  );
  const names = new Set(
    queries.flatMap((q) => [...q.matchAll(/([a-z_:][a-z0-9_:]*)(?=\{)|^([a-z_]+)$/g)].map((m) => m[1] ?? m[2])),
  );
  assert.deepEqual([...names].sort(), [
    "http_requests_total",
    "job:http_requests:rate5m",
    "job:http_requests:server_error_ratio_rate5m",
    "job_route:http_request_duration_seconds:p95_5m",
    "pg_up",
    "redis_operations_total",
    "redis_up",
  ]);
  for (const name of names) assert.ok(name in METRICS || recorded.has(name), `${name}: neither catalogued nor recorded`);
  for (const q of queries.filter((q) => /\{/.test(q))) assert.match(q, /job="agent-api"/, q);
  assert.ok(
    queries.some((q) => q.includes('route!~"/api/v1/(query|documents)"')),
    "HighApiLatency's routes",
  );
  // The traffic floors: a route's p95 and the share of failing Redis operations are read only where the API does at
  // least 0.1 of them per second (one slow request is a quiet route's p95; one failed operation, all of them).
  for (const metric of ["http_requests_total", "redis_operations_total"]) {
    const q = queries.find((x) => x.includes(metric));
    assert.match(
      q ?? "",
      new RegExp(`and on \\([a-z, ]+\\) sum by \\([a-z, ]+\\) \\(rate\\(${metric}\\{[^}]*\\}\\[5m\\]\\)\\) >= 0\\.1$`),
      metric,
    );
  }
});

/** A trigger held on the first two checks of a window that is healthy after them (each check costs the test time). */
const twice = (bad: Partial<Check>): Step[] => [{ ...HEALTHY, ...bad }, { ...HEALTHY, ...bad }, HEALTHY];

const TRIGGERS: [string, Partial<Check>, RegExp][] = [
  ["error rate > 5%", { ratio: "0.08" }, /5xx ratio 0\.08 at 2\.5 API requests\/s/],
  ["P95 latency > 10s", { p95: "12.5" }, /p95 seconds 12\.5 on \/api\/v1\/sessions/],
  ["P95 latency > 10s", { p95: "+Inf" }, /p95 seconds \+Inf on \/api\/v1\/sessions/],
  ["database connection failures", { pg: "0" }, /pg_up 0 at 10\.0\.1\.7:9187/],
  ["cache completely unavailable", { redis: "0" }, /redis_up 0 at 10\.0\.1\.8:9121/],
  ["cache completely unavailable", { redisApi: "1" }, /API Redis operations failing: 1/],
];

// Each of the guide's four on two checks in a row (the +Inf p95 and the API's own failing Redis operations are read as
// holds in the single-check test below, and held twice they fail as these do).
for (const [label, bad, value] of [TRIGGERS[0]!, TRIGGERS[1]!, TRIGGERS[3]!, TRIGGERS[4]!]) {
  test(`${label} (${JSON.stringify(bad)}) on two checks in a row fails the watch, naming it and the value`, () => {
    const r = run(twice(bad), 10);
    assert.equal(r.status, 1, r.stdout);
    const [error, ...more] = errors(r.stdout);
    assert.deepEqual(more, []);
    assert.ok(error.startsWith(`::error::rollback trigger (guide 002) on prod: ${label}, on 2 checks in a row: `), error);
    assert.match(error, value);
    assert.match(r.stdout, /check 2\/10/);
    assert.doesNotMatch(r.stdout, /check 3\/10/, "it stops at once");
  });
}

test("each trigger on one check only, another trigger or none on the next, does not fail the watch", () => {
  // In an order where no trigger holds on two checks in a row: each is held once, then clear.
  const order = [0, 1, 3, 4, 2, 5].map((i) => TRIGGERS[i]!);
  assert.ok(order.every(([label], i) => label !== order[i + 1]?.[0]));
  const steps = order.map(([, bad]): Step => ({ ...HEALTHY, ...bad }));
  const r = run([...steps, HEALTHY], steps.length + 1);
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(errors(r.stdout), []);
  order.forEach(([label], i) => {
    const check = `check ${i + 1}/${steps.length + 1}: ${label}: hold`;
    assert.ok(r.stdout.includes(check), `${check}\n${r.stdout}`);
  });
});

test("a check without Prometheus between two bad ones: the count carries over it", () => {
  const bad = { ...HEALTHY, pg: "0" };
  const r = run([HEALTHY, bad, DOWN, bad, HEALTHY], 6);
  assert.equal(r.status, 1, r.stdout);
  assert.match(errors(r.stdout)[0], /database connection failures/);
  assert.match(r.stdout, /check 4\/6/);
});

test("no traffic is no verdict on the error rate, not a failure, and the end says so", () => {
  // A ratio of 1 on 0.02 requests/s is one failed request in five minutes; none at all is 0/0.
  const r = run(
    [
      { ...HEALTHY, traffic: "0.02", ratio: "1" },
      { ...HEALTHY, traffic: null, ratio: "NaN" },
    ],
    4,
  );
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(errors(r.stdout), []);
  assert.match(r.stdout, /check 1\/4: error rate > 5%: none \(no verdict: 0\.02 API requests\/s, under 0\.1\)/);
  assert.match(r.stdout, /::warning::no verdict on "error rate > 5%" in prod's 4 minutes/);
});

test("missing series (an exporter not scraped, no route with traffic) are no verdict, not failures", () => {
  const r = run([{ traffic: null, ratio: null, p95: null, pg: null, redis: null, redisApi: null }], 3);
  assert.equal(r.status, 0, r.stdout);
  assert.deepEqual(errors(r.stdout), []);
  assert.equal(r.stdout.split("\n").filter((l) => l.startsWith("::warning::no verdict on")).length, 4);
});

test("a Prometheus not reached in the whole window fails the watch", () => {
  const r = run([DOWN], 5);
  assert.equal(r.status, 1, r.stdout);
  assert.deepEqual(errors(r.stdout), [
    "::error::Prometheus of prod was not reached in 5 minutes: guide 002's rollback triggers were not watched",
  ]);
});

test("a Prometheus unreachable on 10 checks in a row fails the watch then; fewer, between answers, do not", () => {
  const long = run([HEALTHY, DOWN], 30);
  assert.equal(long.status, 1, long.stdout);
  assert.deepEqual(errors(long.stdout), [
    "::error::Prometheus of prod unreachable on 10 checks in a row: guide 002's rollback triggers cannot be watched",
  ]);
  assert.doesNotMatch(long.stdout, /check 12\/30/);
  const blip = run([HEALTHY, DOWN, DOWN, DOWN, HEALTHY], 6);
  assert.equal(blip.status, 0, blip.stdout);
  // Ten misses in the window, each between two answers: never two in a row.
  const scattered = run(
    Array.from({ length: 21 }, (_, i): Step => (i % 2 ? DOWN : HEALTHY)),
    21,
  );
  assert.equal(scattered.status, 0, scattered.stdout);
  assert.match(scattered.stdout, /\(11 checks reached Prometheus\)/);
});

test("a port-forward that ended (its Prometheus pod replaced) is started again for the next check", () => {
  const r = run([HEALTHY], 3, { forwardEnds: true });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.deepEqual(
    r.calls.filter((c) => c.startsWith("kubectl")),
    Array(3).fill("kubectl -n monitoring port-forward svc/kube-prometheus-stack-prometheus 19090:9090"),
  );
});

test("0 minutes: no watch, nothing asked", () => {
  const r = run([HEALTHY], 0);
  assert.equal(r.status, 0);
  assert.deepEqual(r.calls, []);
});
