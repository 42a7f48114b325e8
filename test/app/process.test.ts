import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { appEnv, spawnApp, spawnAppProcess, USER_KEY, type SpawnedApp } from "../support/app.ts";
import { startFakes, type Fakes } from "../support/fakes.ts";
import { api, parseSse } from "../support/http.ts";
import { startPostgres } from "../support/postgres.ts";
import { freePort, waitFor } from "../support/process.ts";
import { startRedis } from "../support/redis.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { selfSignedCert } from "../support/tls.ts";

const urls = {
  databaseUrl: "postgres://postgres@127.0.0.1:1/postgres",
  redisUrl: "redis://127.0.0.1:1",
  ollamaUrl: "http://127.0.0.1:1",
  qdrantUrl: "http://127.0.0.1:1",
};

test("a bad or missing environment variable stops start-up with one line naming it", { timeout: 60_000 }, async () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: "not-a-port" }, /^invalid environment: PORT must be an integer from 0 to 65535, in decimal digits$/],
    [{ DATABASE_URL: "" }, /^invalid environment: DATABASE_URL must be a URL starting with postgres:\/\/ or postgresql:\/\/$/],
    [{ REDIS_URL: "http://127.0.0.1:6379" }, /^invalid environment: REDIS_URL must be a URL/],
    [{ API_KEYS: "short" }, /^invalid environment: API_KEYS every key must be at least 16 characters$/],
    // Read as 0 (a random port), not refused.
    [{ PORT: "" }, /^invalid environment: PORT must be an integer from 0 to 65535, in decimal digits$/],
    // Checked across variables only once each is valid: this one threw a RangeError with its stack.
    [{ CHUNK_SIZE_CHARS: "-1" }, /^invalid environment: CHUNK_SIZE_CHARS must be >= 100$/],
    // Refused by the driver after start-up began, with "URI malformed" and no variable named; the password not echoed.
    [
      { DATABASE_URL: "postgres://app:p%ZZword@127.0.0.1:1/app" },
      /^invalid environment: DATABASE_URL has a user name or password with a malformed %-escape \(write a literal % as %25\)$/,
    ],
    [{ REDIS_URL: "redis://127.0.0.1:1/cache" }, /^invalid environment: REDIS_URL must name its database by number/],
  ];
  const runs = cases.map(async ([override, expected]) => {
    const proc = spawnAppProcess(appEnv(urls, override));
    const { code } = await proc.exited;
    const { stdout, stderr } = proc.output();
    assert.notEqual(code, 0);
    assert.equal(stdout, "");
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, expected);
  });
  const missing = (async () => {
    const env: Record<string, string> = appEnv(urls);
    delete env.MODEL_LARGE;
    const proc = spawnAppProcess(env);
    assert.equal((await proc.exited).code, 1);
    assert.equal(proc.output().stderr.trim(), "invalid environment: MODEL_LARGE is required");
  })();
  await Promise.all([...runs, missing]);
});

