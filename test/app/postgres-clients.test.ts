// The app's Postgres clients under faults, below HTTP, on a Postgres of their own (no app listens to its NOTIFYs).
// The pool under its deadlines (db.ts `withDeadline` over postgres.js 3.4.9): statements that give up must neither
// lose the pool's connections, nor strand them, nor take or give another statement's rows, nor run late. And the
// corpus version's listener (corpus.ts), which must keep hearing other replicas' bumps.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { createCorpusVersion } from "../../app/src/services/corpus.ts";
import { createDb, type DbOptions, openConnection, type Sql, watchUnanswered, withDeadline } from "../../app/src/services/db.ts";
import { migrate } from "../../app/src/services/migrations.ts";
import { CORPUS_CHANNEL, createStore } from "../../app/src/services/store.ts";
import { MIGRATIONS_DIR } from "../../app/src/start.ts";
import { appEnv, spawnAppProcess } from "../support/app.ts";
import { capturedLog } from "../support/log.ts";
import { type PostgresServer, startPostgres, terminationNotice } from "../support/postgres.ts";
import { selfSignedCert } from "../support/tls.ts";
import { freePort, waitFor } from "../support/process.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

let pg: PostgresServer;
before(async () => {
  pg = await startPostgres();
});
after(() => pg?.stop());

/** A pool of `max` reaching the test's Postgres through `proxy`. */
const poolThrough = (proxy: TcpProxy, max: number, opts: Partial<DbOptions> = {}) =>
  createDb(pg.url.replace(`:${pg.port}/`, `:${proxy.port}/`), { max, connectTimeoutMs: 2_000, ...opts });

/** A pool reaching Postgres through a proxy that can stage a partition, and a way to close both. */
async function proxiedPool(max: number): Promise<{ sql: Sql; proxy: TcpProxy; close(): Promise<void> }> {
  const proxy = await startTcpProxy(pg.port);
  const sql = poolThrough(proxy, max);
  const close = async () => {
    await sql.end({ timeout: 1 });
    await proxy.close();
  };
  return { sql, proxy, close };
}

