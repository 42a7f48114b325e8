/**
 * `npm run bench:app`: autocannon against the real app on real Postgres + Redis with zero-latency fakes.
 *
 * This file plays two roles so the load generator never shares an event loop with the server:
 * - parent (default): starts Postgres and Redis, spawns itself as the server child, drives autocannon, prints results;
 * - child (BENCH_CHILD=1): runs the app, the Ollama/Qdrant fakes and a bare Hono route in one process.
 *
 * Reported: cache-hit query req/s and p99 next to the bare route (same process, same run) and their ratio; the full
 * RAG path's p50 (one request at a time, timed to fractions of a millisecond) minus the fakes' own p50 handler time
 * (embed + vector query + chat) = the app's overhead. Each row also gives the CPU time (user + system) per request of
 * the server child, Postgres, Redis and the load generator (machine-cpu.ts): far less noisy on a shared machine than
 * req/s, and it shows where a durable turn's cost lands (Postgres shares the cores with the app). A third route
 * (same-bytes) reads the hit's request body and answers the hit's response object without the app, so the hit's row
 * can be read against its own bytes; a fourth (same-bytes-and-turn) also writes the hit's turn through the app's
 * turn writer (group commit) before it answers: what the durable turn alone costs, and what the rest of the app adds
 * on top. The RAG floor (three upstream calls over plain HTTP) is also run with one Redis round trip before the calls
 * and the turn's commit after them.
 * BENCH_SECONDS (default 3) bounds each run; BENCH_ROUNDS (default 3) alternations of the bare route and the cache hit
 * give the median ratio; BENCH_CONNECTIONS (default 10) sets the concurrency of the throughput runs;
 * BENCH_CHILD_NODE_ARGS (e.g. "--cpu-prof") is passed to the server child's node; BENCH_ONLY=hit or =rag runs only the
 * cache-hit load or the full RAG loop and its floor (to profile one alone; no ratios printed); BENCH_DOCS=short ingests
 * the one-line documents of the bench instead of chunk-sized ones; BENCH_DURABLE=1 runs Postgres as RDS runs it
 * (server-child.ts durablePostgres: each commit waits for its WAL flush), not with the tests' settings.
 */
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { type Context, Hono } from "hono";
import { createClient } from "redis";
import type { Config } from "../app/src/config.ts";
import { timeOrderedId } from "../app/src/ids.ts";
import { createDb } from "../app/src/services/db.ts";
import type { QueryResult } from "../app/src/services/rag.ts";
import { createTurnWriter, type Turn } from "../app/src/services/turns.ts";
import { listen } from "../test/fakes/http.ts";
import { appEnv, startApp } from "../test/support/app.ts";
import { startFakes } from "../test/support/fakes.ts";
import { type CpuPerRequest, type MachineCpu, machineCpu } from "./machine-cpu.ts";
import {
  API_HEADERS,
  cacheHitRequest,
  type ServerChild,
  shortDocumentText,
  startBenchStores,
  spawnServerChild,
  stopServerChild,
  warmCache,
} from "./server-child.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DOCS = process.env.BENCH_DOCS || "chunk";
if (DOCS !== "chunk" && DOCS !== "short") throw new Error(`BENCH_DOCS=${DOCS}: expected chunk (the default) or short`);
/**
 * Chunk-sized (the default CHUNK_SIZE_CHARS is 1,200): a query's sources and its stored turn weigh what they do in use.
 * Words drawn from a 2,000-word vocabulary with a fixed seed, so the text compresses little, as prose does (gzip: 58 %
 * of five documents' size); a sentence repeated to length (3 %) understated what Postgres does with a source list.
 */
function documentText(i: number): string {
  // BENCH_DOCS=short: the documents of the issue's own bench (f00ee06), to read the ratio against the figure.
  if (DOCS === "short") return shortDocumentText(i);
  let state = 0x9e3779b9 ^ i;
  const next = () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    return (state >>> 0) / 2 ** 32;
  };
  let text = `Document ${i} is about tides, moons, oceans and gravity:`;
  while (text.length < 1_150) text += ` ${VOCABULARY[Math.floor(next() * VOCABULARY.length)]}`;
  return text.slice(0, 1_150);
}
const VOCABULARY = Array.from({ length: 2_000 }, (_, w) => (w * 2_654_435_761).toString(36).slice(-3 - (w % 6)));

