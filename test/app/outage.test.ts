import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { type AddressInfo, createServer } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { createClient } from "redis";
import { ADMIN_KEY, appEnv, type ProxiedStack, startApp, startProxiedStack, USER_KEY, type TestApp } from "../support/app.ts";
import type { Fakes } from "../support/fakes.ts";
import { api } from "../support/http.ts";
import { createDb } from "../../app/src/services/db.ts";
import { MIGRATION_IDLE_TIMEOUT_MS, MIGRATION_LOCK_ID, migrate } from "../../app/src/services/migrations.ts";
import { createStore } from "../../app/src/services/store.ts";
import { lockWaiters, terminationNotice, type PostgresServer } from "../support/postgres.ts";
import { waitFor } from "../support/process.ts";
import { startRedis, type RedisServer } from "../support/redis.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

// Timing bounds are the (nothing over 5 s) with room for a loaded 2-core CI machine, where a healthy query
// here can take 2 s; the 503 itself comes from DB_QUERY_TIMEOUT_MS (1 s), which the error message names.
const MAX_MS = 5_000;

/** The app reaches Postgres and Redis through proxies, so a test can stage partitions and blips that keep the data. */
let stack: ProxiedStack;
let pg: PostgresServer;
let redis: RedisServer;
let fakes: Fakes;
let pgProxy: TcpProxy;
let redisProxy: TcpProxy;
let app: TestApp;
let user: ReturnType<typeof api>;

before(async () => {
  stack = await startProxiedStack({ RATE_LIMIT_PER_MINUTE: "10000", REDIS_COMMAND_TIMEOUT_MS: "100" });
  ({ pg, redis, fakes, pgProxy, redisProxy, app } = stack);
  user = api(app.url, USER_KEY);
  const res = await user.post("/api/v1/documents", {
    documents: [{ id: "tides", text: "Tides are caused by the moon's gravity." }],
  });
  assert.equal(res.status, 201, res.text);
});
after(() => stack?.stop());

/** A connection of the test's own to Postgres, as its superuser and not through the proxy. */
const superuser = (max = 1) => postgres(pg.url, { max, onnotice: () => {} });

/** Another app on the same Redis and fakes, reaching Postgres at `databaseUrl`, for a test that needs its own pool. */
const appOn = (databaseUrl: string, overrides: Record<string, string> = {}) =>
  startApp(
    appEnv(
      { databaseUrl, redisUrl: redis.url, ollamaUrl: fakes.ollama.url, qdrantUrl: fakes.qdrant.url },
      { RATE_LIMIT_PER_MINUTE: "10000", ...overrides },
    ),
  );

const timed = async <T>(call: () => Promise<T>) => {
  const started = performance.now();
  const result = await call();
  return { result, ms: performance.now() - started };
};
const publicReady = () => api(app.url).get("/health/ready");
/** The fake Qdrant's chunks of `documentId`, pending or not, as [point id, point]. */
const storedChunks = (documentId: string) =>
  [...fakes.qdrant.collections.get("documents")!.points].filter(([, point]) => point.payload.document_id === documentId);

/** Ingests `document`, then asks `question` twice: the second answer comes from the cache. */
async function cacheAnswerFrom(document: { id: string; text: string }, question: { query: string }) {
  assert.equal((await user.post("/api/v1/documents", { documents: [document] })).status, 201);
  await user.post("/api/v1/query", question);
  assert.equal((await user.post("/api/v1/query", question)).body.cached, true);
}

test("Postgres partitioned: JSON 503 within about a second, nothing over 5 s, not ready; back within seconds", async () => {
  pgProxy.blackhole();
  try {
    const answers = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) =>
        timed(() => user.post("/api/v1/query", { query: `Partition question number ${i} about tides?` })),
      ),
      // A report may run 10x a statement's deadline; it waited all of it (10 s) for its 503.
      timed(() => api(app.url, ADMIN_KEY).get("/api/v1/admin/feedback/summary")),
    ]);
    for (const { result, ms } of answers) {
      assert.equal(result.status, 503, result.text);
      assert.equal(result.body.error, "postgres unavailable: no answer within 1000 ms");
      assert.equal(result.headers.get("retry-after"), "1");
      assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
    }
    // The questions' 503s come at their statements' deadline (1 s), not before it and not long after it.
    const questionMs = answers
      .slice(0, 8)
      .map((a) => a.ms)
      .sort((a, b) => a - b);
    assert.ok(questionMs[0]! >= 900, `first 503 after ${Math.round(questionMs[0]!)} ms`);
    assert.ok(questionMs[4]! < 2_500, `median 503 after ${Math.round(questionMs[4]!)} ms`);
    const { result: ready, ms } = await timed(publicReady);
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body, { status: "not_ready" });
    assert.ok(ms < MAX_MS, `readiness answered in ${Math.round(ms)} ms`);
  } finally {
    pgProxy.restore();
  }
  const { ms: recovery } = await timed(() => waitFor("ready again", async () => (await publicReady()).status === 200, 5_000));
  assert.ok(recovery < 3_000, `ready again after ${Math.round(recovery)} ms`);
  assert.equal((await user.post("/api/v1/query", { query: "What causes the tides after the partition?" })).status, 200);
});

test("Postgres partitioned: a question asked after a statement failed is a 503 before its model call, not after its answer", async () => {
  pgProxy.blackhole();
  try {
    const first = await user.post("/api/v1/query", { query: "Which question finds Postgres gone first?" });
    assert.equal(first.status, 503, first.text);
    fakes.ollama.knobs.generationMs = 3_000; // a model answer as long as a real one, or more
    const chats = fakes.ollama.calls["/api/chat"] ?? 0;
    const { result, ms } = await timed(() => user.post("/api/v1/query", { query: "Which question follows it into the outage?" }));
    assert.equal(result.status, 503, result.text);
    assert.match(result.body.error, /^postgres unavailable: /);
    // It ran its whole answer first: its 503 came after the model's time (probe CM).
    assert.ok(ms < 2_500, `answered in ${Math.round(ms)} ms`);
    assert.equal(fakes.ollama.calls["/api/chat"] ?? 0, chats, "no model call for a turn that cannot be stored");
  } finally {
    fakes.ollama.knobs.generationMs = 0;
    pgProxy.restore();
  }
  await waitFor("ready again", async () => (await publicReady()).status === 200, 10_000);
});

test("Postgres killed: 503 at its statements' deadline (1 s), readiness false, and back within seconds of the restart", async () => {
  await pg.halt();
  try {
    await new Promise((r) => setTimeout(r, 300)); // let the pool notice and start backing off
    // Asked together: each waits out its own deadline.
    const asked = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        timed(() => user.post("/api/v1/query", { query: `Outage question ${i} about the moon?` })),
      ),
    );
    for (const { result, ms } of asked) {
      assert.equal(result.status, 503, result.text);
      // The pool keeps trying to connect and postgres.js queues the statement meanwhile: its deadline answers (a
      // connection that had not yet seen the shutdown would answer with its error at once).
      assert.match(result.body.error, /^postgres unavailable: /);
      assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
    }
    const times = asked.map(({ ms }) => ms).sort((a, b) => a - b);
    assert.ok(times[2]! >= 900 && times[2]! < 2_500, `503s after ${times.map(Math.round).join(", ")} ms`);
    assert.equal((await publicReady()).status, 503);
    // Long enough for postgres.js' default backoff (3^n/100 s, shared by the pool) to grow to several seconds.
    await new Promise((r) => setTimeout(r, 4_000));
  } finally {
    await pg.start();
  }
  const { ms: recovery } = await timed(() => waitFor("ready again", async () => (await publicReady()).status === 200, 10_000));
  assert.ok(recovery < 3_000, `ready again after ${Math.round(recovery)} ms`);
});