test("the production path: TLS verified against DATABASE_CA_FILE's CA by host name, and a SCRAM password (RDS, rds.force_ssl)", async () => {
  // Every other test reaches a trust-auth Postgres without TLS: the app's own sockets (socketOpener) under postgres.js'
  // TLS upgrade, its CA option and a SCRAM login ran nowhere before production.
  const server = selfSignedCert("localhost");
  const tlsPg = await startPostgres({ tls: server });
  const pools: Sql[] = [];
  const pool = (url: string, ca?: string) => {
    const sql = createDb(url, { max: 1, connectTimeoutMs: 2_000, ca });
    pools.push(sql);
    return sql;
  };
  try {
    const password = `pw-${randomUUID()}`;
    const admin = postgres(tlsPg.url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE ROLE agent LOGIN PASSWORD '${password}'`);
    await admin.end();
    const url = `postgres://agent:${password}@localhost:${tlsPg.port}/postgres?sslmode=verify-full`;
    const [row] = await pool(url, server.cert)`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
    assert.equal(row?.ssl, true, "the session runs over TLS");
    // Another CA's certificate, or no TLS at all (refused by the server, as rds.force_ssl does): no session.
    await assert.rejects(pool(url, selfSignedCert("localhost").cert)`SELECT 1`, /self.signed|certificate/i);
    await assert.rejects(
      pool(url.replace("?sslmode=verify-full", ""))`SELECT 1`,
      /pg_hba\.conf rejects connection .* no encryption/,
    );
  } finally {
    await Promise.all(pools.map((sql) => sql.end({ timeout: 1 })));
    await tlsPg.stop();
  }
});

test("a busy pool whose statements queue past their deadlines keeps its connections: it is still answering", async () => {
  const { log, lines } = capturedLog("warn");
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000, log });
  try {
    // Two connections, 40 statements of 100 ms each at once: most wait past their 250 ms deadline in the pool while
    // one is answered every 50 ms. Before, three misses in a row dropped both connections, and the statements they
    // were running failed (CONNECTION_CLOSED) with the rest: the pool was dropped 85 times in 3 s under such load.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => withDeadline(sql, sql`SELECT ${i}::int AS i, pg_sleep(0.1)`, 250)),
    );
    const answered = outcomes.filter((o) => o.status === "fulfilled").length;
    assert.ok(answered >= 2, `${answered} answered`);
    assert.deepEqual(
      lines.filter((l) => l.includes("stopped answering")),
      [],
    );
  } finally {
    await sql.end({ timeout: 1 });
  }
});

test("a URL naming two hosts is served by the second while the first refuses connections or never answers", async () => {
  const refusing = await freePort();
  // Accepts connections and says nothing: each one ends at connect_timeout, which a refusal's 1 s test missed.
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const silentPort = (silent.address() as AddressInfo).port;
  try {
    for (const first of [refusing, silentPort]) {
      const sql = createDb(pg.url.replace(`:${pg.port}/`, `:${first},127.0.0.1:${pg.port}/`), {
        max: 2,
        connectTimeoutMs: 1_000,
      });
      const portServing = async () => (await withDeadline(sql, sql`SELECT inet_server_port() AS port`, 5_000))[0]!.port;
      try {
        // The statements sent while the first host was tried may fail; then every one is the second host's, both
        // connections of the pool at once, though the first host comes first in the URL.
        await waitFor(`the second host, the first on port ${first}`, async () => (await portServing()) === pg.port, 10_000);
        assert.deepEqual(await Promise.all([0, 1, 2, 3].map(portServing)), [pg.port, pg.port, pg.port, pg.port]);
      } finally {
        await sql.end({ timeout: 1 });
      }
    }
  } finally {
    silent.close();
  }
});

test("a statement after one that failed midway through its rows gets its own rows, not empty slots before them", async () => {
  // postgres.js 3.4.9 keeps the failed statement's row count (porsager/postgres#1119): the next one on the connection
  // stored its rows after that many empty slots. A session page came back with 343 of its turns null, and feedback
  // on a stored turn was a 404 (its RETURNING row was slot 0, empty).
  const sql = createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 });
  try {
    const failing = withDeadline(sql, sql`SELECT i, 1 / (4 - i) AS boom FROM generate_series(1, 10) i`, 2_000);
    const next = withDeadline(sql, sql<{ x: number }[]>`SELECT x FROM generate_series(1, 5) x`, 2_000);
    await assert.rejects(failing, /division by zero/);
    assert.deepEqual(
      [...(await next)].map((r) => r?.x),
      [1, 2, 3, 4, 5],
    );
    const after = await withDeadline(sql, sql<{ y: number }[]>`SELECT 7 AS y`, 2_000);
    assert.deepEqual([...after], [{ y: 7 }]);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

test("a statement whose deadline passes behind another never gets, or gives, another statement's rows", async () => {
  // One connection: the statements after the slow one wait for it. The second gives up first (a request's deadline).
  const sql = createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 });
  try {
    await sql`SELECT 1`;
    // No parameters: a statement with some is described before it is run, and nothing is sent behind it meanwhile.
    const statement = (who: string, ms: number) => withDeadline(sql, sql.unsafe(`SELECT '${who}' AS who`), ms);
    const slow = withDeadline(sql, sql`SELECT pg_sleep(0.3), 'slow' AS who`, 5_000);
    const [gaveUp, second, third] = [statement("gave up", 100), statement("second", 5_000), statement("third", 5_000)];
    await assert.rejects(gaveUp, /postgres unavailable: no answer within 100 ms/);
    assert.equal((await slow)[0]!.who, "slow");
    // postgres.js 3.4.9 drops a cancelled statement it had already sent from its list of statements awaiting an answer,
    // so its answer went to the next one, and every answer after it was one statement late.
    assert.equal((await second)[0]!.who, "second");
    assert.equal((await third)[0]!.who, "third");
    assert.equal((await statement("later", 2_000))[0]!.who, "later");
  } finally {
    await sql.end({ timeout: 1 });
  }
});

test("statements that miss their deadline while their connection reconnects do not strand the pool: served again within seconds", async () => {
  // Postgres restarting: each new connection is read, then closed cleanly (FIN, no reset).
  let up = true;
  const server = createServer((client: Socket) => {
    client.on("error", () => {});
    if (!up) return void client.once("data", () => client.end());
    const upstream = connect(pg.port, "127.0.0.1");
    upstream.on("error", () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const sql = createDb(`postgres://postgres@127.0.0.1:${port}/postgres`, { max: 2, connectTimeoutMs: 2_000 });
  const ping = () =>
    withDeadline(sql, sql`SELECT 1 AS one`, 1_000).then(
      () => true,
      () => false,
    );
  try {
    assert.equal(await ping(), true);
    up = false;
    // The restart ended the pool's open connection: the next statements open new ones.
    const handles = (
      process as unknown as { _getActiveHandles(): Array<{ remotePort?: number; destroy?(): void }> }
    )._getActiveHandles();
    for (const h of handles) if (h.remotePort === port) h.destroy?.();
    await sleep(200);
    // Each misses its deadline as the first statement of a connection being opened again, and is cancelled.
    assert.deepEqual(await Promise.all([ping(), ping()]), [false, false]);
    up = true;
    // postgres.js (3.4.9) never gave such a connection to the pool once its startup ended: nothing was sent again
    // until the connections' max_lifetime (30-60 min).
    await waitFor("a statement answered", ping, 8_000);
  } finally {
    await sql.end({ timeout: 1 });
    server.close();
  }
});

test("a statement that gives up while its connection connects into a partition never runs, and the connection serves the next", async () => {
  const superuser = postgres(pg.url, { max: 1, onnotice: () => {} });
  await superuser`CREATE TABLE IF NOT EXISTS withdrawn (n int)`;
  const { sql, proxy, close } = await proxiedPool(1);
  try {
    proxy.blackhole();
    // The pool's first statement: its connection is accepted and never answered, so it gives up before it is sent.
    await assert.rejects(withDeadline(sql, sql`INSERT INTO withdrawn VALUES (1)`, 200), /no answer within 200 ms/);
    // The stalled connection is reset; postgres.js connects again with the withdrawn statement as its first one.
    proxy.restore();
    // postgres.js skipped the cancelled first statement and never gave the connection to the pool: every statement
    // after it waited in the queue (503s) until the silence check closed the socket.
    const [{ n }] = await withDeadline(sql, sql<{ n: number }[]>`SELECT 2 AS n`, 2_000);
    assert.equal(n, 2);
    assert.equal((await superuser`SELECT count(*)::int AS c FROM withdrawn`)[0]!.c, 0);
  } finally {
    await close();
    await superuser.end({ timeout: 1 });
  }
});

test("a busy pool through a Postgres partition serves again within seconds of its end", async () => {
  const { sql, proxy, close } = await proxiedPool(2);
  let stop = false;
  let answered = 0;
  const worker = async () => {
    while (!stop) {
      await withDeadline(sql, sql`SELECT pg_sleep(0.002)`, 1_000).then(
        () => answered++,
        () => sleep(5),
      );
    }
  };
  const workers = Array.from({ length: 20 }, worker);
  try {
    await waitFor("the pool answering", async () => answered > 0, 5_000);
    proxy.blackhole();
    await sleep(5_000);
    proxy.restore();
    // Each connection opened again took as its first statement one about to pass its deadline, often during the
    // reconnect backoff; cancelled, it stranded the connection, and the silence check's closing them made the backoff
    // longer still: no statement was answered for 30-60 s after a 3-5 s partition.
    const before = answered;
    await waitFor("100 statements answered after the partition", async () => answered - before >= 100, 5_000);
  } finally {
    stop = true;
    await Promise.all(workers);
    await close();
  }
});

test("connections gone silent while another answers are closed once past statement_timeout, and serve again at once", async () => {
  const proxy = await startTcpProxy(pg.port);
  const { log, lines } = capturedLog("warn");
  const sql = poolThrough(proxy, 3, { statementTimeoutMs: 1_000, log });
  const stop = watchUnanswered(sql);
  // The same statement each time: prepared on every connection before the silence, postgres.js pipelines it onto a
  // busy one, the silent ones included (a statement to prepare would mark the connection full instead).
  const ask = (i: number) => withDeadline(sql, sql`SELECT ${i}::int AS i, pg_sleep(0.02)`, 300);
  const closing = () => lines.filter((l) => l.includes("stopped answering while others answer"));
  try {
    for (let round = 0; round < 3; round++) await Promise.all([0, 1, 2].map(ask));
    assert.equal(proxy.open(), 3);
    proxy.silenceOpen(2);
    const started = performance.now();
    let closedAt: number | undefined;
    const failedAt: number[] = [];
    let answered = 0;
    const worker = async () => {
      for (let i = 0; performance.now() - started < 7_000; i++) {
        await ask(i).then(
          () => answered++,
          () => failedAt.push(performance.now() - started),
        );
        if (closedAt === undefined && closing().length === 2) closedAt = performance.now() - started;
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    // Before, the silent two took statements for the whole run (and stayed open until TCP gave up): 503s throughout.
    // The run goes on 1.5 s past the latest close allowed, for the statements after it to be seen answered.
    // Closed once a write no read followed is older than statement_timeout (1 s; the connect timeout is 2 s) and a
    // grace (2 s), counted from the sample (each 250 ms) that first saw it, which may be the second after the silence.
    const closed = closedAt ?? Number.NaN;
    assert.ok(closed < 5_500, `closed at ${closed} ms: ${lines.join("\n")}`);
    assert.ok(failedAt.length > 0, "no statement reached a silent connection: the test staged nothing");
    // The statements waiting on them fail as they close. Before app/scripts/patch-postgres.mjs, a connection closed
    // while a write waited for its flush sent nothing again: each reconnect ended at connect_timeout (2 s), and the
    // statement given to it failed.
    const late = failedAt.filter((at) => at > closed + 400).map(Math.round);
    assert.deepEqual(late, [], `failed after the close at ${Math.round(closed)} ms`);
    assert.ok(answered > 50, `${answered} answered`);
    assert.deepEqual(
      lines.filter((l) => l.includes("closing the pool's connections")),
      [],
    );
  } finally {
    stop();
    await sql.end({ timeout: 1 });
    await proxy.close();
  }
});

test("a live connection whose answer came while the event loop was held is not taken for silent", async () => {
  const { log, lines } = capturedLog("warn");
  const sql = createDb(pg.url, { max: 1, connectTimeoutMs: 1_000, statementTimeoutMs: 1_000, log });
  const stop = watchUnanswered(sql); // closes a connection after 3 s without an answer
  try {
    await sql`SELECT 1`;
    await sleep(300); // a sample sees that answer before the statement below goes out
    const answer = sql`SELECT pg_sleep(0.5)`.execute();
    await sleep(400); // a sample has seen the statement go out
    // Held past the limit in a check-phase callback (as in any I/O callback): the sample due meanwhile runs in the next
    // loop's timers phase, before the answer, waiting since 0.5 s, is read. Before, it closed the connection.
    await new Promise<void>((held) =>
      setImmediate(() => {
        for (const until = performance.now() + 3_500; performance.now() < until; );
        held();
      }),
    );
    await answer;
    await sleep(300);
    assert.deepEqual(lines, []);
  } finally {
    stop();
    await sql.end({ timeout: 1 });
  }
});

test("postgres.js (mended at install): a connection closed while a write waits for its flush sends its next startup", async () => {
  const sql = createDb(pg.url, { max: 1, connectTimeoutMs: 1_000 });
  try {
    await sql`SELECT 1`;
    const socket = openConnection(sql)!;
    const statement = sql`SELECT 2`.execute();
    const cut = statement.catch((err: Error) => err.message);
    // Taken by the connection (postgres.js sets `state`) a few microtasks on; its bytes wait for the next check phase.
    for (let i = 0; i < 100 && !(statement as { state?: unknown }).state; i++) await Promise.resolve();
    assert.ok((statement as { state?: unknown }).state, "the connection took the statement");
    // Its close heard before that flush: a reset read in the same poll phase as the request that sent the statement.
    socket.emit("close", false);
    socket.destroy();
    assert.match(String(await cut), /CONNECTION_CLOSED/);
    // Before, the reconnect sent nothing and ended at connect_timeout (CONNECT_TIMEOUT), and so did every next one.
    const [row] = await withDeadline(sql, sql<{ n: number }[]>`SELECT 3 AS n`, 500);
    assert.equal(row!.n, 3);
  } finally {
    await sql.end({ timeout: 1 });
  }
});

test("a replica starting while another bumps the corpus version has the bump: it reads the version once its LISTEN is in place", async () => {
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const store = createStore(sql, 1_000);
  const { log } = capturedLog("warn");
  let bumped: Promise<number> | undefined;
  // Another replica's ingest commits while this one's listening connection opens: its LISTEN goes out after that.
  const openListener = () => {
    const listener = createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 });
    bumped ??= store.bumpCorpusVersion();
    const listen = listener.listen.bind(listener);
    listener.listen = async (...args: Parameters<Sql["listen"]>) => {
      await bumped;
      return listen(...args);
    };
    return listener;
  };
  const corpus = await createCorpusVersion(openListener, store, log, 60_000);
  try {
    // Before, the version read before the LISTEN was kept until the next refresh (CORPUS_VERSION_REFRESH_MS).
    assert.equal(corpus.current(), await bumped);
  } finally {
    await corpus.stop();
    await sql.end({ timeout: 1 });
  }
});

test("a Postgres restart that ends the listening connection mid-statement: other replicas' bumps are heard again within seconds", async () => {
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const proxy = await startTcpProxy(pg.port);
  const { log, lines } = capturedLog("warn");
  const corpus = await createCorpusVersion(() => poolThrough(proxy, 1), createStore(sql, 1_000), log, 300);
  // Another replica's NOTIFY without the row's bump: only the listener brings it (the refresh reads the row).
  const heard = (version: number) =>
    waitFor(
      `version ${version} heard`,
      async () => {
        await sql`SELECT pg_notify(${CORPUS_CHANNEL}, ${String(version)})`;
        return corpus.current() === version;
      },
      5_000,
    );
  try {
    const base = corpus.current()! + 1_000_000;
    await heard(base + 1);
    // A restart: the listening connection is ended, and so is each new one as its LISTEN goes out (57P01).
    proxy.cutAtFirstRequest(terminationNotice());
    await sleep(1_000);
    proxy.restore();
    // postgres.js failed the next connection's LISTEN with the error the last one got, and kept that connection open
    // without it: no notification arrived again, and other replicas' bumps came only with the refresh.
    await heard(base + 2);
    const replacements = () => lines.filter((l) => l.includes("listening on a new connection")).length;
    const replaced = replacements();
    assert.ok(replaced >= 1);
    // Once one listens, it is kept: a probe sent before the new LISTEN was in place went unheard, and the listener
    // was replaced at every refresh after that.
    await sleep(1_500);
    await heard(base + 3);
    assert.equal(replacements(), replaced, lines.join("\n"));
  } finally {
    await corpus.stop();
    await sql.end({ timeout: 1 });
    await proxy.close();
  }
});

test("leases and the corpus version are locked in one order: documents in id order, then the version", async () => {
  // The app's settings: a lock wait ends at 1 s, as a deadlock would be found. Two pools, so neither waits for a
  // connection; a third connection holds the version's row while the two statements take their documents.
  const db = () => createDb(pg.url, { max: 2, connectTimeoutMs: 2_000, lockTimeoutMs: 1_000 });
  const [sql, other, holder] = [db(), db(), postgres(pg.url, { max: 1, onnotice: () => {} })];
  await migrate(sql, MIGRATIONS_DIR);
  const [store, otherStore] = [createStore(sql, 5_000), createStore(other, 5_000)];
  const doc = (id: string) => ({ id, title: null, metadata: {}, chunk_count: 1 });
  const lease = (ms = 60_000) => ({ writer: randomUUID(), ms });
  /** Runs `first`, then `second` once `first` waits for the version's row, then lets the version go. */
  const whileVersionHeld = async <A, B>(first: () => Promise<A>, second: () => Promise<B>) => {
    const held = await holder.reserve();
    await held`BEGIN`;
    await held`SELECT version FROM corpus_version FOR UPDATE`;
    const a = first().then(
      (value) => ({ value }),
      (err: Error) => ({ err: err.message }),
    );
    await sleep(150);
    const b = second().then(
      (value) => ({ value }),
      (err: Error) => ({ err: err.message }),
    );
    await sleep(150);
    await held`COMMIT`;
    held.release();
    return Promise.all([a, b]);
  };
  try {
    // Two batch ingests sharing a document: the first holds both of its documents before it waits for the version,
    // so the second waits for the shared one, not for the version with the shared one in hand (a deadlock).
    const [wide, narrow] = await whileVersionHeld(
      () => store.upsertDocuments([doc("a1"), doc("b1")], "key:x", lease()),
      () => otherStore.upsertDocuments([doc("b1"), doc("c1")], "key:y", lease()),
    );
    assert.equal(
      typeof (wide as { value?: { generation?: unknown } }).value?.generation,
      "number",
      "the first ingest holds both",
    );
    assert.deepEqual(narrow, { value: { ids: ["b1"], leftSeconds: 60 } }, "the second is told the shared one is held");

    // Two leases left to expire (their writers killed), ended by a replica's refresh while an ingest takes one over.
    // Before, the refresh held the first and the version, and waited for the second, which the ingest held while it
    // waited for the version: lock_timeout ended the refresh (and, in the app, the ingest too, a 503).
    await store.upsertDocuments([doc("a2"), doc("b2")], "key:x", lease(1));
    await sleep(20);
    const [ended, taken] = await whileVersionHeld(
      () => store.corpusVersion(),
      () => otherStore.upsertDocuments([doc("b2")], "key:y", lease()),
    );
    assert.equal(typeof (ended as { value?: unknown }).value, "number", JSON.stringify(ended));
    assert.equal(
      typeof (taken as { value?: { generation?: unknown } }).value?.generation,
      "number",
      "the ingest takes the lease over once the refresh ended it",
    );
  } finally {
    await Promise.all([sql.end(), other.end(), holder.end()]);
  }
});

test("a write's release takes its documents in id order, and tells the version even when its lease had already ended", async () => {
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000 });
  const holder = postgres(pg.url, { max: 1, onnotice: () => {} });
  await migrate(sql, MIGRATIONS_DIR);
  const store = createStore(sql, 5_000);
  const lease = { writer: randomUUID(), ms: 60_000 };
  const version = async () => Number((await sql<{ version: string }[]>`SELECT version::text FROM corpus_version`)[0]!.version);
  try {
    // Stored "b" first: a scan meets it before "a".
    for (const id of ["order-b", "order-a"])
      await store.upsertDocuments([{ id, title: null, metadata: {}, chunk_count: 1 }], "key:x", lease);
    const held = await holder.reserve();
    let released: Promise<number> | undefined;
    try {
      await held`BEGIN`;
      await held`SELECT 1 FROM documents WHERE id = 'order-a' FOR UPDATE`; // as a re-ingest takes them: "a" first
      released = store.releaseDocumentsAndBump(["order-a", "order-b"], lease.writer);
      await sleep(150);
      // Before, the release held "b" while it waited for "a", and a re-ingest asking for "b" next deadlocked (40P01).
      await held`SELECT 1 FROM documents WHERE id = 'order-b' FOR UPDATE NOWAIT`;
    } finally {
      await held`ROLLBACK`;
      held.release();
    }
    const bumped = await released!;
    assert.equal(bumped, await version());
    // Again (a retry whose first try committed after its deadline): nothing to release, nothing bumped, and the
    // version this replica takes is the current one, not none.
    assert.equal(await store.releaseDocumentsAndBump(["order-a", "order-b"], lease.writer), bumped);
  } finally {
    await Promise.all([sql.end(), holder.end()]);
  }
});

