// The log as a flood of requests meets it: bounded per line (a client's path) and in memory (stdout slower than the
// lines come).
import assert from "node:assert/strict";
import type { ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import type { Readable } from "node:stream";
import { setTimeout } from "node:timers/promises";
import { test } from "node:test";
import { Hono } from "hono";
import { createMetrics } from "../../../app/src/metrics.ts";
import { onError } from "../../../app/src/middleware/errors.ts";
import { observe } from "../../../app/src/middleware/observe.ts";
import { REPO_ROOT } from "../../../infra/plan/stackfile.ts";
import { capturedLog } from "../../support/log.ts";
import { spawnTracked } from "../../support/process.ts";

test("an access log line cuts a client's long path to 200 characters, saying how long it was", async () => {
  const { log, lines } = capturedLog("info");
  const app = new Hono().use(observe(createMetrics(), log));
  // 16 kB of `%01`, inside Node's header limit: logged whole, 32 kB a line, each written as `\u0001`.
  const res = await app.request(`/${"%01".repeat(5_300)}`);
  assert.equal(res.status, 404);
  const line = JSON.parse(lines.at(-1)!);
  assert.equal(line.route, "unmatched");
  assert.ok(line.path.startsWith(`/${"\u0001".repeat(199)}... (`), JSON.stringify(line.path.slice(0, 20)));
  assert.match(line.path, /\.\.\. \(\d+ characters\)$/);
  assert.ok(lines.at(-1)!.length < 2_000, `${lines.at(-1)!.length} bytes logged`);
});

test("probes are logged at debug; a 5xx at error with its error and causes; a 4xx at info", async () => {
  const { log, records } = capturedLog("info");
  const app = new Hono().use(observe(createMetrics(), log));
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/metrics", (c) => c.text(""));
  app.get("/fail", () => {
    throw new Error("store failed", { cause: Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }) });
  });
  app.get("/missing", (c) => c.json({ error: "no" }, 404));
  app.onError(onError(log));
  for (const path of ["/health", "/metrics", "/fail", "/missing"]) await app.request(path);
  const requests = records()
    .filter((l) => l.msg === "request")
    .map(({ level, route, status, err }) => ({ level, route, status, err }));
  assert.deepEqual(requests, [
    { level: "error", route: "/fail", status: "500", err: "store failed ECONNRESET <- read ECONNRESET" },
    { level: "info", route: "/missing", status: "404", err: undefined },
  ]);
  const { log: debugLog, lines: debugLines } = capturedLog("debug");
  const debugApp = new Hono().use(observe(createMetrics(), debugLog));
  debugApp.get("/health", (c) => c.json({ status: "ok" }));
  await debugApp.request("/health");
  assert.equal(JSON.parse(debugLines.at(-1)!).level, "debug");
});

test("a credential under any field name the app or its libraries use for one is written as [redacted]", () => {
  const { log, lines } = capturedLog("info");
  const secret = "s3cret-value-0123456789";
  const fields = {
    authorization: `Bearer ${secret}`,
    headers: { authorization: `Bearer ${secret}` },
    req: { authorization: secret, headers: { authorization: `Bearer ${secret}` } },
    apiKey: secret,
    api_key: secret,
    key: secret,
    token: secret,
    password: secret,
    url: `postgres://app:${secret}@db/app`,
    err: {
      url: `http://qdrant:6333/?api-key=${secret}`,
      apiKey: secret,
      api_key: secret,
      key: secret,
      token: secret,
      password: secret,
    },
    DATABASE_URL: `postgres://app:${secret}@db/app`,
    REDIS_URL: `redis://:${secret}@redis:6379`,
    REDIS_PASSWORD: secret,
    QDRANT_API_KEY: secret,
    API_KEYS: secret,
    ADMIN_API_KEYS: secret,
  };
  log.info(fields, "configured");
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes(secret), lines[0]);
  const line = JSON.parse(lines[0]!);
  assert.equal(line.headers.authorization, "[redacted]");
  assert.equal(line.req.headers.authorization, "[redacted]");
  assert.equal(line.err.url, "[redacted]");
  assert.equal(line.DATABASE_URL, "[redacted]");
});

/**
 * Runs `script` (an ES module importing the app's logger) in a child process whose stdout is not read until the test
 * reads it: a stdout that takes nothing meanwhile.
 */
function logInChild(script: string) {
  const child = spawnTracked(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], {
    cwd: REPO_ROOT,
  });
  child.stdout!.pause();
  return child as ChildProcessByStdio<null, Readable, Readable>;
}

test("lines stdout has not taken are held up to the buffer's bound, then dropped and counted", async () => {
  // 1,000 lines of about 30 kB (30 MB) against a buffer of 1 MiB, then short ones for 1.2 s, which keep it full
  // through two reports of the drops, themselves dropped. The parent reads nothing until the child is done logging.
  const script = `
    import { createLogger } from "./app/src/log.ts";
    const log = createLogger("info", undefined, { bufferBytes: 1 << 20, reportMs: 500 });
    const long = "\\u0001".repeat(5_000);
    for (let i = 0; i < 1_000; i++) log.info({ path: long }, "request");
    let lines = 1_000;
    const until = performance.now() + 1_200;
    const more = () => {
      for (let i = 0; i < 100; i++, lines++) log.info({ path: "/" }, "request");
      if (performance.now() < until) return void setImmediate(more);
      globalThis.gc();
      process.stderr.write(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed, lines }));
      setTimeout(() => process.exit(0), 1_500);
    };
    more();`;
  const child = logInChild(script);
  const [done] = await once(child.stderr.setEncoding("utf8"), "data");
  const { heapUsed, lines } = JSON.parse(done as string);
  let out = "";
  child.stdout
    .setEncoding("utf8")
    .on("data", (chunk: string) => (out += chunk))
    .resume();
  const [code] = await once(child, "close"); // "exit" can come before the last of stdout
  assert.equal(code, 0);
  const logged = out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const written = logged.filter((l) => l.msg === "request").length;
  const dropped = logged.reduce((n, l) => n + (l.dropped_lines ?? 0), 0);
  // Before: every line was held (30 MB of heap) until stdout took it; then, a report dropped took its count with it.
  assert.ok(heapUsed < 24 * 1024 * 1024, `heap ${Math.round(heapUsed / 1024 / 1024)} MiB with stdout not read`);
  assert.ok(written < lines, `${written} of ${lines} written`);
  assert.ok(written + dropped >= lines, `${written} written and ${dropped} reported dropped of ${lines}`);
});

test("at exit, lines stdout does not take within the exit flush are dropped, and the process exits", async () => {
  const script = `
    import { createLogger } from "./app/src/log.ts";
    const log = createLogger("info", undefined, { bufferBytes: 1 << 20, exitFlushMs: 300 });
    for (let i = 0; i < 20_000; i++) log.info({ path: "/" }, "request");
    setTimeout(() => process.exit(0), 200);`;
  const child = logInChild(script); // its stdout never read
  try {
    const started = performance.now();
    // Before: pino's flush at exit waited for stdout for good (a replica held 6 min 50 s past its SIGTERM).
    const code = await Promise.race([once(child, "exit").then(([c]) => c), setTimeout(5_000, "still running")]);
    assert.equal(code, 0);
    assert.ok(performance.now() - started < 4_000, `exited after ${Math.round(performance.now() - started)} ms`);
  } finally {
    child.kill("SIGKILL");
  }
});
