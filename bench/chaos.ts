/**
 * `npm run chaos`: mixed traffic (queries, some streamed; ingests; deletes; feedback) from 8 clients while faults come
 * and go: Postgres killed, partitioned, dropping new connections or gone silent; Redis cut, hung or killed; Qdrant and
 * Ollama failing or slow; Ollama failing mid-answer or its queue full. Real Postgres and Redis behind TCP proxies, the
 * Ollama and Qdrant fakes, the app in process.
 *
 * Then it checks what an operator relies on, and exits 1 if any fails:
 * - no 5xx other than 502/503/504 (each a dependency's failure, named in its message), no request without an answer
 *   within 10 s, and no unhandled rejection;
 * - the app is ready again within 15 s, with no query left counted as active and every answer slot given back;
 * - every turn acknowledged with a 200 is in its session;
 * - every document last acknowledged by an ingest has chunks, every one last deleted has none, and one whose last
 *   write failed can be deleted within seconds (at most Postgres' statement_timeout, 10 s, and a retry).
 *
 * It also prints the heap a full collection leaves, every 10 s: a series to read, not a check. The bounded caches (the
 * local answer cache holds up to 16 MiB of text) fill in the first tens of seconds and then move in a band of a few
 * MB; a leak keeps rising for as long as CHAOS_SECONDS lets it.
 *
 * CHAOS_SECONDS (default 40) bounds the traffic; CHAOS_SEED (default 7) picks the operations and faults.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startProxiedStack, USER_KEY } from "../test/support/app.ts";
import { prng } from "../test/support/fuzz.ts";
import { api } from "../test/support/http.ts";
import { metricValue, scrape } from "../test/support/metrics.ts";
import { waitFor } from "../test/support/process.ts";

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 40);
const ANSWER_SLOTS = 3;
const HEAP_SAMPLE_MS = 10_000;
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
/** The heap a full collection leaves: what the process keeps (the app and this script share it), not garbage. */
function heapAfterGc(): number {
  gc();
  return process.memoryUsage().heapUsed;
}
const rng = prng(Number(process.env.CHAOS_SEED ?? 7));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stack = await startProxiedStack({
  RATE_LIMIT_PER_MINUTE: "100000",
  REDIS_COMMAND_TIMEOUT_MS: "100",
  // Answer slots under faults: one never given back would refuse every new question.
  OLLAMA_MAX_ANSWERS: String(ANSWER_SLOTS),
  OLLAMA_SLOT_WAIT_MS: "2000",
});
const { pg, redis, fakes, pgProxy, redisProxy, app } = stack;
/** Longer than any deadline of the app (REQUEST_TIMEOUT_MS aside, which nothing here reaches): past it, a hang. */
const ANSWER_WITHIN_MS = 10_000;
const user = api(app.url, USER_KEY, { timeoutMs: ANSWER_WITHIN_MS });
const unhandled: unknown[] = [];
process.on("unhandledRejection", (reason) => unhandled.push(reason));

const statuses = new Map<string, number>();
const unexpected: string[] = [];
/** A document's last acknowledged write; "failed" when the last write answered 5xx. */
const documents = new Map<string, "ingested" | "deleted" | "failed">();
const turns: Array<{ session: string; request: string }> = [];

function record(op: string, status: number, text: string): void {
  statuses.set(`${op} ${status}`, (statuses.get(`${op} ${status}`) ?? 0) + 1);
  if (status >= 500 && ![502, 503, 504].includes(status)) unexpected.push(`${op} ${status} ${text.slice(0, 200)}`);
}

const WORDS = ["tides", "moon", "volcano", "river", "ocean", "storm", "wind", "rain", "forest", "desert"] as const;
let stopped = false;

let sent = 0;
async function client(): Promise<void> {
  while (!stopped) {
    const request = nextRequest();
    sent++;
    try {
      await request.send();
    } catch (err) {
      const hung = err instanceof Error && err.name === "TimeoutError";
      unexpected.push(`${request.name}: ${hung ? `no answer within ${ANSWER_WITHIN_MS} ms` : `client error ${String(err)}`}`);
    }
  }
}