test("Postgres dropping each connection as it starts (a restart or failover): 503s, and the process stays up", async () => {
  // postgres.js 3.4.9 runs a type query as each connection's first statement and drops its promise: an error there is
  // an unhandled rejection, which ends a Node process (porsager/postgres#1192, #1223).
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", record);
  try {
    pgProxy.cutAtFirstRequest(terminationNotice());
    try {
      for (let i = 0; i < 3; i++) {
        const { result, ms } = await timed(() => user.post("/api/v1/query", { query: `Failover question ${i} on tides?` }));
        assert.equal(result.status, 503, result.text);
        assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
      }
    } finally {
      pgProxy.restore();
    }
    await waitFor(
      "queries answered again",
      async () => (await user.post("/api/v1/query", { query: "What causes the tides after the failover?" })).status === 200,
      5_000,
    );
    assert.deepEqual(unhandled.map(String), []);
  } finally {
    process.off("unhandledRejection", record);
  }
});

test("Postgres accepting connections and closing them at once: the app reconnects a few times a second, not in a loop", async () => {
  const before = pgProxy.connections();
  pgProxy.cut(); // each new connection is accepted, then closed
  try {
    await sleep(2_000); // no requests: the LISTEN connection reconnects on its own
  } finally {
    pgProxy.restore();
  }
  const attempts = pgProxy.connections() - before;
  assert.ok(attempts >= 2 && attempts <= 20, `${attempts} connections in 2 s`);
  await waitFor("ready again", async () => (await publicReady()).status === 200, 5_000);
});

test("Postgres killed mid-ingest: no chunk reaches Qdrant without its record, so nothing is left undeletable", async () => {
  fakes.ollama.knobs.latencyMs = 600;
  const embedsBefore = fakes.ollama.calls["/api/embed"] ?? 0;
  let ingest: ReturnType<typeof user.post> | undefined;
  try {
    ingest = user.post("/api/v1/documents", {
      documents: [{ id: "orphan", text: "Lighthouses guide ships along rocky coasts." }],
    });
    await waitFor("the embedding call", async () => (fakes.ollama.calls["/api/embed"] ?? 0) > embedsBefore, 5_000);
    await pg.halt();
  } finally {
    fakes.ollama.knobs.latencyMs = 0;
  }
  const res = await ingest;
  await pg.start();
  assert.equal(res.status, 503, res.text);
  await waitFor("ready again", async () => (await publicReady()).status === 200, 10_000);

  assert.equal(storedChunks("orphan").length, 0, "the failed ingest left no searchable chunk");
  const query = await user.post("/api/v1/query", { query: "Lighthouses guide ships along rocky coasts." });
  assert.ok(!query.body.sources.some((s: { id: string }) => s.id === "orphan"));

  const retried = await user.post("/api/v1/documents", {
    documents: [{ id: "orphan", text: "Lighthouses guide ships along rocky coasts." }],
  });
  assert.equal(retried.status, 201, retried.text);
  assert.equal((await user.del("/api/v1/documents/orphan")).status, 200, "an ingested document can always be deleted");
  assert.equal(storedChunks("orphan").length, 0);
});

test("an ingest answers 201 once its documents are free: a release refused at first is tried again before the answer", async () => {
  // The release's first two tries fail as a statement waiting past lock_timeout would (a sequence counts them: it
  // is not rolled back with the refused statement).
  const db = superuser();
  await db`CREATE SEQUENCE release_tries`;
  await db.unsafe(`CREATE FUNCTION refuse_first_releases() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('release_tries') <= 2 THEN
        RAISE EXCEPTION 'lock not granted (staged)' USING ERRCODE = '55P03';
      END IF;
      RETURN NEW;
    END $$`);
  await db.unsafe(`CREATE TRIGGER refuse_first_releases BEFORE UPDATE ON documents FOR EACH ROW
    WHEN (OLD.id = 'release-blip' AND OLD.writer IS NOT NULL AND NEW.writer IS NULL)
    EXECUTE FUNCTION refuse_first_releases()`);
  try {
    const res = await user.post("/api/v1/documents", {
      documents: [{ id: "release-blip", text: "Breakwaters calm the water inside a harbour." }],
    });
    assert.equal(res.status, 201, res.text);
    const del = await user.del("/api/v1/documents/release-blip");
    assert.equal(del.status, 200, `deletable as soon as the ingest answered: ${del.text}`);
    const [{ tries }] = await db<{ tries: string }[]>`SELECT last_value::text AS tries FROM release_tries`;
    assert.equal(tries, "3", "two refused tries, then the release");
  } finally {
    await db`DROP TRIGGER refuse_first_releases ON documents`;
    await db`DROP FUNCTION refuse_first_releases()`;
    await db`DROP SEQUENCE release_tries`;
    await db.end();
  }
});

test("Postgres gone as an ingest gives its documents back: they are free again within seconds of its return, not minutes", async () => {
  fakes.qdrant.knobs.latencyMs = 600;
  const qdrantCalls = () => Object.values(fakes.qdrant.calls).reduce((a, b) => a + b, 0);
  const callsBefore = qdrantCalls();
  let ingest: ReturnType<typeof user.post> | undefined;
  try {
    ingest = user.post("/api/v1/documents", { documents: [{ id: "held", text: "Harbours shelter boats from storms." }] });
    // The record and its lease are in Postgres once the ingest reaches Qdrant; Postgres goes before the lease comes back.
    await waitFor("the ingest's first Qdrant call", async () => qdrantCalls() > callsBefore, 5_000);
    pgProxy.blackhole();
    const res = await ingest;
    assert.equal(res.status, 503, res.text);
  } finally {
    pgProxy.restore();
    fakes.qdrant.knobs.latencyMs = 0;
  }
  // The lease lasts 2 x REQUEST_TIMEOUT_MS (120 s here); the app gives it back once Postgres answers again.
  const { ms } = await timed(() =>
    waitFor("the document deletable", async () => (await user.del("/api/v1/documents/held")).status === 200, 10_000),
  );
  assert.ok(ms < 5_000, `deletable after ${Math.round(ms)} ms`);
});

test("after the corpus version goes back (a database restored from a snapshot), the next ingest still invalidates", async () => {
  const sql = superuser();
  try {
    const question = { query: "What is the launch code of the rocket?", top_k: 1 };
    const ingest = (text: string) => user.post("/api/v1/documents", { documents: [{ id: "launch", text }] });
    assert.equal((await ingest("The rocket's launch code is AAA.")).status, 201);
    await user.post("/api/v1/query", question);
    assert.equal((await user.post("/api/v1/query", question)).body.cached, true);
    // The replica holds the version it last saw; the row now says one from three bumps before.
    await sql`UPDATE corpus_version SET version = version - 3`;
    assert.equal((await ingest("The rocket's launch code is BBB.")).status, 201);
    const after = await user.post("/api/v1/query", question);
    // Before: the bump went to a version below the one held, every replica ignored it, and AAA was served as cached.
    assert.equal(after.body.cached, false, JSON.stringify(after.body));
    assert.match(after.body.sources[0].text, /BBB/);
  } finally {
    await sql.end();
  }
});