test("the production path to the cache: rediss:// with the AUTH token, the server's certificate checked by host name", {
  timeout: 60_000,
}, async () => {
  // ElastiCache with in-transit encryption and an AUTH token (infra/workloads/secrets.ts writes the rediss:// URL). Its
  // certificate chains to Amazon's roots, which Node carries: the app has no CA setting for Redis. This server's CA is
  // given the way Node adds one to those roots (NODE_EXTRA_CA_CERTS); an app without it must refuse the server.
  const server = selfSignedCert("localhost");
  const token = "cache-auth-token-0123456789";
  const [pg, redis, fakes] = await Promise.all([startPostgres(), startRedis({ password: token, tls: server }), startFakes()]);
  const dir = await mkdtemp(path.join(tmpdir(), "agent-ca-"));
  const caFile = path.join(dir, "ca.pem");
  await writeFile(caFile, server.cert);
  const apps: SpawnedApp[] = [];
  const spawnOn = async (extra: Record<string, string>) => {
    const ports = { PORT: String(await freePort()), METRICS_PORT: String(await freePort()) };
    const urls = { databaseUrl: pg.url, redisUrl: redis.url, ollamaUrl: fakes.ollama.url, qdrantUrl: fakes.qdrant.url };
    // No copy of answers in the process: a cached answer can only have come from Redis.
    const app = await spawnApp(appEnv(urls, { ...ports, RESPONSE_LOCAL_CACHE_ENTRIES: "0", ...extra }));
    apps.push(app);
    return { user: api(app.url, USER_KEY), ready: () => api(`http://127.0.0.1:${ports.METRICS_PORT}`).get("/health/ready") };
  };
  try {
    assert.match(redis.url, /^rediss:\/\/:[^@]+@localhost:\d+$/);
    const [trusting, untrusting, otherName] = await Promise.all([
      spawnOn({ NODE_EXTRA_CA_CERTS: caFile }),
      spawnOn({}),
      // The same server by an address its certificate does not name.
      spawnOn({ NODE_EXTRA_CA_CERTS: caFile, REDIS_URL: redis.url.replace("@localhost:", "@127.0.0.1:") }),
    ]);
    const redisCheck = async (app: typeof trusting) => (await app.ready()).body.checks.redis;
    await waitFor("the cache connected over TLS", async () => (await redisCheck(trusting)).status === "ok");
    const doc = { documents: [{ id: "tls-cache", text: "Sea otters keep a favourite rock in a pouch of skin." }] };
    assert.equal((await trusting.user.post("/api/v1/documents", doc)).status, 201);
    const question = { query: "Where do sea otters keep their favourite rock?" };
    assert.equal((await trusting.user.post("/api/v1/query", question)).body.cached, false);
    const again = await trusting.user.post("/api/v1/query", question);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.cached, true, "the answer was cached in Redis over TLS and read back");

    // A certificate from a CA the process does not trust, or for another name: no session, readiness says why, and
    // questions are answered without the cache.
    await waitFor("the untrusted certificate named", async () => /certificate/i.test((await redisCheck(untrusting)).error ?? ""));
    await waitFor("the other name named", async () => /altnames/.test((await redisCheck(otherName)).error ?? ""));
    for (const _ of [1, 2]) {
      const res = await untrusting.user.post("/api/v1/query", question);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.cached, false);
    }
  } finally {
    await Promise.all(apps.map((app) => app.stop()));
    await Promise.all([pg.stop(), redis.stop(), fakes.stop(), rm(dir, { recursive: true, force: true })]);
  }
});