/** A random request: its name (to report one that never answers), and how to send it and record the answer. */
function nextRequest(): { name: string; send: () => Promise<void> } {
  const r = rng.next();
  const id = `doc-${rng.int(30)}`;
  if (r < 0.5) {
    const stream = rng.chance(0.2);
    const query = `What about ${rng.pick(WORDS)} and ${rng.pick(WORDS)}?`;
    return {
      name: stream ? "streamed query" : "query",
      send: async () => {
        const res = await user.post("/api/v1/query", { query, stream });
        record("query", res.status, res.text);
        if (res.status === 200 && !stream) turns.push({ session: res.body.session_id, request: res.body.request_id });
      },
    };
  }
  if (r < 0.75) {
    const text = `${rng.pick(WORDS)} ${rng.pick(WORDS)} ${id} facts. `.repeat(1 + rng.int(40));
    return {
      name: `ingest ${id}`,
      send: async () => {
        const res = await user.post("/api/v1/documents", { documents: [{ id, text }] });
        record("ingest", res.status, res.text);
        if (res.status === 201) documents.set(id, "ingested");
        else if (res.status >= 500) documents.set(id, "failed");
      },
    };
  }
  if (r < 0.9) {
    return {
      name: `delete ${id}`,
      send: async () => {
        const res = await user.del(`/api/v1/documents/${id}`);
        record("delete", res.status, res.text);
        if (res.status === 200 || res.status === 404) documents.set(id, "deleted");
        else if (res.status >= 500) documents.set(id, "failed");
      },
    };
  }
  const rated = turns.length > 0 ? rng.pick(turns).request : undefined;
  return {
    name: "feedback",
    send: async () => {
      if (!rated) return;
      const res = await user.post("/api/v1/feedback", { request_id: rated, quality_score: 4 });
      record("feedback", res.status, res.text);
    },
  };
}

const FAULTS: ReadonlyArray<[name: string, start: () => unknown, end: () => unknown]> = [
  ["postgres killed", () => pg.halt(), () => pg.start()],
  ["postgres partitioned", () => pgProxy.blackhole(), () => pgProxy.restore()],
  ["postgres dropping new connections", () => pgProxy.cutAtFirstRequest(), () => pgProxy.restore()],
  ["postgres connections silent", () => pgProxy.silenceOpen(), () => {}],
  ["redis cut", () => redisProxy.cut(), () => redisProxy.restore()],
  ["redis hung", () => redisProxy.blackhole(), () => redisProxy.restore()],
  ["redis killed", () => redis.halt(), () => redis.start()],
  ["qdrant 503", () => (fakes.qdrant.knobs.failStatus = 503), () => (fakes.qdrant.knobs.failStatus = null)],
  ["qdrant slow", () => (fakes.qdrant.knobs.latencyMs = 400), () => (fakes.qdrant.knobs.latencyMs = 0)],
  ["ollama 500", () => (fakes.ollama.knobs.failStatus = 500), () => (fakes.ollama.knobs.failStatus = null)],
  ["ollama queue full", () => (fakes.ollama.knobs.failStatus = 503), () => (fakes.ollama.knobs.failStatus = null)],
  ["ollama slow", () => (fakes.ollama.knobs.latencyMs = 300), () => (fakes.ollama.knobs.latencyMs = 0)],
  [
    "ollama failing mid-answer",
    () => (fakes.ollama.knobs.failAfterChunks = 2),
    () => (fakes.ollama.knobs.failAfterChunks = null),
  ],
];

async function faults(): Promise<void> {
  while (!stopped) {
    await sleep(1000 + rng.next() * 2000);
    if (stopped) return;
    const [name, start, end] = rng.pick(FAULTS);
    process.stdout.write(`${name}; `);
    await start();
    await sleep(300 + rng.next() * 2500);
    await end();
  }
}

// A run that hangs says where, instead of waiting for an outer timeout.
let phase = "traffic under faults";
setTimeout(
  () => {
    console.log(`\nchaos: still in "${phase}" ${SECONDS + 120} s after the start`);
    process.exit(1);
  },
  (SECONDS + 120) * 1000,
).unref();

