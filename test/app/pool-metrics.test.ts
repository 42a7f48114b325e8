// The Postgres pool's use on /metrics (db_pool_size, db_pool_active, db_pool_waiting, db_statement_duration_seconds):
// what DatabasePoolExhausted reads. A pod's pool can be taken whole while the server is mostly idle, which the
// server's connections (DatabaseConnectionPoolExhausted) do not show.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import postgres from "postgres";
import { createMetrics } from "../../app/src/metrics.ts";
import { buildOpsApp } from "../../app/src/ops.ts";
import { counted, createDb, poolUse, withDeadline } from "../../app/src/services/db.ts";
import { OTHER_KEY, startStack, USER_KEY, type Stack } from "../support/app.ts";
import { api, type ApiResponse } from "../support/http.ts";
import { capturedLog } from "../support/log.ts";
import { metricValue, scrape } from "../support/metrics.ts";
import { waitFor } from "../support/process.ts";

const POOL = 4;

let stack: Stack;
before(async () => {
  // Statements blocked on a lock wait up to lock_timeout (DB_QUERY_TIMEOUT_MS); no retention sweep or corpus refresh
  // adds a statement of its own while the test counts.
  stack = await startStack({
    DB_POOL_MAX: String(POOL),
    DB_QUERY_TIMEOUT_MS: "10000",
    TURN_RETENTION_DAYS: "0",
    CORPUS_VERSION_REFRESH_MS: "600000",
  });
});
after(() => stack?.stop());

/** The pool's gauges and the statements timed so far, and those timed at 0.25 s or less. */
const poolMetrics = (exposition: string) => ({
  size: metricValue(exposition, "db_pool_size"),
  active: metricValue(exposition, "db_pool_active"),
  waiting: metricValue(exposition, "db_pool_waiting"),
  statements: metricValue(exposition, "db_statement_duration_seconds_count"),
  quick: metricValue(exposition, "db_statement_duration_seconds_bucket", { le: "0.25" }),
});

test("a replica's /metrics shows the connections its requests' statements hold, those waiting, and times them", async () => {
  const outside = postgres(stack.pg.url, { max: 2, onnotice: () => {} });
  const holder = await outside.reserve();
  try {
    const before = poolMetrics(await scrape(stack.metricsUrl));
    assert.deepEqual(
      { size: before.size, active: before.active, waiting: before.waiting },
      { size: POOL, active: 0, waiting: 0 },
    );

    // Every session read waits for the sessions table while another session holds it: each holds its connection.
    await holder`BEGIN`;
    await holder`LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE`;
    /** The app's statements Postgres has, waiting for the lock: the connections really held. */
    const blocked = async () =>
      Number(
        (
          await outside`
            SELECT count(*) AS n FROM pg_stat_activity
            WHERE application_name = 'agent-api' AND wait_event_type = 'Lock'`
        )[0]!.n,
      );
    // Two keys: a key reads at most MAX_SESSION_PAGES_PER_KEY pages at once (routes/sessions.ts).
    const clients = [USER_KEY, OTHER_KEY].map((key) => api(stack.url, key, { timeoutMs: 30_000 }));
    const reads: Array<Promise<ApiResponse>> = [];
    const read = () => reads.push(clients[reads.length % 2]!.get(`/api/v1/sessions/${randomUUID()}`));

    for (let i = 0; i < POOL - 1; i++) read();
    await waitFor("three statements blocked", async () => (await blocked()) === POOL - 1);
    let now = poolMetrics(await scrape(stack.metricsUrl));
    assert.deepEqual({ active: now.active, waiting: now.waiting }, { active: POOL - 1, waiting: 0 });

    // Past the pool's size: every connection is held, and the rest wait for one.
    read();
    read();
    read();
    await waitFor("the whole pool blocked", async () => (await blocked()) === POOL);
    await waitFor("two statements waiting", async () => poolMetrics(await scrape(stack.metricsUrl)).waiting === 2);
    now = poolMetrics(await scrape(stack.metricsUrl));
    assert.deepEqual({ size: now.size, active: now.active, waiting: now.waiting }, { size: POOL, active: POOL, waiting: 2 });
    assert.equal(await blocked(), POOL, "Postgres holds as many of the app's statements as db_pool_active says");

    await new Promise((resolve) => setTimeout(resolve, 300));
    await holder`ROLLBACK`;
    assert.deepEqual(
      (await Promise.all(reads)).map((r) => r.status),
      [404, 404, 404, 404, 404, 404],
    );
    const done = poolMetrics(await scrape(stack.metricsUrl));
    assert.deepEqual({ active: done.active, waiting: done.waiting }, { active: 0, waiting: 0 });
    // The six reads were timed, each at more than the 300 ms the lock was held at least.
    assert.ok(done.statements - before.statements >= 6, `${done.statements - before.statements} statements timed`);
    const slow = done.statements - before.statements - (done.quick - before.quick);
    assert.ok(slow >= 6, `${slow} statements timed above 0.25 s`);
  } finally {
    await holder`ROLLBACK`.catch(() => {});
    holder.release();
    await outside.end({ timeout: 1 });
  }
});