async function runServerChild(): Promise<void> {
  const fakes = await startFakes();
  const app = await startApp(
    appEnv(
      {
        databaseUrl: process.env.BENCH_DATABASE_URL!,
        redisUrl: process.env.BENCH_REDIS_URL!,
        ollamaUrl: fakes.ollama.url,
        qdrantUrl: fakes.qdrant.url,
      },
      { RATE_LIMIT_PER_MINUTE: "1000000000", LOG_LEVEL: "silent", DB_POOL_MAX: "20" },
    ),
  );
  const bare = new Hono();
  bare.get("/bare", (c) => c.json({ ok: true }));
  bare.get("/cpu", (c) => c.json(process.cpuUsage()));
  // The cache hit's own bytes without the app: a JSON request body read, the hit's response object serialized.
  let hitResponse = {} as QueryResult;
  bare.put("/same-bytes", async (c) => {
    hitResponse = await c.req.json();
    return c.json({ ok: true });
  });
  bare.post("/same-bytes", async (c) => {
    await c.req.json();
    return c.json(hitResponse);
  });
  // The same, and the hit's durable turn written as the app writes it (its own pool, the app's group commit).
  const turnsSql = createDb(process.env.BENCH_DATABASE_URL!, { max: app.config.DB_POOL_MAX, connectTimeoutMs: 5_000 });
  const turns = createTurnWriter(turnsSql, app.config.DB_QUERY_TIMEOUT_MS);
  // Each in a new session, as the bench's questions are asked (no session_id).
  const recordTurn = (turn: Omit<Turn, "request_id" | "session_id">) =>
    turns.record("bench", { ...turn, request_id: timeOrderedId(), session_id: timeOrderedId() });
  const redis = await createClient({ url: process.env.BENCH_REDIS_URL! }).connect();
  bare.post("/upstream-floor", upstreamFloor(app.config, fakes.ollama.url, fakes.qdrant.url));
  // The floor with the two round trips a RAG miss cannot skip in an app that caches answers and keeps every turn:
  // the cache lookup (the app's three keys, one round trip) and the turn committed before the answer is sent.
  bare.post(
    "/upstream-floor-and-stores",
    upstreamFloor(app.config, fakes.ollama.url, fakes.qdrant.url, {
      lookup: (query) => redis.mGet([`a:${query}`, `e:${query}`, `l:${query}`]),
      record: (query, answer, sources) =>
        recordTurn({
          question: query,
          answer,
          sources: sources.map((p) => ({
            id: p.payload.document_id,
            score: p.score,
            title: p.payload.title,
            text: p.payload.text,
          })),
          model: app.config.MODEL_DEFAULT,
          prompt_tokens: 0,
          completion_tokens: 0,
          latency_ms: 0,
          cached: false,
          truncated: false,
        }),
    }),
  );
  bare.post("/same-bytes-and-turn", async (c) => {
    const { query } = await c.req.json<{ query: string }>();
    const { usage, ...hit } = hitResponse;
    await recordTurn({
      ...hit,
      question: query,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      latency_ms: 0,
    });
    return c.json(hitResponse);
  });
  bare.get("/fake-timings", (c) =>
    c.json({
      embed: fakes.ollama.timings.median("/api/embed"),
      chat: fakes.ollama.timings.median("/api/chat"),
      query: fakes.qdrant.timings.median("/collections/:name/points/query"),
    }),
  );
  bare.post("/fake-timings/reset", (c) => {
    fakes.ollama.timings.clear();
    fakes.qdrant.timings.clear();
    return c.json({ ok: true });
  });
  const bareServer = await listen(bare);
  process.stdout.write(`${JSON.stringify({ appUrl: app.url, bareUrl: bareServer.url })}\n`);
  process.once("SIGTERM", async () => {
    await app.stop();
    await Promise.all([bareServer.close(), fakes.stop(), turnsSql.end(), redis.quit()]);
    process.exit(0);
  });
}