const running = [faults(), ...Array.from({ length: 8 }, client)];
const heapSeries: string[] = [];
const sampleHeap = setInterval(() => heapSeries.push((heapAfterGc() / 2 ** 20).toFixed(1)), HEAP_SAMPLE_MS);
await sleep(SECONDS * 1000);
clearInterval(sampleHeap);
stopped = true;
phase = "the last requests and the last fault ending";
await Promise.all(running);
phase = "checks";
console.log();
const violations: string[] = [...unexpected, ...unhandled.map((u) => `unhandled rejection: ${String(u)}`)];
try {
  await waitFor("the app ready again", async () => (await user.get("/health/ready")).status === 200, 15_000);
} catch {
  violations.push(`not ready 15 s after the last fault: ${(await api(app.metricsUrl).get("/health/ready")).text}`);
}
// Every answer slot was given back: as many new questions as there are slots, sent at once, are all answered.
const fresh = await Promise.all(
  Array.from({ length: ANSWER_SLOTS }, (_, i) => user.post("/api/v1/query", { query: `After the faults, question ${i}` })),
);
for (const res of fresh.filter((r) => r.status !== 200))
  violations.push(`a new question after the faults: ${res.status} ${res.text}`);
// Every query the app began it also ended, whatever failed on the way (a generation followed, a stream cut).
const active = metricValue(await scrape(app.metricsUrl), "active_queries");
if (active !== 0) violations.push(`active_queries is ${active} with no request in flight`);
const chunksOf = (id: string) =>
  [...(fakes.qdrant.collections.get("documents")?.points.values() ?? [])].filter((p) => p.payload.document_id === id);
for (const [id, state] of documents) {
  const stored = chunksOf(id);
  const chunks = stored.length;
  // A write's chunks are searchable once published (qdrant.ts): pending ones do not count.
  const searchable = stored.filter((p) => p.payload.pending !== true).length;
  if (state === "ingested" && searchable === 0) violations.push(`${id}: ingest acknowledged, no searchable chunks`);
  if (state === "deleted" && chunks > 0) violations.push(`${id}: delete acknowledged, ${chunks} chunks left`);
  if (state === "failed") {
    // As a client would: a 409 says Retry-After: 1. A lease the app gave up on is given back within Postgres'
    // statement_timeout (10 x DB_QUERY_TIMEOUT_MS, 10 s here), and one refused back in an outage is retried every 2 s.
    let res = await user.del(`/api/v1/documents/${id}`);
    for (let tries = 0; res.status === 409 && tries < 15; tries++) {
      await sleep(1000);
      res = await user.del(`/api/v1/documents/${id}`);
    }
    if (res.status !== 200 && res.status !== 404)
      violations.push(`${id}: after a failed write, delete ${res.status} ${res.text}`);
    else if (chunksOf(id).length > 0) violations.push(`${id}: after a failed write and a delete, chunks left`);
  }
}

const stored = new Map<string, Set<string>>();
async function turnsOf(session: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let after = ""; ; ) {
    const page = await user.get(`/api/v1/sessions/${session}?limit=500${after ? `&after=${after}` : ""}`);
    for (const t of page.body.turns ?? []) ids.add(t.request_id);
    if (!page.body.has_more) return ids;
    after = page.body.turns.at(-1).request_id;
  }
}
let lost = 0;
for (const t of turns) {
  if (!stored.has(t.session)) stored.set(t.session, await turnsOf(t.session));
  if (!stored.get(t.session)!.has(t.request)) lost++;
}
if (lost > 0) violations.push(`${lost} acknowledged turns not in their session`);

for (const [key, n] of [...statuses].sort()) console.log(`${key.padEnd(16)} ${n}`);
console.log(`turns acknowledged: ${turns.length}; documents written: ${documents.size}; violations: ${violations.length}`);
console.log(`heap after a full GC every ${HEAP_SAMPLE_MS / 1000} s, MB: ${heapSeries.join(" ")} (${sent} requests)`);
for (const v of violations.slice(0, 20)) console.log(`  ${v}`);

await stack.stop();
process.exit(violations.length > 0 ? 1 : 0);