test("a statement past its deadline holds its connection until Postgres ends it; a failed one ends at once", async () => {
  const metrics = createMetrics();
  const sql = createDb(stack.pg.url, { max: 2, connectTimeoutMs: 2_000, statementDuration: metrics.dbStatementDuration });
  metrics.watchDbPool(() => poolUse(sql));
  const ops = buildOpsApp({
    metrics,
    log: capturedLog("warn").log,
    probes: {},
    probeTimeoutMs: 1_000,
    isShuttingDown: () => false,
  });
  const read = async () => poolMetrics(await (await ops.request("/metrics")).text());
  try {
    assert.deepEqual(await read(), { size: 2, active: 0, waiting: 0, statements: 0, quick: 0 });

    // Answered 503 at 100 ms, still running on its connection for 0.6 s: it counts until then, and is timed whole.
    const late = withDeadline(sql, sql`SELECT pg_sleep(0.6)`, 100);
    await assert.rejects(late, /no answer within 100 ms/);
    assert.equal((await read()).active, 1);
    await waitFor("the late statement to end", async () => (await read()).active === 0, 5_000);
    assert.deepEqual(await read(), { size: 2, active: 0, waiting: 0, statements: 1, quick: 0 });
    // One that fails after its deadline (its sleep's void is no integer) ends then too.
    await assert.rejects(withDeadline(sql, sql`SELECT pg_sleep(0.3)::text::int`, 100), /no answer within 100 ms/);
    assert.equal((await read()).active, 1);
    await waitFor("the late failure to end", async () => (await read()).active === 0, 5_000);
    assert.equal((await read()).statements, 2);

    // Two hold both connections; a third waits past them: postgres.js 3.4.9 sends it behind one of them (index.js
    // handler: a busy connection before the queue), so it is late at its deadline and counts until it ends.
    const holding = [0, 1].map(() => withDeadline(sql, sql`SELECT pg_sleep(0.6)`, 5_000));
    const third = withDeadline(sql, sql`SELECT 1`, 100);
    assert.deepEqual({ ...(await read()), statements: 0, quick: 0 }, { size: 2, active: 2, waiting: 1, statements: 0, quick: 0 });
    await assert.rejects(third, /no answer within 100 ms/);
    await Promise.all(holding);
    // A statement Postgres refuses, and one without a deadline (turn retention's), end where they settle: the
    // refused one is out of the count by the time its caller hears of the failure.
    await waitFor("the third to end", async () => (await read()).active === 0, 5_000);
    await assert.rejects(withDeadline(sql, sql`SELECT 1 / 0`, 5_000), /division by zero/);
    assert.equal((await read()).active, 0, "the refused statement still counted");
    await counted(sql, sql`SELECT pg_sleep(0.05)`);
    await waitFor("every statement to end", async () => (await read()).active === 0, 5_000);
    const end = await read();
    assert.deepEqual({ active: end.active, waiting: end.waiting }, { active: 0, waiting: 0 });
    assert.equal(end.statements, 7);
    assert.ok(end.statements - end.quick >= 4, "the three 0.6 s statements and the 0.3 s one timed as slow");
  } finally {
    await sql.end({ timeout: 1 });
  }
});