test("an ingest during a Redis blip still invalidates cached answers (the corpus version lives in Postgres)", async () => {
  const question = { query: "What do volcanoes and tides have in common?", top_k: 5 };
  assert.equal((await user.post("/api/v1/query", question)).body.cached, false);
  assert.equal((await user.post("/api/v1/query", question)).body.cached, true);

  redisProxy.cut(); // the connection drops; Redis keeps every cached answer
  try {
    const ingest = await user.post("/api/v1/documents", {
      documents: [{ id: "volcanoes", text: "Volcanoes and tides both answer to forces deep inside and around the Earth." }],
    });
    assert.equal(ingest.status, 201, ingest.text);
  } finally {
    redisProxy.restore();
  }
  await waitFor(
    "redis reconnect",
    async () => (await api(app.metricsUrl).get("/health/ready")).body.checks.redis.status === "ok",
    10_000,
  );

  const after = await user.post("/api/v1/query", question);
  assert.equal(after.status, 200, after.text);
  assert.equal(after.body.cached, false, "the answer cached before the ingest is not served");
  assert.ok(
    after.body.sources.some((s: { id: string }) => s.id === "volcanoes"),
    "the new document is retrieved",
  );
});

test("Redis hung (connection open, no answers): queries answer uncached within the command deadline, and the app reconnects", async () => {
  const redisReady = async () => (await api(app.metricsUrl).get("/health/ready")).body.checks.redis.status;
  const connectionsBefore = redisProxy.connections();
  redisProxy.blackhole();
  try {
    const answers = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        timed(() => user.post("/api/v1/query", { query: `Hung cache question number ${i} about tides?` })),
      ),
    );
    for (const { result, ms } of answers) {
      assert.equal(result.status, 200, result.text);
      assert.equal(result.body.cached, false, "a lookup past the deadline is a miss");
      assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
    }
    assert.equal(await redisReady(), "fail");
    // TCP would hold the silent connection for minutes: the app gave up on it and opened another.
    assert.ok(redisProxy.connections() > connectionsBefore, "a new connection after the missed deadlines");
  } finally {
    redisProxy.restore();
  }
  await waitFor("redis reconnect", async () => (await redisReady()) === "ok", 10_000);
});

test("a Redis failover that leaves the connection on the old primary, now a replica (READONLY): the app reconnects to the new one", async () => {
  const promoted = await startRedis();
  const admin = createClient({ url: redis.url });
  const newPrimary = createClient({ url: promoted.url });
  await Promise.all([admin.connect(), newPrimary.connect()]);
  const answersIn = async (client: typeof admin) => (await client.keys("response:*")).length;
  try {
    assert.equal((await user.post("/api/v1/query", { query: "What pulls the tides before the Redis failover?" })).status, 200);
    // The old primary becomes a replica of the promoted node, and the name now leads to the promoted node; the app's
    // open connection stays where it was: reads answer, writes get READONLY.
    await admin.replicaOf("127.0.0.1", promoted.port);
    redisProxy.retarget(promoted.port);
    await waitFor("the old primary to turn replica", async () => (await admin.info("replication")).includes("role:slave"));
    assert.equal(await answersIn(newPrimary), 0);
    // Each answer the app caches is a write; one READONLY makes it replace the connection.
    await waitFor(
      "an answer cached on the promoted node",
      async () => {
        const res = await user.post("/api/v1/query", { query: `Failover question ${Math.random()} on tides?` });
        assert.equal(res.status, 200, res.text);
        return (await answersIn(newPrimary)) > 0;
      },
      5_000,
    );
  } finally {
    await admin.sendCommand(["REPLICAOF", "NO", "ONE"]);
    redisProxy.retarget(redis.port);
    await Promise.all([admin.close(), newPrimary.close()]);
    await promoted.stop(); // the app's connection to it drops; the next one is to the first node again
  }
  await waitFor(
    "redis reconnect",
    async () => (await api(app.metricsUrl).get("/health/ready")).body.checks.redis.status === "ok",
  );
});

test("readiness says Redis fails while it refuses writes (read-only, as a replica), and ok once it takes them again", async () => {
  const admin = createClient({ url: redis.url });
  await admin.connect();
  const redisCheck = async () => (await api(app.metricsUrl).get("/health/ready")).body.checks.redis.status;
  try {
    await admin.replicaOf("127.0.0.1", 1); // a primary that never answers: read-only, its data kept, PING answered
    await waitFor("readiness to see the read-only Redis", async () => (await redisCheck()) === "fail", 5_000);
  } finally {
    await admin.sendCommand(["REPLICAOF", "NO", "ONE"]);
    await admin.close();
  }
  await waitFor("readiness to see Redis take writes", async () => (await redisCheck()) === "ok");
});

test("readiness says why Redis refuses a new connection (a password set on it), not only that the client is offline", async () => {
  const admin = createClient({ url: redis.url });
  await admin.connect();
  const redisCheck = async () => (await api(app.metricsUrl).get("/health/ready")).body.checks.redis;
  try {
    await admin.configSet("requirepass", "set-while-running-0123");
    // The app's connection goes; its next one must authenticate, and has no password.
    redisProxy.cut();
    redisProxy.restore();
    await waitFor("readiness to name the refusal", async () => /NOAUTH/.test((await redisCheck()).error ?? ""), 5_000);
    assert.match((await redisCheck()).error, /^The client is offline: .*NOAUTH/);
  } finally {
    await admin.configSet("requirepass", "");
    await admin.close();
  }
  await waitFor("readiness to see Redis take writes", async () => (await redisCheck()).status === "ok", 5_000);
});

test("Postgres connections left on a node that turned read-only (a switchover, a stale DNS answer): the pool reconnects", async () => {
  const admin = superuser();
  const question = () => user.post("/api/v1/query", { query: `Read-only question ${Math.random()} on tides?` });
  try {
    assert.equal((await question()).status, 200);
    // Every open session turns read-only at the reload; a new one is writable (the database's setting wins there),
    // as a new connection would reach the new primary.
    await admin.unsafe("ALTER DATABASE postgres SET default_transaction_read_only = off");
    await admin.unsafe("ALTER SYSTEM SET default_transaction_read_only = on");
    await admin`SELECT pg_reload_conf()`;
    // A backend applies the reload when it next reads a command, and a question may take a connection opened since
    // the ALTER DATABASE: either passes, so ask until one fails.
    let first = await question();
    await waitFor(
      "a question on a connection turned read-only",
      async () => {
        if (first.status === 200) first = await question();
        return first.status !== 200;
      },
      5_000,
    );
    assert.equal(first.status, 503, first.text);
    assert.equal(first.body.error, "postgres unavailable: 25006");
    await waitFor("turns written on new connections", async () => (await question()).status === 200, 5_000);
  } finally {
    await admin.unsafe("ALTER SYSTEM RESET default_transaction_read_only");
    await admin`SELECT pg_reload_conf()`;
    await admin.end();
    const writer = superuser();
    await writer.unsafe("ALTER DATABASE postgres RESET default_transaction_read_only");
    await writer.end();
  }
});