test("SIGTERM lets an in-flight request finish, refuses new ones, closes its Postgres connections and exits 0; logs hold no secrets", {
  timeout: 90_000,
}, async () => {
  const [pg, redis, fakes] = await Promise.all([startPostgres(), startRedis({ password: "redis-pass-5678" }), startFakes()]);
  const port = await freePort();
  // Through a proxy that keeps what the app sends: how each of its connections to Postgres ended. The password is
  // for the log check below (trust auth ignores it).
  const pgProxy = await startTcpProxy(pg.port, { record: true });
  const databaseUrl = pg.url.replace("postgres@", "postgres:pg-pass-1234@").replace(`:${pg.port}/`, `:${pgProxy.port}/`);
  let app: SpawnedApp | undefined;
  try {
    app = await spawnApp(
      appEnv(
        { databaseUrl, redisUrl: redis.url, ollamaUrl: fakes.ollama.url, qdrantUrl: fakes.qdrant.url },
        { PORT: String(port), LOG_LEVEL: "info" },
      ),
    );
    const user = api(app.url, USER_KEY);
    assert.equal(
      (await user.post("/api/v1/documents", { documents: [{ id: "d", text: "Shutdown drains requests." }] })).status,
      201,
    );
    assert.equal((await api(app.url, "leaked-looking-key-0123456789").get("/api/v1/sessions/x")).status, 401);

    fakes.ollama.knobs.latencyMs = 1200;
    const slow = user.post("/api/v1/query", { query: "What does shutdown drain?", session_id: "drain" });
    while (!fakes.ollama.calls["/api/embed"] || fakes.ollama.calls["/api/embed"] < 2) await new Promise((r) => setTimeout(r, 20));
    app.child.kill("SIGTERM");
    // Tried until refused, not once after a fixed wait: the child takes the signal when it is next scheduled.
    const freshRefused = (url: string) =>
      new Promise<boolean>((resolve) =>
        http.get(`${url}/health`, { agent: false }, (res) => resolve(res.resume() && false)).on("error", () => resolve(true)),
      );
    let refused = false;
    for (const until = performance.now() + 3_000; !refused && performance.now() < until; await sleep(25))
      refused = await freshRefused(app.url);
    assert.ok(refused, "no new connections after SIGTERM");

    const res = await slow;
    assert.equal(res.status, 200, res.text);
    assert.match(res.body.answer, /Shutdown drains requests/);
    const { code, signal } = await app.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null });

    const sql = postgres(pg.url, { onnotice: () => {} });
    const turns = await sql`SELECT request_id FROM turns WHERE session_id = 'drain'`;
    assert.deepEqual(
      turns.map((t) => t.request_id),
      [res.body.request_id],
      "the drained request's turn was stored",
    );
    await sql.end();
    // Each ended with postgres.js' Terminate message ('X', length 4), sent as it closes a connection: the pool's (its
    // migrations' too) and the corpus listener's closed before the exit, which would otherwise have cut them.
    const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);
    const connections = pgProxy.sentByConnection();
    assert.ok(connections.length >= 2, `${connections.length} connections`);
    for (const [i, sent] of connections.entries())
      assert.ok(
        sent.subarray(-TERMINATE.length).equals(TERMINATE),
        `connection ${i} of ${connections.length} was cut, not closed`,
      );

    const { stdout } = app.output();
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      lines.some((l) => l.msg === "request" && l.req_id),
      "JSON access log with request ids",
    );
    assert.ok(lines.some((l) => l.msg === "shutting down"));
    for (const secret of [USER_KEY, "leaked-looking-key-0123456789", "pg-pass-1234", "redis-pass-5678"]) {
      assert.ok(!stdout.includes(secret), `log leaks ${secret}`);
    }
  } finally {
    fakes.ollama.knobs.latencyMs = 0;
    await app?.stop();
    await pgProxy.close();
    await Promise.all([pg.stop(), redis.stop(), fakes.stop()]);
  }
});

/** A POST of `body` on `agent`'s connection: its status, Connection header and JSON body, or the error that cut it. */
function postOn(agent: http.Agent, url: string, body: unknown) {
  return new Promise<{ status?: number; connection?: string; body?: any; reused: boolean; error?: string }>((resolve) => {
    const text = JSON.stringify(body);
    const req = http.request(`${url}/api/v1/query`, {
      method: "POST",
      agent,
      headers: {
        authorization: `Bearer ${USER_KEY}`,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      },
    });
    req.on("response", (res) => {
      let data = "";
      res.setEncoding("utf8").on("data", (chunk) => (data += chunk));
      res.on("end", () => {
        const parsed = res.headers["content-type"]?.includes("json") ? JSON.parse(data) : data;
        resolve({ status: res.statusCode, connection: res.headers.connection, body: parsed, reused: req.reusedSocket });
      });
      res.on("error", (err) => resolve({ error: err.message, body: data, reused: req.reusedSocket }));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message, reused: req.reusedSocket }));
    req.end(text);
  });
}

/** One keep-alive client: requests back to back on one connection until the server stops taking them. */
async function keepAliveClient(url: string, name: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const outcomes: Array<{
    status?: number;
    connection?: string;
    error?: string;
    reused?: boolean;
    sentAt: number;
    receivedAt?: number;
  }> = [];
  for (let i = 0; ; i++) {
    const sentAt = performance.now();
    const { status, connection, error, reused } = await postOn(agent, url, {
      query: `Client ${name} question ${i} about draining?`,
    });
    // A failure on a reused keep-alive connection means a request the server may have taken; on a fresh one
    // (refused, or reset from the listen backlog as the listener closes) it never reached the app.
    outcomes.push(error ? { error, reused, sentAt } : { status, connection, sentAt, receivedAt: performance.now() });
    if (error) break;
  }
  agent.destroy();
  return outcomes;
}