test("a write's generation is the corpus version its lease bumped: higher for each later lease of a document", async () => {
  const sql = createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const store = createStore(sql, 1_000);
  const version = async () => Number((await sql<{ version: string }[]>`SELECT version::text FROM corpus_version`)[0]!.version);
  const lease = () => ({ writer: randomUUID(), ms: 60_000 });
  try {
    const ingest = await store.upsertDocuments([{ id: "gen-1", title: null, metadata: {}, chunk_count: 1 }], "key:x", lease());
    assert.deepEqual(ingest, { generation: await version() });
    const [record] = await sql<{ writer: string }[]>`SELECT writer::text FROM documents WHERE id = 'gen-1'`;
    await store.releaseDocuments(["gen-1"], record!.writer);
    const removal = await store.leaseDocument("gen-1", lease());
    assert.deepEqual(removal, { generation: await version() });
    assert.ok((removal as { generation: number }).generation > (ingest as { generation: number }).generation);
  } finally {
    await sql.end();
  }
});

test("a listener whose LISTEN went out again but whose read of the version failed is trusted once a read works, not replaced", async () => {
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const proxy = await startTcpProxy(pg.port);
  const { log, lines } = capturedLog("warn");
  const store = createStore(sql, 1_000);
  let readsFail = false;
  const failing = { ...store, corpusVersion: () => (readsFail ? Promise.reject(new Error("pool busy")) : store.corpusVersion()) };
  const corpus = await createCorpusVersion(() => poolThrough(proxy, 1), failing, log, 300);
  try {
    const listening = async () =>
      (await sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE query ILIKE 'listen%' AND state = 'idle'`)[0]?.pid;
    const before = await listening();
    readsFail = true;
    proxy.cut(); // the listening connection reset: not trusted until it listens again and a read follows
    proxy.restore();
    await waitFor("the LISTEN sent again", async () => ![undefined, before].includes(await listening()));
    await sleep(100); // its read failed
    assert.equal(corpus.current(), undefined);
    readsFail = false;
    // Before, nothing read again: untrusted until a check replaced the listener that was listening all along.
    await waitFor("trusted again", async () => corpus.current() !== undefined, 2_000);
    await sleep(700); // two more checks
    assert.deepEqual(
      lines.filter((l) => l.includes("listening on a new connection")),
      [],
    );
  } finally {
    await corpus.stop();
    await sql.end({ timeout: 1 });
    await proxy.close();
  }
});

test("after the pool's connections were dropped as silent, the version is given out again only once a probe sent after it is heard", async () => {
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const store = createStore(sql, 1_000);
  // The pool partitioned: nothing it sends is taken, while the listener's connection stays open (and silent).
  let partitioned = false;
  const probes: string[] = [];
  const cutOff = {
    ...store,
    notifyCorpusListeners: (payload: string) => {
      probes.push(payload);
      return partitioned ? Promise.reject(new Error("no answer within 1000 ms")) : store.notifyCorpusListeners(payload);
    },
  };
  const corpus = await createCorpusVersion(
    () => createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 }),
    cutOff,
    capturedLog("warn").log,
    60_000,
  );
  try {
    const held = corpus.current();
    assert.notEqual(held, undefined);
    partitioned = true;
    corpus.probeListener(true); // db.ts: the pool dropped its connections as silent
    // Before, the version held was given out all through the partition: a request prepared in it took the answer
    // cached before another replica's write, and was answered with it once the partition healed.
    assert.equal(corpus.current(), undefined);
    await sleep(700);
    assert.equal(corpus.current(), undefined, "given out again before a probe was heard");
    assert.ok(probes.length >= 2, `${probes.length} probes sent while partitioned`);
    partitioned = false;
    await waitFor("the version given out again", async () => corpus.current() === held, 3_000);
  } finally {
    await corpus.stop();
    await sql.end({ timeout: 1 });
  }
});

test("a corpus version gone back (a database restore) is bumped past the clock by the next refresh: every replica drops its answers", async () => {
  const sql = createDb(pg.url, { max: 2, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const store = createStore(sql, 1_000);
  const { log, lines } = capturedLog("warn");
  const wentBack = () => lines.filter((line) => line.includes("went back")).length;
  // The version a snapshot taken a minute ago holds, which the replicas read as they start.
  const snapshot = Date.now() - 60_000;
  await sql`UPDATE corpus_version SET version = ${snapshot}`;
  const [replica, other] = await Promise.all(
    [0, 1].map(() => createCorpusVersion(() => createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 }), store, log, 200)),
  );
  try {
    // Payloads far past the clock, which no bump sends, are not taken: taken, each froze the version.
    for (const payload of ["1e308", String(Number.MAX_SAFE_INTEGER)]) await store.notifyCorpusListeners(payload);
    const held = await store.bumpCorpusVersion();
    await waitFor("the bump heard", async () => replica!.current() === held && other!.current() === held);
    await sleep(450); // two refreshes, which read the version heard: nothing went back
    assert.equal(wentBack(), 0);
    // Restored to the snapshot, and bumped by one by the restore's runbook (which every replica ignored): above every
    // version a replica read, below the one each heard, which went unseen while only versions read or bumped by the
    // replica itself were compared.
    await sql`UPDATE corpus_version SET version = ${snapshot + 1}`;
    await waitFor("a version past the one held", async () => replica!.current()! > held && other!.current()! > held, 3_000);
    const [row] = await sql<{ version: string }[]>`SELECT version::text FROM corpus_version`;
    assert.ok(Number(row!.version) > held, "bumped in Postgres, so a replica started now has it too");
    assert.ok(wentBack() >= 1);
  } finally {
    await Promise.all([replica!.stop(), other!.stop()]);
    await sql.end({ timeout: 1 });
  }
});

test("`main.js bump-corpus-version` (the Qdrant restore's last step) bumps the version past the one held and exits 0", async () => {
  const sql = createDb(pg.url, { max: 1, connectTimeoutMs: 2_000 });
  await migrate(sql, MIGRATIONS_DIR);
  const unused = "http://127.0.0.1:9";
  const env = appEnv({ databaseUrl: pg.url, redisUrl: "redis://127.0.0.1:9", ollamaUrl: unused, qdrantUrl: unused });
  try {
    const before = Number((await sql<{ v: string }[]>`SELECT version::text AS v FROM corpus_version`)[0]!.v);
    const run = spawnAppProcess(env, ["bump-corpus-version"]);
    assert.deepEqual(await run.exited, { code: 0, signal: null }, run.output().stderr);
    const after = Number((await sql<{ v: string }[]>`SELECT version::text AS v FROM corpus_version`)[0]!.v);
    assert.ok(after > before);
    assert.match(run.output().stdout, new RegExp(`corpus version bumped to ${after}`));
    const unknown = spawnAppProcess(env, ["bump"]);
    assert.equal((await unknown.exited).code, 1);
    assert.match(unknown.output().stderr, /unknown command bump: the one command is bump-corpus-version/);
  } finally {
    await sql.end({ timeout: 1 });
  }
});