test("readiness says Postgres fails while it refuses writes (read-only, as a standby), though it answers reads", async () => {
  // An app of its own that writes nothing meanwhile (a corpus version refresh, a retention sweep): a write's 25006
  // drops the pool, as it should, and cuts its reads too.
  const quiet = await appOn(pg.url, { TURN_RETENTION_DAYS: "0", CORPUS_VERSION_REFRESH_MS: "600000" });
  const reader = api(quiet.url, USER_KEY);
  const admin = superuser();
  const postgresCheck = async () => (await api(quiet.metricsUrl).get("/health/ready")).body.checks.postgres;
  try {
    await admin.unsafe("ALTER SYSTEM SET default_transaction_read_only = on");
    await admin`SELECT pg_reload_conf()`;
    // Every open session of the app turns read-only at the reload (none was opened under a database-level setting),
    // so none is terminated: a terminated idle connection answers its next statement 57P01, a 503.
    await waitFor("readiness to see the read-only Postgres", async () => (await postgresCheck()).status === "fail", 5_000);
    assert.match(JSON.stringify(await postgresCheck()), /25006/);
    // Readiness (public, no key) only reports it: dropping the pool at each probe cut the reads a read-only node serves.
    const reads: number[] = [];
    const until = performance.now() + 1_500;
    await Promise.all([
      ...Array.from({ length: 4 }, async () => {
        while (performance.now() < until) reads.push((await reader.get("/api/v1/sessions/no-such-session")).status);
      }),
      (async () => {
        while (performance.now() < until) await Promise.all([postgresCheck(), sleep(100)]);
      })(),
    ]);
    assert.deepEqual([...new Set(reads)], [404], `${reads.filter((s) => s !== 404).length} of ${reads.length} reads failed`);
  } finally {
    await admin.unsafe("ALTER SYSTEM RESET default_transaction_read_only");
    await admin`SELECT pg_reload_conf()`;
    await admin.end();
    // Back to ok once writes are taken again, and the app stopped whatever failed before.
    await waitFor("readiness to see Postgres take writes", async () => (await postgresCheck()).status === "ok", 5_000).finally(
      () => quiet.stop(),
    );
  }
});