/**
 * Real Postgres and Redis, the fakes, and the app spawned on them with `env`, reaching both stores through proxies the
 * test can partition; everything is stopped after `run`.
 */
async function withSpawnedApp(
  env: Record<string, string>,
  run: (app: SpawnedApp, fakes: Fakes, proxies: { pg: TcpProxy; redis: TcpProxy }, databaseUrl: string) => Promise<void>,
) {
  const [pg, redis, fakes] = await Promise.all([startPostgres(), startRedis(), startFakes()]);
  const proxies = { pg: await startTcpProxy(pg.port), redis: await startTcpProxy(redis.port) };
  let app: SpawnedApp | undefined;
  try {
    const urls = {
      databaseUrl: pg.url.replace(`:${pg.port}/`, `:${proxies.pg.port}/`),
      redisUrl: `redis://127.0.0.1:${proxies.redis.port}`,
      ollamaUrl: fakes.ollama.url,
      qdrantUrl: fakes.qdrant.url,
    };
    app = await spawnApp(appEnv(urls, { PORT: String(await freePort()), ...env }));
    await run(app, fakes, proxies, pg.url);
  } finally {
    await app?.stop();
    await Promise.all([proxies.pg.close(), proxies.redis.close()]);
    await Promise.all([pg.stop(), redis.stop(), fakes.stop()]);
  }
}

/** Sends SIGTERM and waits for the exit: its code, and when the signal was sent and how long the exit took after. */
async function sigterm(app: SpawnedApp) {
  const sigtermAt = performance.now();
  app.child.kill("SIGTERM");
  const { code } = await app.exited;
  return { code, sigtermAt, exitMs: performance.now() - sigtermAt };
}

test("SIGTERM with keep-alive clients: answers in flight with Connection: close, accepts nothing more, cuts nothing, exits 0 early", {
  timeout: 90_000,
}, async () => {
  const graceMs = 8_000;
  await withSpawnedApp({ SHUTDOWN_TIMEOUT_MS: String(graceMs), RATE_LIMIT_PER_MINUTE: "100000" }, async (app, fakes) => {
    fakes.ollama.knobs.latencyMs = 150; // every query is new: embed + chat, about 300 ms in flight
    const clients = Array.from({ length: 6 }, (_, i) => keepAliveClient(app.url, String(i)));
    await new Promise((r) => setTimeout(r, 1_500));
    const { code, sigtermAt, exitMs } = await sigterm(app);
    const outcomes = (await Promise.all(clients)).flat();

    assert.equal(code, 0);
    assert.ok(exitMs < graceMs / 2, `exited ${Math.round(exitMs)} ms after SIGTERM: the drain waited for the deadline`);
    const answered = outcomes.filter((o) => o.status !== undefined);
    assert.ok(answered.length >= 6, "the clients were served before SIGTERM");
    assert.ok(
      answered.every((o) => o.status === 200),
      JSON.stringify(answered.filter((o) => o.status !== 200)),
    );
    // The signal reaches the process some time after it is sent (on a busy machine, long enough for a whole request
    // to go through), so the drain is dated by the server's own answers: from the first `Connection: close` it
    // received, a client's next request is the last its connection carries, and it closes that connection too.
    const drainSeenAt = Math.min(...outcomes.filter((o) => o.connection === "close").map((o) => o.receivedAt!));
    assert.ok(drainSeenAt > sigtermAt, "the drain's first Connection: close came after SIGTERM");
    const servedAfter = outcomes.filter((o) => o.sentAt > drainSeenAt && o.status !== undefined);
    assert.ok(servedAfter.length <= 6, `keep-alive connections kept being served after the drain began: ${servedAfter.length}`);
    assert.ok(
      servedAfter.every((o) => o.connection === "close"),
      JSON.stringify(servedAfter),
    );
    const cut = outcomes.filter((o) => o.error && o.reused);
    assert.deepEqual(cut, [], "no request sent on an open connection was cut");
    const last = (await Promise.all(clients)).map((c) => c.at(-2));
    assert.ok(
      last.every((o) => o?.connection === "close"),
      `the answer in flight at SIGTERM closes its connection: ${JSON.stringify(last)}`,
    );
  });
});