/** One POST over node:http on a keep-alive `agent`; resolves to the whole body of a 200, rejects on any other status. */
function post(agent: Agent, url: string, headers: Record<string, string>, payload: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const length = String(Buffer.byteLength(payload));
    const req = request(url, { method: "POST", agent, headers: { ...headers, "content-length": length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.once("end", () =>
        res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${url}: HTTP ${res.statusCode}`)),
      );
    });
    req.once("error", reject);
    req.end(payload);
  });
}

/** A retrieved chunk as the Qdrant fake answers it (the app's payload fields). */
type Point = { id: string; score: number; payload: { document_id: string; title: string; text: string } };

/**
 * The full RAG path's floor on this machine: one inbound request and the same three upstream calls (embed, vector
 * query, chat with the retrieved text as context) over plain keep-alive node:http, against the same in-process fakes,
 * with none of the app (no middleware, Redis, Postgres, client libraries or fetch). With `stores`, the cache lookup
 * before the calls and the turn's commit after them, each awaited as the app awaits them.
 */
function upstreamFloor(
  config: Config,
  ollamaUrl: string,
  qdrantUrl: string,
  stores?: {
    lookup: (query: string) => Promise<unknown>;
    record: (query: string, answer: string, sources: Point[]) => Promise<void>;
  },
) {
  const agent = new Agent({ keepAlive: true });
  const postJson = async <T>(url: string, body: unknown) =>
    JSON.parse((await post(agent, url, { "content-type": "application/json" }, JSON.stringify(body))).toString()) as T;
  return async (c: Context) => {
    const { query } = await c.req.json<{ query: string }>();
    await stores?.lookup(query);
    const { embeddings } = await postJson<{ embeddings: number[][] }>(`${ollamaUrl}/api/embed`, {
      model: config.EMBED_MODEL,
      input: [query],
    });
    const { result } = await postJson<{ result: { points: Point[] } }>(
      `${qdrantUrl}/collections/${config.QDRANT_COLLECTION}/points/query`,
      { query: embeddings[0], limit: config.DEFAULT_TOP_K, with_payload: true },
    );
    const context = result.points.map((p) => p.payload.text).join("\n\n");
    const chat = await postJson<{ message: { content: string } }>(`${ollamaUrl}/api/chat`, {
      model: config.MODEL_DEFAULT,
      messages: [
        { role: "system", content: context },
        { role: "user", content: query },
      ],
      stream: false,
    });
    await stores?.record(query, chat.message.content, result.points);
    return c.json({ answer: chat.message.content, sources: result.points });
  };
}

/** An autocannon result and the CPU time (user + system, microseconds) per request during it, by process. */
type Run = Awaited<ReturnType<typeof autocannon>> & { cpu: CpuPerRequest };

/** The server child's CPU time so far, in microseconds (read through its bare server). */
async function serverCpu(bareUrl: string): Promise<number> {
  const { user, system } = (await (await fetch(`${bareUrl}/cpu`)).json()) as NodeJS.CpuUsage;
  return user + system;
}

async function load(title: string, meter: MachineCpu, opts: autocannon.Options): Promise<Run> {
  const { result, cpu } = await meter.measure(
    () => autocannon({ connections: CONNECTIONS, duration: SECONDS, ...opts, title }),
    (r) => r.requests.total,
  );
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${title}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { ...result, cpu };
}

/** Untimed requests before a sequential run: the code on that path is compiled by V8's optimizer before it is timed. */
const WARMUP_REQUESTS = 300;

/**
 * One connection, one request at a time, for SECONDS after WARMUP_REQUESTS: latency percentiles in fractions of a
 * millisecond (autocannon's histogram keeps whole milliseconds, too coarse for a 2 ms goal).
 */
async function sequentialLatency(url: string, meter: MachineCpu, headers: Record<string, string>, body: () => string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const timed = async (payload: string) => {
    const started = performance.now();
    await post(agent, url, headers, payload);
    return performance.now() - started;
  };
  for (let i = 0; i < WARMUP_REQUESTS; i++) await timed(body());
  const { result: times, cpu } = await meter.measure(
    async () => {
      const times: number[] = [];
      const until = performance.now() + SECONDS * 1000;
      try {
        while (performance.now() < until) times.push(await timed(body()));
      } finally {
        agent.destroy();
      }
      return times;
    },
    (times) => times.length,
  );
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50: at(0.5), p99: at(0.99), perSecond: times.length / SECONDS, cpu };
}

async function runParent(): Promise<void> {
  const [pg, redis] = await startBenchStores();
  let server: ServerChild | undefined;
  try {
    server = await spawnServerChild({
      script: fileURLToPath(import.meta.url),
      databaseUrl: pg.url,
      redisUrl: redis.url,
      nodeArgs: (process.env.BENCH_CHILD_NODE_ARGS ?? "").split(" ").filter(Boolean),
    });
    const { appUrl, bareUrl } = server;
    const meter = machineCpu(() => serverCpu(bareUrl), { postgres: pg.pid, redis: redis.pid });
    await warmCache(server, documentText);

    const hitOptions = cacheHitRequest(appUrl);
    if (process.env.BENCH_ONLY === "hit") {
      const hit = await load("cache-hit query", meter, hitOptions);
      console.log(
        `cache-hit query alone: ${Math.round(hit.requests.average)} req/s, p50 ${hit.latency.p50} ms, ` +
          `server CPU ${Math.round(hit.cpu.app)} us/request`,
      );
      return;
    }
    let n = 0;
    const ragLatency = (url = `${appUrl}/api/v1/query`) =>
      sequentialLatency(url, meter, API_HEADERS, () => JSON.stringify({ query: `Question ${n++} about tides and gravity` }));
    // The full RAG path (the fakes' own time read from its run alone), its floor, and the floor with the stores.
    const ragRuns = async () => {
      await fetch(`${bareUrl}/fake-timings/reset`, { method: "POST" });
      const rag = await ragLatency();
      const fake = (await (await fetch(`${bareUrl}/fake-timings`)).json()) as { embed: number; chat: number; query: number };
      const floor = await ragLatency(`${bareUrl}/upstream-floor`);
      const withStores = await ragLatency(`${bareUrl}/upstream-floor-and-stores`);
      return { rag, fake, floor, withStores };
    };
    if (process.env.BENCH_ONLY === "rag") {
      const { rag, floor, withStores } = await ragRuns();
      console.log(
        `full RAG query alone: p50 ${rag.p50.toFixed(2)} ms, ${Math.round(rag.perSecond)} req/s, ` +
          `server CPU ${Math.round(rag.cpu.app)} us/request; its floor: p50 ${floor.p50.toFixed(2)} ms, ` +
          `server CPU ${Math.round(floor.cpu.app)} us/request; with the lookup and the turn: p50 ` +
          `${withStores.p50.toFixed(2)} ms, server CPU ${Math.round(withStores.cpu.app)} us/request`,
      );
      return;
    }
    // Alternated, and the median round reported: this machine's speed drifts (the bare route alone has swung 2x
    // between runs), and a ratio is only worth what its two halves have in common.
    const rounds: Array<{ bare: Run; sameBytes: Run; withTurn: Run; hit: Run; ratio: number }> = [];
    for (let r = 0; r < ROUNDS; r++) {
      const bare = await load("bare Hono route", meter, { url: `${bareUrl}/bare` });
      const sameBytes = await load("bare route, same bytes", meter, { ...hitOptions, url: `${bareUrl}/same-bytes` });
      const withTurn = await load("same bytes and turn", meter, { ...hitOptions, url: `${bareUrl}/same-bytes-and-turn` });
      const hit = await load("cache-hit query", meter, hitOptions);
      rounds.push({ bare, sameBytes, withTurn, hit, ratio: hit.requests.average / bare.requests.average });
    }
    const { bare, sameBytes, withTurn, hit, ratio } = [...rounds].sort((a, b) => a.ratio - b.ratio)[
      Math.floor(rounds.length / 2)
    ]!;

    const { rag, fake, floor, withStores } = await ragRuns();
    const fakeP50 = fake.embed + fake.query + fake.chat;

    const f = (x: number) => x.toFixed(2);
    console.log(`\nbenchmark: ${SECONDS} s per run, ${CONNECTIONS} connections (full RAG path: 1 connection); median round`);
    const us = (x: number | undefined) => (x === undefined ? "n/a" : Math.round(x));
    const cpuColumns = ({ app, loadGenerator, postgres, redis, machine }: CpuPerRequest) => ({
      "server CPU us/req": us(app),
      "Postgres us/req": us(postgres),
      "Redis us/req": us(redis),
      "load gen us/req": us(loadGenerator),
      "machine us/req": us(machine),
    });
    const row = (r: Run) => ({
      "req/s": Math.round(r.requests.average),
      "p50 ms": r.latency.p50,
      "p99 ms": r.latency.p99,
      ...cpuColumns(r.cpu),
    });
    const latencyRow = (r: Awaited<ReturnType<typeof ragLatency>>) => ({
      "req/s": Math.round(r.perSecond),
      "p50 ms": f(r.p50),
      "p99 ms": f(r.p99),
      ...cpuColumns(r.cpu),
    });
    console.table({
      "bare Hono route": row(bare),
      "bare route, cache hit's bytes": row(sameBytes),
      "... and the hit's turn write": row(withTurn),
      "cache-hit query": row(hit),
      "full RAG query": latencyRow(rag),
      "RAG floor: 3 upstream calls": latencyRow(floor),
      "... and cache lookup, turn write": latencyRow(withStores),
    });
    console.log(
      `cache-hit / bare throughput ratio: ${f(ratio)} (median of ${ROUNDS} rounds: ${rounds
        .map((r) => f(r.ratio))
        .join(", ")}; goal >= 0.50)`,
    );
    console.log(
      `cache-hit / bare route with the hit's bytes: ${f(hit.requests.average / sameBytes.requests.average)} ` +
        `(what the app adds over reading the request and writing the response); server CPU per request ` +
        `${us(hit.cpu.app)} / ${us(sameBytes.cpu.app)} / ${us(bare.cpu.app)} us (hit / same bytes / bare)`,
    );
    console.log(
      `bare route with the hit's bytes and its turn write / with the bytes alone: ` +
        `${f(withTurn.requests.average / sameBytes.requests.average)} (what the durable turn costs without the rest of ` +
        `the app); cache hit / that route: ${f(hit.requests.average / withTurn.requests.average)}`,
    );
    console.log(
      `that route / bare: ${f(withTurn.requests.average / bare.requests.average)} by req/s, ` +
        `${f(bare.cpu.app / withTurn.cpu.app)} by server CPU per request: the ceiling of the cache-hit ratio for any ` +
        `app that commits each turn before it answers (that route has no auth, validation, cache or metrics)`,
    );
    if (bare.cpu.machine !== undefined && hit.cpu.machine !== undefined) {
      // With every core busy, each route's req/s is the machine's CPU over its CPU per request, wherever that is spent.
      const turn = withTurn.cpu.machine! - sameBytes.cpu.machine!;
      const turnInPostgres = withTurn.cpu.postgres! - sameBytes.cpu.postgres!;
      console.log(
        `whole machine (server + load generator + Postgres + Redis) per request: bare ${us(bare.cpu.machine)}, hit's ` +
          `bytes ${us(sameBytes.cpu.machine)}, and its turn ${us(withTurn.cpu.machine)}, cache hit ` +
          `${us(hit.cpu.machine)} us; bare / cache hit by it: ${f(bare.cpu.machine / hit.cpu.machine)} (by req/s: ` +
          `${f(ratio)}). The turn write alone: ${us(turn)} us, ${us(turnInPostgres)} of them in Postgres, against ` +
          `${us(bare.cpu.machine)} for the whole bare request`,
      );
    }
    console.log(
      `fakes' own p50 per RAG query: embed ${f(fake.embed)} + vector query ${f(fake.query)} + chat ${f(fake.chat)} = ${f(fakeP50)} ms`,
    );
    console.log(
      `full RAG p50 overhead over the fakes: ${f(rag.p50 - fakeP50)} ms (p50 ${f(rag.p50)} ms - ${f(fakeP50)} ms; goal <= 2 ms)`,
    );
    console.log(
      `full RAG p50 over its floor (the request and the three upstream calls over plain HTTP, without the app): ` +
        `${f(rag.p50 - floor.p50)} ms (${f(rag.p50)} - ${f(floor.p50)} ms)`,
    );
    console.log(
      `that floor with the cache lookup and the turn write, over the fakes: ${f(withStores.p50 - fakeP50)} ms: the ` +
        `least overhead on this machine for any app that looks up its cache and commits the turn before it answers; ` +
        `full RAG / that route: ${f(rag.p50 / withStores.p50)} by p50`,
    );
    console.log(
      `load average while measuring: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")} on ${cpus().length} cores (ratios from a busy machine are noise)`,
    );
  } finally {
    if (server) await stopServerChild(server);
    await Promise.all([pg.stop(), redis.stop()]);
  }
}

if (process.env.BENCH_CHILD === "1") await runServerChild();
else await runParent();