test("Postgres connections gone silent (a failover that did not reset them): 503s, then new connections within seconds", async () => {
  // A pool of one, so the silent connection is all the pool has, as a busy pool's connections all are.
  const proxy = await startTcpProxy(pg.port);
  const small = await appOn(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`, { DB_POOL_MAX: "1" });
  try {
    const client = api(small.url, USER_KEY);
    assert.equal((await client.post("/api/v1/query", { query: "What causes the tides before the failover?" })).status, 200);
    const connectionsBefore = proxy.connections();
    proxy.silenceOpen();
    const { result, ms } = await timed(() => client.post("/api/v1/query", { query: "What causes the tides in the failover?" }));
    assert.equal(result.status, 503, result.text);
    assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
    // TCP would keep the silent connection for minutes: the app drops it after a few missed deadlines.
    await waitFor(
      "queries answered on a new connection",
      async () => (await client.post("/api/v1/query", { query: "What causes the tides after the failover?" })).status === 200,
      10_000,
    );
    assert.ok(proxy.connections() > connectionsBefore, "a new connection was opened");
  } finally {
    await small.stop();
    await proxy.close();
  }
});

test("Postgres refusing new connections (max_connections reached, FATAL 53300): 503 naming the code, then back", async () => {
  // As in production the app logs in as a role that is not a superuser: a role's connection limit (which superusers
  // ignore) refuses a new connection with the same FATAL 53300 as a full max_connections.
  const admin = superuser();
  await admin.unsafe(`
    CREATE ROLE capped LOGIN;
    GRANT ALL ON SCHEMA public TO capped;
    GRANT ALL ON ALL TABLES IN SCHEMA public TO capped;
    GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO capped`);
  const capped = await appOn(`postgres://capped@127.0.0.1:${pg.port}/postgres`);
  try {
    const client = api(capped.url, USER_KEY);
    assert.equal((await client.post("/api/v1/query", { query: "What causes the tides before the limit?" })).status, 200);
    await admin.unsafe(`ALTER ROLE capped CONNECTION LIMIT 0`);
    await admin.unsafe(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'capped'`);
    const errors: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { result, ms } = await timed(() => client.post("/api/v1/query", { query: `Refused question ${i} on tides?` }));
      assert.equal(result.status, 503, result.text);
      assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
      errors.push(result.body.error);
    }
    // The first may still reach a backend that is being terminated (57P01); the ones after it are refused.
    assert.equal(errors.at(-1), "postgres unavailable: 53300", errors.join(", "));
    assert.equal((await api(capped.url).get("/health/ready")).status, 503);
    await admin.unsafe(`ALTER ROLE capped CONNECTION LIMIT -1`);
    await waitFor(
      "queries answered again",
      async () => (await client.post("/api/v1/query", { query: "What causes the tides after the limit?" })).status === 200,
      5_000,
    );
  } finally {
    await capped.stop();
    await admin.end();
  }
});

test("statements waiting on a lock held elsewhere give their connection back at the deadline: the pool stays usable", async () => {
  const small = await appOn(pg.url, { DB_POOL_MAX: "2" });
  const holder = superuser(2);
  const client = api(small.url, USER_KEY);
  let releaseLock!: () => void;
  const lockHeld = new Promise<void>((resolve) => {
    releaseLock = resolve;
  });
  try {
    assert.equal((await client.post("/api/v1/documents", { documents: [{ id: "locked", text: "Reefs." }] })).status, 201);
    // A session elsewhere (a psql left open, a long report) holds the document's row.
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const transaction = holder.begin(async (tx) => {
      await tx`SELECT id FROM documents WHERE id = 'locked' FOR UPDATE`;
      locked();
      await lockHeld;
    });
    await lockTaken;
    // As many deletes as the pool has connections: each waits on the row.
    const deletes = await Promise.all([1, 2].map(() => timed(() => client.del("/api/v1/documents/locked"))));
    for (const { result, ms } of deletes) {
      assert.equal(result.status, 503, result.text);
      assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
    }
    // Without a server-side bound both statements would still wait, holding both connections until the lock goes.
    const { result, ms } = await timed(() => client.post("/api/v1/query", { query: "What do reefs shelter while locked?" }));
    assert.equal(result.status, 200, result.text);
    assert.ok(ms < MAX_MS, `answered in ${Math.round(ms)} ms`);
    // Postgres ends each wait at lock_timeout (DB_QUERY_TIMEOUT_MS, 1 s), give or take a busy machine's scheduling.
    await waitFor(
      "no statement of the app waiting on the lock",
      async () => (await lockWaiters(holder, { application: "agent-api" })) === 0,
      3_000,
    );
    releaseLock();
    await transaction;
    assert.equal((await client.del("/api/v1/documents/locked")).status, 200);
  } finally {
    releaseLock();
    await small.stop();
    await holder.end();
  }
});

test("a question answered 503 by a slow Postgres, then committed, is taken back, and a feedback replaced: each retry stores one", async () => {
  const seed = await user.post("/api/v1/query", { query: "What causes the tides we rate below?" });
  assert.equal(seed.status, 200, seed.text);
  const question = { query: "Which question is asked again after a slow commit?", session_id: `slow-${Date.now()}` };
  const feedback = { request_id: seed.body.request_id, quality_score: 2, comment: `after a slow commit ${Date.now()}` };
  const admin = superuser();
  const rows = async () => {
    const [turns] = await admin`SELECT count(*)::int AS n FROM turns WHERE session_id = ${question.session_id}`;
    const [notes] = await admin`SELECT count(*)::int AS n FROM feedback WHERE comment = ${feedback.comment}`;
    return [turns!.n, notes!.n];
  };
  try {
    // Each insert takes 1.5 s (a slow disk, a checkpoint): past DB_QUERY_TIMEOUT_MS, within statement_timeout.
    await admin.unsafe(`
      CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
      CREATE TRIGGER slow_turns AFTER INSERT ON turns FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();
      CREATE TRIGGER slow_feedback AFTER INSERT ON feedback FOR EACH STATEMENT EXECUTE FUNCTION slow_insert()`);
    const [asked, rated] = await Promise.all([user.post("/api/v1/query", question), user.post("/api/v1/feedback", feedback)]);
    assert.deepEqual([asked.status, rated.status], [503, 503], `${asked.text} ${rated.text}`);
    // Waits for both inserts to end (a trigger's DDL waits for the statements using the table).
    await admin.unsafe("DROP TRIGGER slow_turns ON turns; DROP TRIGGER slow_feedback ON feedback; DROP FUNCTION slow_insert()");
    // The turn is taken back; the feedback stays, for its retry to replace (taken back, it would also take away the
    // rating it replaced).
    await waitFor("the late turn taken back", async () => (await rows())[0] === 0, 2_000);
    assert.deepEqual(await rows(), [0, 1]);
    // The client asks again, as the 503 told it to.
    const again = await Promise.all([user.post("/api/v1/query", question), user.post("/api/v1/feedback", feedback)]);
    assert.deepEqual(
      again.map((r) => r.status),
      [200, 201],
    );
    assert.deepEqual(await rows(), [1, 1], "the question and the feedback stored once each");
  } finally {
    await admin.unsafe("DROP TRIGGER IF EXISTS slow_turns ON turns; DROP TRIGGER IF EXISTS slow_feedback ON feedback");
    await admin.end();
  }
});

test("a replica started while Postgres is down comes up once it is back instead of exiting; a refusal waiting cannot cure exits at once", async () => {
  const viaProxy = stack.env.DATABASE_URL!;
  pgProxy.cut();
  const starting = timed(() => appOn(viaProxy, { DB_STARTUP_WAIT_MS: "30000" }));
  let settled = false;
  void starting.finally(() => (settled = true)).catch(() => {});
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(settled, false, "still waiting for Postgres");
  } finally {
    pgProxy.restore();
  }
  const { result: replica, ms } = await starting;
  try {
    assert.ok(ms < 1_500 + MAX_MS, `up ${ms} ms after it started`);
    assert.equal((await api(replica.url).get("/health/ready")).status, 200);
  } finally {
    await replica.stop();
  }

  const noDatabase = pg.url.replace(/\/[^/]*$/, "/no_such_database");
  const refused = await timed(() =>
    assert.rejects(appOn(noDatabase, { DB_STARTUP_WAIT_MS: "30000" }), /database "no_such_database" does not exist/),
  );
  assert.ok(refused.ms < MAX_MS, `a missing database is not waited for (${refused.ms} ms)`);
  // A role without CONNECT on the database: FATAL 42501, which no wait cures either.
  const admin = superuser();
  try {
    await admin`CREATE DATABASE closed_db`;
    await admin.unsafe("REVOKE CONNECT ON DATABASE closed_db FROM PUBLIC; CREATE ROLE outsider LOGIN");
  } finally {
    await admin.end();
  }
  const outsider = pg.url.replace("postgres@", "outsider@").replace(/\/[^/]*$/, "/closed_db");
  const forbidden = await timed(() =>
    assert.rejects(appOn(outsider, { DB_STARTUP_WAIT_MS: "30000" }), /permission denied for database "closed_db"/),
  );
  assert.ok(forbidden.ms < MAX_MS, `a role without CONNECT is not waited for (${forbidden.ms} ms)`);

  pgProxy.cut();
  try {
    const gaveUp = await timed(() =>
      assert.rejects(
        appOn(viaProxy, { DB_STARTUP_WAIT_MS: "1000" }),
        /postgres unavailable: start-up not done within DB_STARTUP_WAIT_MS \(1000 ms\)/,
      ),
    );
    assert.ok(gaveUp.ms >= 1_000 && gaveUp.ms < MAX_MS, `gave up after ${gaveUp.ms} ms`);
  } finally {
    pgProxy.restore();
  }
  // Each try refused at once: the end of the wait is said with what the last try met (it was that error alone).
  const closedPort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  await assert.rejects(
    appOn(`postgres://postgres@127.0.0.1:${closedPort}/postgres`, { DB_STARTUP_WAIT_MS: "1000" }),
    /postgres unavailable: start-up not done within DB_STARTUP_WAIT_MS \(1000 ms\): .*ECONNREFUSED/,
  );
});

test("a start-up Postgres never answers (the migration lock held by a stuck session) gives up at DB_STARTUP_WAIT_MS", async () => {
  const holder = superuser();
  await holder`SELECT pg_advisory_lock(${MIGRATION_LOCK_ID})`;
  try {
    const gaveUp = await timed(() =>
      assert.rejects(
        Promise.race([appOn(pg.url, { DB_STARTUP_WAIT_MS: "1500" }), sleep(15_000).then(() => "still starting")]),
        /postgres unavailable: start-up not done within DB_STARTUP_WAIT_MS \(1500 ms\)/,
      ),
    );
    // Its only try is given DB_CONNECT_TIMEOUT_MS (2 s) when that is more than the wait.
    assert.ok(gaveUp.ms >= 2_000 && gaveUp.ms < 2_000 + MAX_MS, `gave up after ${Math.round(gaveUp.ms)} ms`);
  } finally {
    await holder.end();
  }
  const noWait = await appOn(pg.url, { DB_STARTUP_WAIT_MS: "0" }); // one try, and it is not cut at once
  await noWait.stop();
});

test("a migration whose client goes silent mid-transaction frees the migration lock within seconds", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "migrations-"));
  const proxy = await startTcpProxy(pg.port);
  const migrating = createDb(pg.url.replace(`:${pg.port}/`, `:${proxy.port}/`), {
    max: 1,
    connectTimeoutMs: 2_000,
  });
  const db = superuser();
  try {
    await writeFile(path.join(dir, "001_slow.sql"), "SELECT pg_sleep(1.5)");
    await writeFile(path.join(dir, "002_next.sql"), "SELECT 1");
    void migrate(migrating, dir).catch(() => {}); // fails once its connection is closed
    // Inside the first migration: its answer and the next statement will never pass. (A fixed 250 ms wait silenced
    // the client before it took the lock when its start-up's round trips were slow.)
    await waitFor(
      "the first migration running",
      async () =>
        (await db`SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(1.5)'`).length === 1,
      5_000,
    );
    proxy.silenceOpen();
    const lockHeld = async () =>
      (await db`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${MIGRATION_LOCK_ID}`)[0]!.n;
    await sleep(1_000);
    assert.equal(await lockHeld(), 1, "held by the migration its client left");
    const freed = await timed(() => waitFor("the migration lock freed", async () => (await lockHeld()) === 0, 15_000));
    assert.ok(freed.ms < MIGRATION_IDLE_TIMEOUT_MS + MAX_MS, `freed after ${Math.round(freed.ms)} ms more`);
  } finally {
    // The pool ends first: postgres.js 3.4.9 writes the failed transaction's ROLLBACK to a connection the proxy closed
    // (its socket is null by then: an uncaught TypeError in connection.js nextWrite), but not to one it terminated.
    await Promise.allSettled([migrating.end({ timeout: 0 }), db.end()]);
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("two batch ingests of the same documents in other orders: one 201, one 409, no deadlock", async () => {
  const ids = ["order-a", "order-b", "order-c"];
  const batch = (order: string[]) => ({ documents: order.map((id) => ({ id, text: `Document ${id} about ordering.` })) });
  // Statement deadlines past Postgres' deadlock_timeout (1 s), so a deadlock shows as one, not as a timeout.
  const patient = await appOn(pg.url, { DB_QUERY_TIMEOUT_MS: "5000" });
  const client = api(patient.url, USER_KEY);
  assert.equal((await client.post("/api/v1/documents", batch(ids))).status, 201);
  const watcher = superuser(); // outside the holders' transactions, whose view of pg_stat_activity is fixed
  const [holdFirst, holdLast] = [await superuser().reserve(), await superuser().reserve()];
  const waiting = (n: number) =>
    waitFor(
      `${n} ingests waiting on rows`,
      async () => (await lockWaiters(watcher, { application: "agent-api", statement: "%INSERT INTO documents%" })) === n,
    );
  try {
    for (const [holder, id] of [
      [holdFirst, ids[0]],
      [holdLast, ids[2]],
    ] as const) {
      await holder`BEGIN`;
      await holder`SELECT id FROM documents WHERE id = ${id!} FOR UPDATE`;
    }
    // The forward batch waits on the first row; the reversed one takes the last and the middle, then waits on the
    // first behind the forward one, which then needs the middle: a deadlock, unless both lock in one order.
    const forward = client.post("/api/v1/documents", batch(ids));
    await waiting(1);
    const reversed = client.post("/api/v1/documents", batch([...ids].reverse()));
    await waiting(2);
    await holdLast`COMMIT`;
    await sleep(200);
    await holdFirst`COMMIT`;
    const statuses = (await Promise.all([forward, reversed])).map((r) => `${r.status} ${r.body.error ?? ""}`.trim());
    assert.deepEqual(statuses.map((s) => s.slice(0, 3)).sort(), ["201", "409"], JSON.stringify(statuses));
  } finally {
    holdFirst.release();
    holdLast.release();
    await watcher.end();
    await patient.stop();
  }
});

test("a Qdrant write that timed out keeps its documents held until it can no longer land: no chunk without its record, no acknowledged ingest undone", async () => {
  // Lease: 2 x REQUEST_TIMEOUT_MS = 2 s. Qdrant applies each points write 0.75 s after reading it, past the app's 0.25 s.
  const held = await appOn(pg.url, { QDRANT_TIMEOUT_MS: "250", REQUEST_TIMEOUT_MS: "1000" });
  const client = api(held.url, USER_KEY);
  const ghost = { documents: [{ id: "late-upsert", text: "Penguins huddle together through the antarctic winter." }] };
  try {
    fakes.qdrant.knobs.writeMs = 750;
    assert.equal((await client.post("/api/v1/documents", ghost)).status, 504);
    // The delete used to run here (200), and the upsert landed after it: a chunk without a record, which no delete finds.
    const early = await client.del("/api/v1/documents/late-upsert");
    assert.equal(early.status, 409, early.text);
    await waitFor("the late upsert applied", async () => storedChunks("late-upsert").length === 1, 3_000);
    fakes.qdrant.knobs.writeMs = 0;
    await waitFor("the lease expired", async () => (await client.del("/api/v1/documents/late-upsert")).status === 200, 6_000);
    assert.equal(storedChunks("late-upsert").length, 0);

    const kept = { documents: [{ id: "late-delete", text: "Otters hold hands while they sleep in kelp forests." }] };
    assert.equal((await client.post("/api/v1/documents", kept)).status, 201);
    fakes.qdrant.knobs.writeMs = 750;
    assert.equal((await client.del("/api/v1/documents/late-delete")).status, 504);
    fakes.qdrant.knobs.writeMs = 0;
    // A re-ingest used to get its 201 here, and the late delete then removed its chunks.
    assert.equal((await client.post("/api/v1/documents", kept)).status, 409);
    await waitFor("the lease expired", async () => (await client.post("/api/v1/documents", kept)).status === 201, 6_000);
    await sleep(800); // longer than any write still queued
    assert.equal(storedChunks("late-delete").length, 1, "the acknowledged ingest's chunk is still there");
  } finally {
    fakes.qdrant.knobs.writeMs = 0;
    await held.stop();
  }
});

test("a delete whose statement commits after its request gave up still invalidates the answers cached from the document", async () => {
  const db = superuser();
  const question = { query: "How do walruses haul out onto the sea ice?" };
  try {
    await cacheAnswerFrom({ id: "walrus", text: "Walruses use their long tusks to haul out onto sea ice." }, question);
    // The record's removal takes longer than DB_QUERY_TIMEOUT_MS (1 s) and commits after the 503.
    await db.unsafe(
      `CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN OLD; END $$`,
    );
    await db.unsafe(`CREATE TRIGGER slow_delete AFTER DELETE ON documents FOR EACH ROW EXECUTE FUNCTION slow_delete()`);
    const gaveUp = await user.del("/api/v1/documents/walrus");
    assert.equal(gaveUp.status, 503, gaveUp.text);
    await waitFor(
      "the removal committed",
      async () => (await db`SELECT 1 FROM documents WHERE id = 'walrus'`).length === 0,
      5_000,
    );
    assert.equal((await user.del("/api/v1/documents/walrus")).status, 404);
    // Before, the corpus version stayed put: the answer citing the deleted document was served until its TTL (600 s).
    await waitFor(
      "the cached answer dropped",
      async () => (await user.post("/api/v1/query", question)).body.cached === false,
      2_000,
    );
  } finally {
    await db.unsafe(`DROP TRIGGER IF EXISTS slow_delete ON documents; DROP FUNCTION IF EXISTS slow_delete()`);
    await db.end();
  }
});

/** Waits until the fake Qdrant has read `n` more calls on `route` (counted as each arrives). */
const qdrantCalled = (route: string, before = fakes.qdrant.calls[route] ?? 0, n = 1) =>
  waitFor(`${n} call(s) to ${route}`, async () => (fakes.qdrant.calls[route] ?? 0) >= before + n, 5_000);

test("a re-ingest whose publish Qdrant refuses sends it again once Qdrant is back: one write answers, no cached answer outlives it", async () => {
  const question = { query: "What do manatees eat in the winter months?" };
  const manatee = (text: string) => ({ documents: [{ id: "manatee", text }] });
  await cacheAnswerFrom({ id: "manatee", text: "Manatees eat only kelp in the winter." }, question);
  try {
    // The new chunk's upsert is read (and lands, pending), then Qdrant refuses the calls after it: the publish too.
    fakes.qdrant.knobs.writeMs = 300;
    const upserts = fakes.qdrant.calls["/collections/:name/points"] ?? 0;
    const failing = user.post("/api/v1/documents", manatee("Manatees eat seagrass in warm springs in winter."));
    await qdrantCalled("/collections/:name/points", upserts);
    fakes.qdrant.knobs.failStatus = 500;
    assert.equal((await failing).status, 502);
  } finally {
    fakes.qdrant.knobs.failStatus = null;
    fakes.qdrant.knobs.writeMs = 0;
  }
  // A refused publish may have been applied in part (Qdrant stops a batch at its first failing operation): it is sent
  // again until it lands. Before, the new chunk replaced the old one in place, half of a long document at a time.
  let asked = 0;
  const seen: string[][] = [];
  await waitFor(
    "the publish sent again",
    async () => {
      const res = await user.post("/api/v1/query", { query: `What do manatees eat in the cold months? (${++asked})` });
      const texts = res.body.sources.filter((s: { id: string }) => s.id === "manatee").map((s: { text: string }) => s.text);
      seen.push(texts);
      return /seagrass/.test(texts.join());
    },
    8_000,
  );
  assert.ok(
    seen.every((texts) => texts.length === 1),
    `one write of the document at a time: ${JSON.stringify(seen)}`,
  );
  const res = await user.post("/api/v1/query", question);
  assert.equal(res.body.cached, false, `the answer cached from the old chunk is dropped: ${res.text}`);
  assert.match(res.body.sources[0].text, /seagrass/);
});

test("a re-ingest whose upsert timed out and landed later leaves the old chunk answering; once its lease ends, its chunk goes and the retry replaces the old", async () => {
  // Lease: 2 x REQUEST_TIMEOUT_MS = 4 s. Qdrant applies the upsert 1.5 s after reading it, past the app's 0.5 s.
  const held = await appOn(pg.url, { QDRANT_TIMEOUT_MS: "500", REQUEST_TIMEOUT_MS: "2000" });
  const client = api(held.url, USER_KEY);
  let asked = 0;
  const question = () => ({ query: `How long do sea turtles live? (${++asked})` }); // each a cache miss
  const turtle = (text: string) => ({ documents: [{ id: "turtle", text }] });
  try {
    assert.equal((await client.post("/api/v1/documents", turtle("Sea turtles live for ten years."))).status, 201);
    fakes.qdrant.knobs.writeMs = 1_500;
    assert.equal((await client.post("/api/v1/documents", turtle("Sea turtles live for over fifty years."))).status, 504);
    await waitFor("the late upsert landed", async () => storedChunks("turtle").length === 2, 3_000);
    fakes.qdrant.knobs.writeMs = 0;
    // Before, the late upsert replaced the old chunk in place: a write answered 504 changed the answers.
    assert.match((await client.post("/api/v1/query", question())).body.sources[0].text, /ten years/);
    let retry = await client.post("/api/v1/documents", turtle("Sea turtles live for over fifty years."));
    assert.equal(retry.status, 409, "held until the lease ends: a late publish could still land");
    // Once it can no longer land, the late chunk (pending, unsearchable) is deleted without waiting for another write.
    await waitFor("the failed write's chunk deleted", async () => storedChunks("turtle").length === 1, 6_000);
    await waitFor(
      "the retry written",
      async () =>
        (retry = await client.post("/api/v1/documents", turtle("Sea turtles live for over fifty years."))).status === 201,
      6_000,
    );
    assert.match((await client.post("/api/v1/query", question())).body.sources[0].text, /fifty years/);
    assert.equal(storedChunks("turtle").length, 1, "the old chunk and the failed write's are gone");
  } finally {
    fakes.qdrant.knobs.writeMs = 0;
    await held.stop();
  }
});

test("a delete whose record removal fails after its chunks are gone drops the answers cached from them", async () => {
  const db = superuser();
  const question = { query: "Where do puffins nest along the coast?" };
  try {
    await cacheAnswerFrom({ id: "puffin", text: "Puffins nest in burrows on grassy sea cliffs." }, question);
    // While Qdrant deletes the chunks, the record is locked past the statement's deadline: the removal fails (503).
    fakes.qdrant.knobs.writeMs = 300;
    const deletes = fakes.qdrant.calls["/collections/:name/points/delete"] ?? 0;
    const failing = user.del("/api/v1/documents/puffin");
    await qdrantCalled("/collections/:name/points/delete", deletes);
    const locked = await db.reserve();
    await locked`BEGIN`;
    await locked`SELECT id FROM documents WHERE id = 'puffin' FOR UPDATE`;
    const res = await failing;
    await locked`ROLLBACK`;
    locked.release();
    assert.equal(res.status, 503, res.text);
    assert.equal((await db`SELECT 1 FROM documents WHERE id = 'puffin'`).length, 1, "the record is left, to retry");
  } finally {
    fakes.qdrant.knobs.writeMs = 0;
    await db.end();
  }
  // Before, the answer citing the deleted chunks was served until its TTL (600 s).
  await waitFor(
    "the cached answer dropped",
    async () => (await user.post("/api/v1/query", question)).body.cached === false,
    2_000,
  );
});

test("a replica whose notifications went silent still drops answers cached before another replica's delete, within seconds", async () => {
  const proxy = await startTcpProxy(pg.port);
  const replica = await appOn(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`, { CORPUS_VERSION_REFRESH_MS: "500" });
  const question = { query: "What do narwhals use their tusks for?" };
  try {
    const narwhal = { documents: [{ id: "narwhal", text: "Narwhals use their tusks to sense changes in the water." }] };
    assert.equal((await user.post("/api/v1/documents", narwhal)).status, 201);
    const onReplica = api(replica.url, USER_KEY);
    await waitFor(
      "the answer cached on the replica",
      async () => (await onReplica.post("/api/v1/query", question)).body.cached === true,
    );
    // Its LISTEN connection (and its pool's) stop forwarding without a reset: no notification reaches it again.
    proxy.silenceOpen();
    assert.equal((await user.del("/api/v1/documents/narwhal")).status, 200);
    // Before, it served the answer citing the deleted document for as long as the answer lived in Redis (600 s).
    await waitFor(
      "the replica's answer no longer cached",
      async () => {
        const res = await onReplica.post("/api/v1/query", question);
        return res.status === 200 && res.body.cached === false;
      },
      10_000,
    );
  } finally {
    await replica.stop();
    await proxy.close();
  }
});

test("a replica whose Postgres connections are reset, or go silent, as another replica writes serves no answer cached before the write", async () => {
  const proxy = await startTcpProxy(pg.port);
  // The default refresh (15 s): only the listener and its probes bring the other replica's write in time.
  const replica = await appOn(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`);
  const onReplica = api(replica.url, USER_KEY);
  const question = { query: "Where do puffins nest?", top_k: 20 };
  type Answer = { cached: boolean; sources: Array<{ id: string; text: string }> };
  /** The replica's answer's source texts, or undefined for a 503. */
  const cited = async () => {
    const res = await onReplica.post<Answer>("/api/v1/query", question);
    return res.status === 200 ? res.body.sources.map((s) => s.text).join(" | ") : undefined;
  };
  const write = async (text: string) =>
    assert.equal((await user.post("/api/v1/documents", { documents: [{ id: "puffin", text }] })).status, 201);
  const cachedOnReplica = () =>
    waitFor(
      "the answer cached on the replica",
      async () => (await onReplica.post("/api/v1/query", question)).body.cached === true,
    );
  try {
    await write("Puffins nest in burrows on cliffs.");
    await cachedOnReplica();
    // Reset as the write is acknowledged: before, the answer citing the old text came back with the connections, for
    // 0.2-1.1 s, until the LISTEN was sent again.
    proxy.cut();
    await write("Puffins nest in burrows on grassy islands.");
    proxy.restore();
    let answered = 0;
    for (const until = performance.now() + 1_500; performance.now() < until; await sleep(50)) {
      const text = await cited();
      if (text === undefined) continue;
      answered++;
      assert.match(text, /grassy islands/);
    }
    assert.ok(answered > 0, "no answer within 1.5 s of the reset");

    await cachedOnReplica();
    // Silent: the pool opens new connections past the silent one, the listener stays on its own. Before, the answer
    // citing the old text was served until the next refresh (15 s).
    proxy.silenceOpen();
    await write("Puffins nest in burrows on rocky shores.");
    const { ms } = await timed(() =>
      waitFor("the new text cited", async () => (await cited())?.includes("rocky shores") === true, 15_000),
    );
    assert.ok(ms < 6_000, `the old text cited for ${Math.round(ms)} ms`);
  } finally {
    await replica.stop();
    await proxy.close();
  }
});

test("a write's documents are not given back while its corpus bump cannot land: both land together once Postgres takes them", async () => {
  const replica = await appOn(pg.url, { REQUEST_TIMEOUT_MS: "1500", DB_QUERY_TIMEOUT_MS: "300" });
  const onReplica = api(replica.url, USER_KEY);
  const db = superuser(2); // one of them reserved to hold a lock
  type Answer = { cached: boolean; sources: Array<{ id: string; text: string }> };
  const ferries = { query: "When does the harbour ferry sail?" };
  const cited = async () => (await onReplica.post<Answer>("/api/v1/query", ferries)).body.sources.map((s) => s.text).join();
  const held = async () => (await db`SELECT writer FROM documents WHERE id = 'harbour'`)[0]?.writer !== null;
  const locker = await db.reserve();
  try {
    const first = { documents: [{ id: "harbour", text: "The harbour ferry sails at six." }] };
    assert.equal((await onReplica.post("/api/v1/documents", first)).status, 201);
    fakes.qdrant.knobs.writeMs = 500;
    const reingest = onReplica.post("/api/v1/documents", {
      documents: [{ id: "harbour", text: "The harbour ferry sails at ten." }],
    });
    await waitFor("the re-ingest's lease", held, 1_000);
    await cited();
    assert.match(await cited(), /at six/, "an answer cached while the chunks are written");
    // The version's row held: the write's closing statement waits on it until its deadline, as in an outage.
    await locker`BEGIN`;
    await locker`SELECT version FROM corpus_version FOR UPDATE`;
    fakes.qdrant.knobs.writeMs = 0;
    assert.equal((await reingest).status, 503);
    // Before, the release committed on its own and only the bump waited: had that bump been lost (the process killed,
    // Postgres gone past the lease), no lease was left to expire (whose end bumps: the "killed midway" test below),
    // and the answer citing "six" stayed until its TTL.
    assert.ok(await held(), "the documents were given back without the bump");
    await locker`ROLLBACK`;
    await waitFor("the answer from the new chunk", async () => /at ten/.test(await cited()), 3_000);
    assert.equal(await held(), false, "released with the bump");
  } finally {
    fakes.qdrant.knobs.writeMs = 0;
    locker.release();
    await db.end();
    await replica.stop();
  }
});

test("a write whose process was killed midway: answers cached before it are dropped at once, those cached while it ran when its lease ends", async () => {
  const replica = await appOn(pg.url, { CORPUS_VERSION_REFRESH_MS: "200" });
  const db = createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 });
  const store = createStore(db, 2_000);
  const onReplica = api(replica.url, USER_KEY);
  type Answer = { cached: boolean; sources: Array<{ id: string; text: string }> };
  const ask = (question: { query: string }) => onReplica.post<Answer>("/api/v1/query", question);
  // Long enough that the lamp's lease cannot end (and bump) while the ferry's answers are checked below.
  const killed = () => ({ writer: randomUUID(), ms: 3_000 });
  try {
    // A delete takes the document's lease (the app's own statement), Qdrant deletes its chunks, and the process dies.
    const lamps = { query: "What do lighthouse keepers trim every night?" };
    await cacheAnswerFrom({ id: "lamp", text: "Lighthouse keepers trim the lamp wicks every night." }, lamps);
    assert.equal(typeof ((await store.leaseDocument("lamp", killed())) as { generation?: number }).generation, "number");
    // What a killed writer's last Qdrant call did to the document's chunks.
    for (const [id] of storedChunks("lamp")) fakes.qdrant.collections.get("documents")!.points.delete(id);
    // Before, the answer citing the deleted chunks was served until the client's retry or its TTL (600 s).
    const cites = (answer: Answer, id: string) => answer.sources.find((source) => source.id === id)?.text ?? "";
    await waitFor("the answer cached before the write dropped", async () => !cites((await ask(lamps)).body, "lamp"), 2_000);

    // A re-ingest takes its lease, an answer is cached from the old chunk, the new one lands, and the process dies.
    // The replica ingests and caches first: it holds its own bump's version at once, so the answer it retrieves next is
    // cached under the lease's. (Cached through the other replica, the first answer could come from before the lease's
    // bump was heard, and the next one cite the new chunk at once, before the lamp's lease ended: the delete was a 409.)
    const ferries = { query: "When does the island ferry leave?" };
    assert.equal(
      (await onReplica.post("/api/v1/documents", { documents: [{ id: "ferry", text: "The island ferry leaves at nine." }] }))
        .status,
      201,
    );
    const searches = () => fakes.qdrant.calls["/collections/:name/points/query"] ?? 0;
    const searched = async () => {
      const before = searches();
      await ask(ferries);
      return searches() > before;
    };
    assert.equal(await searched(), true);
    assert.equal(await searched(), false, "the answer is cached");
    const lease = killed();
    const leased = await store.upsertDocuments([{ id: "ferry", title: null, metadata: {}, chunk_count: 1 }], "key:x", lease);
    assert.ok("generation" in leased);
    await waitFor("an answer retrieved under the lease's version", searched, 2_000);
    const during = await ask(ferries);
    assert.match(cites(during.body, "ferry"), /at nine/);
    assert.equal(await searched(), false, "the answer retrieved while the write runs is cached");
    for (const [, point] of storedChunks("ferry")) point.payload.text = "The island ferry leaves at noon.";
    // Before, that answer was served until its TTL too; now until the lease ends, as for a write of unknown outcome.
    await waitFor("the answer from the new chunk", async () => /at noon/.test(cites((await ask(ferries)).body, "ferry")), 8_000);
    assert.equal((await user.del("/api/v1/documents/lamp")).status, 200, "once the lease ended, the retry deletes the record");
  } finally {
    await db.end();
    await replica.stop();
  }
});