/** A streamed query read as it comes: `started` once its first token arrived, `ended` with the whole body, or the cut. */
function streamQuery(url: string, query: string) {
  const decoder = new TextDecoder();
  let body = "";
  const reader = fetch(`${url}/api/v1/query`, {
    method: "POST",
    headers: { authorization: `Bearer ${USER_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ query, stream: true }),
  }).then((res) => res.body!.getReader());
  const read = async () => {
    const { value, done } = await (await reader).read();
    body += decoder.decode(value, { stream: true });
    return !done;
  };
  const started = (async () => {
    while (!body.includes("event: token") && (await read()));
  })();
  const ended = started.then(async () => {
    try {
      while (await read());
      return { body, cut: undefined };
    } catch (err) {
      return { body, cut: err };
    }
  });
  return { started, ended };
}

test("SIGTERM with streamed answers longer than the drain: each ends with an error event saying so, then exit 0", {
  timeout: 60_000,
}, async () => {
  const graceMs = 2_000;
  await withSpawnedApp({ SHUTDOWN_TIMEOUT_MS: String(graceMs) }, async (app, fakes) => {
    const text = "Tides: the moon pulls the oceans toward it twice a day, and the sun adds a little to the pull.";
    assert.equal((await api(app.url, USER_KEY).post("/api/v1/documents", { documents: [{ id: "tides", text }] })).status, 201);
    fakes.ollama.knobs.tokenDelayMs = 400; // about twenty words: eight seconds, four times the drain
    // More streams than an AbortSignal's 10 listeners before Node warns of a leak.
    const streams = Array.from({ length: 12 }, (_, i) => streamQuery(app.url, `What causes the tides, take ${i}?`));
    await Promise.all(streams.map((s) => s.started));
    const [{ code, exitMs }, ended] = await Promise.all([sigterm(app), Promise.all(streams.map((s) => s.ended))]);

    for (const { body, cut } of ended) {
      assert.equal(cut, undefined, "the stream ended, not cut");
      const events = parseSse(body);
      assert.ok(!events.some((e) => e.event === "done"), "the answer outlasts the drain");
      assert.equal(events.at(-1)?.event, "error", body.slice(-300));
      assert.equal(events.at(-1)?.data.error, "server shutting down: ask again");
    }
    assert.equal(code, 0);
    assert.ok(exitMs < graceMs + 2_000, `exited ${Math.round(exitMs)} ms after SIGTERM`);
    assert.doesNotMatch(app.output().stderr, /Warning/);
  });
});

test("SIGTERM after a document write's 504 waits for the write to end before closing Postgres: nothing left held", {
  timeout: 60_000,
}, async () => {
  const env = { REQUEST_TIMEOUT_MS: "3000", QDRANT_TIMEOUT_MS: "2000", SHUTDOWN_TIMEOUT_MS: "10000" };
  await withSpawnedApp(env, async (app, fakes, _proxies, databaseUrl) => {
    fakes.ollama.knobs.latencyMs = 2_600; // the embedding: the write reaches Qdrant just before its 504
    fakes.qdrant.knobs.writeMs = 1_500; // and Qdrant answers after it
    const ingest = api(app.url, USER_KEY).post("/api/v1/documents", { documents: [{ id: "held", text: "Gannets dive." }] });
    await sleep(1_000);
    const [{ code }, res] = await Promise.all([sigterm(app), ingest]);
    assert.equal(res.status, 504, res.text);
    assert.equal(code, 0);
    // Closed at the 504, its stores were gone when the write ended: its lease stayed, and the document answered 409
    // until it expired (probe CL).
    const sql = postgres(databaseUrl, { onnotice: () => {}, max: 1 });
    try {
      const held = await sql`SELECT id FROM documents WHERE writing_until > now()`;
      assert.deepEqual(
        held.map((r) => r.id),
        [],
        "no document left held",
      );
    } finally {
      await sql.end();
    }
  });
});

test("SIGTERM's notice: queries still retrieving or waiting are answered 503, a request after it on a kept-alive connection too, nothing cut", {
  timeout: 60_000,
}, async () => {
  // The notice comes at 2 s, after the drain's first look at idle connections (1 s), so the stream's connection, still
  // answering then, is kept open for a request after its end.
  const graceMs = 3_000;
  const env = { SHUTDOWN_TIMEOUT_MS: String(graceMs), OLLAMA_MAX_ANSWERS: "1", OLLAMA_SLOT_WAIT_MS: "30000", LOG_LEVEL: "warn" };
  await withSpawnedApp(env, async (app, fakes) => {
    const text = "Tides: the moon pulls the oceans toward it twice a day, and the sun adds a little to the pull.";
    assert.equal((await api(app.url, USER_KEY).post("/api/v1/documents", { documents: [{ id: "tides", text }] })).status, 201);
    fakes.ollama.knobs.tokenDelayMs = 400; // about twenty words: eight seconds, past the drain
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // The only answer slot, streamed on `agent`'s connection.
    const stream = postOn(agent, app.url, { query: "What causes the tides?", stream: true });
    await sleep(1_000);
    // Another stream of the same answer, whose client asks nothing more: its connection is idle at the deadline.
    const idleAgent = new http.Agent({ keepAlive: true });
    const follower = postOn(idleAgent, app.url, { query: "What causes the tides?", stream: true });
    const waiting = [
      postOn(new http.Agent(), app.url, { query: "What causes the tides?" }), // a JSON request following the stream's answer
      postOn(new http.Agent(), app.url, { query: "Why two tides a day?", stream: true }), // waiting for the slot
      postOn(new http.Agent(), app.url, { query: "What does the sun add?" }), // the same, as JSON
    ];
    await sleep(300);
    // And one still retrieving: its question's embedding takes six seconds.
    fakes.ollama.knobs.latencyMs = 6_000;
    waiting.push(postOn(new http.Agent(), app.url, { query: "What is still being retrieved?" }));
    await sleep(200);
    const exit = sigterm(app);
    const [streamed, followed] = await Promise.all([stream, follower]);
    for (const { error, body } of [streamed, followed]) {
      assert.equal(error, undefined, "the stream ended, not cut");
      assert.equal(parseSse(body).at(-1)?.data.error, "server shutting down: ask again");
    }
    // Asked again at once, as told, on the same connection: refused at once, where it was taken and then cut.
    const retry = await postOn(agent, app.url, { query: "What causes the tides?" });
    assert.equal(retry.reused, true, "the retry went on the stream's connection");
    for (const answer of [retry, ...(await Promise.all(waiting))]) {
      assert.equal(answer.status, 503, JSON.stringify(answer));
      assert.equal(answer.body.error, "server shutting down: ask again");
      assert.equal(answer.connection, "close");
    }
    const { code, exitMs } = await exit;
    assert.equal(code, 0);
    assert.ok(exitMs < graceMs + 2_000, `exited ${Math.round(exitMs)} ms after SIGTERM`);
    // Only a connection in its idle grace was left at the deadline: no answer was cut, and none is said to be.
    assert.doesNotMatch(app.output().stdout, /did not finish in time/);
    agent.destroy();
    idleAgent.destroy();
  });
});

test("SIGTERM while Postgres and Redis are partitioned, with replies owed on their connections: exit 0 within the grace period", {
  timeout: 60_000,
}, async () => {
  const graceMs = 2_000;
  await withSpawnedApp({ SHUTDOWN_TIMEOUT_MS: String(graceMs) }, async (app, _fakes, proxies) => {
    proxies.pg.blackhole();
    proxies.redis.blackhole();
    // Each readiness probe sends a PING and a statement that will never be answered, and gives up on them.
    for (let i = 0; i < 2; i++) {
      const ready = await api(app.url).get("/health/ready");
      assert.equal(ready.status, 503, "Postgres is critical to readiness");
    }
    const exit = await Promise.race([sigterm(app), sleep(graceMs + 8_000, undefined)]);
    assert.ok(exit, "still running 8 s after its grace period (killed by the test)");
    assert.equal(exit.code, 0);
    assert.ok(exit.exitMs < graceMs + 2_000, `exited ${Math.round(exit.exitMs)} ms after SIGTERM`);
  });
});
