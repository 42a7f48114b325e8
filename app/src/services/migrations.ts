import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type postgres from "postgres";
import type { Logger } from "../log.ts";
import type { Sql } from "./db.ts";

/** A migration session idle this long has lost its client (it reads a file between statements): Postgres ends it. */
export const MIGRATION_IDLE_TIMEOUT_MS = 5_000;

/** Arbitrary constant shared by every replica: only one of them applies migrations at a time. */
export const MIGRATION_LOCK_ID = 724_310_001;

/** How often a replica asks for the migration lock while another one holds it. */
const LOCK_POLL_MS = 100;

/**
 * How long a migration's statement waits for a table's lock before it gives way and tries again: under the serving
 * replicas' lock_timeout (DB_QUERY_TIMEOUT_MS, 1 s by default), which their statements queued behind it wait.
 */
const LOCK_WAIT_MS = 200;

/** How often a running CONCURRENTLY build is asked what it waits for. */
const WAIT_REPORT_MS = 1_000;

/** Tries a migration gives way in before it waits for its locks as long as it takes. */
const LOCK_TRIES = 5;

/** A statement Postgres runs only outside a transaction block (an index built CONCURRENTLY). */
const OUTSIDE_TRANSACTION = /\bCONCURRENTLY\b/i;

/** `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name`: the form a build can be retried in after it failed. */
const CONCURRENT_INDEX = /^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)/i;

const withoutComments = (text: string) => text.replace(/--.*$/gm, "").trim();

/**
 * Applies app/migrations/*.sql in name order, once each, under a session advisory lock, each file in a transaction of
 * its own with its row in schema_migrations. One transaction for them all held every lock a migration took until the
 * last one committed, while the replicas still serving went on: an index on turns (SHARE) stopped their turn writes
 * past their lock_timeout, 503s for a deploy's length (probes AC and AF: 6 of 11 writes over 5 s on 3M turns). An
 * index on a table that has rows is built CONCURRENTLY, which runs alone in its file, outside a transaction.
 */
export async function migrate(sql: Sql, dir: string, log?: Logger): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  // A connection opened for `reserve` itself is never handed over with fetch_types off (postgres.js 3.4.9
  // connection.js ReadyForQuery returns for an `initial` reserve without calling onopen): one opened by a statement
  // and idle again is.
  await sql`SELECT 1`;
  const session = await sql.reserve();
  try {
    // A migration may wait for another replica's or build an index for a while: no statement bound applies to it.
    // But a session idle between its statements, in a transaction or not, has lost its client (a partition, a killed
    // pod): Postgres ends it, and frees the migration lock, instead of when TCP keepalive notices (hours).
    // And a statement still running when its client went (a CONCURRENTLY build waiting for an open snapshot, after
    // start-up gave up and the pod exited) kept the migration lock from every later pod: Postgres checks the client is
    // still there every second, and ends it.
    const idle = String(MIGRATION_IDLE_TIMEOUT_MS);
    await session`SELECT set_config('lock_timeout', '0', false), set_config('statement_timeout', '0', false),
      set_config('idle_in_transaction_session_timeout', ${idle}, false), set_config('idle_session_timeout', ${idle}, false),
      set_config('client_connection_check_interval', '1000', false)`;
    const [{ pid }] = await session<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    const migration: Migration = { sql, session, pid, log };
    // Polled, not waited for in a statement: a waiting statement holds a snapshot, which the lock holder's CONCURRENTLY
    // build waits to see end, while the statement waits for that holder's lock.
    while (!(await session<{ got: boolean }[]>`SELECT pg_try_advisory_lock(${MIGRATION_LOCK_ID}) AS got`)[0]!.got)
      await sleep(LOCK_POLL_MS);
    await session`CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set((await session<{ name: string }[]>`SELECT name FROM schema_migrations`).map((r) => r.name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await apply(migration, file, await readFile(path.join(dir, file), "utf8")).catch((err: unknown) => {
        // The operator's first question: which file. The error keeps its code, which says whether to retry.
        if (err instanceof Error) err.message = `migration ${file}: ${err.message}`;
        throw err;
      });
      applied.push(file);
    }
    return applied;
  } finally {
    // Back to the pool as it came (the settings the connection started with), unless the connection is gone.
    await session
      .unsafe(`SELECT pg_advisory_unlock_all(); RESET lock_timeout; RESET statement_timeout;
        RESET idle_in_transaction_session_timeout; RESET idle_session_timeout; RESET client_connection_check_interval`)
      .catch(() => {});
    session.release();
  }
}

/** The session migrations run on (its backend's `pid`), and the pool beside it. */
interface Migration {
  sql: Sql;
  session: postgres.ReservedSql;
  pid: number;
  log: Logger | undefined;
}

async function apply({ sql, session, pid, log }: Migration, file: string, text: string): Promise<void> {
  const statements = withoutComments(text);
  const recorded = () => session`INSERT INTO schema_migrations (name) VALUES (${file})`;
  if (!OUTSIDE_TRANSACTION.test(statements)) {
    for (let attempt = 1; ; attempt++) {
      await session.unsafe("BEGIN");
      try {
        // A lock waited for queues every later request for the table behind it: the wait is shorter than the
        // serving replicas' lock_timeout, and the migration gives way and tries again (a report reading the table).
        // Reads that always overlap leave it no gap (review N3: not done in 20 s): the last try waits its turn.
        const wait = attempt < LOCK_TRIES ? LOCK_WAIT_MS : 0;
        await session`SELECT set_config('lock_timeout', ${String(wait)}, true)`;
        await session.unsafe(text);
        await recorded();
        await session.unsafe("COMMIT");
        return;
      } catch (err) {
        await session.unsafe("ROLLBACK").catch(() => {});
        if ((err as { code?: unknown }).code !== "55P03") throw err;
      }
      await sleep(LOCK_WAIT_MS);
    }
  }
  if (statements.replace(/;$/, "").includes(";")) throw new Error("a CONCURRENTLY statement must be alone in its file");
  const index = CONCURRENT_INDEX.exec(statements)?.[1];
  if (index) {
    // A build that failed (a unique index over duplicates) or was cut leaves its index invalid, which IF NOT EXISTS
    // would take as built.
    const [left] = await session<{ invalid: boolean }[]>`
      SELECT NOT indisvalid AS invalid FROM pg_index WHERE indexrelid = to_regclass(${index})`;
    if (left?.invalid) await session.unsafe(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
  }
  await whileWaiting(sql, pid, session.unsafe(text), (waitingFor) =>
    log?.warn({ migration: file, waiting_for: waitingFor }, "migration waits for these sessions' transactions to end"),
  );
  await recorded();
}

/**
 * Runs until `statement` settles, telling `onWait` each new set of sessions it waits for, read on another connection of
 * the pool (with none spare, nothing is told, and nothing waits for it).
 * A CONCURRENTLY build waits for every transaction holding a snapshot older than its own, on any table (pg_dump's,
 * a report's in REPEATABLE READ): start-up then gives up at DB_STARTUP_WAIT_MS, and the log says which to end.
 */
async function whileWaiting(
  sql: Sql,
  pid: number,
  statement: Promise<unknown>,
  onWait: (sessions: object[]) => void,
): Promise<void> {
  const ended = statement.then(
    () => true,
    () => true,
  );
  let last = "";
  while (!(await Promise.race([ended, sleep(WAIT_REPORT_MS).then(() => false)]))) {
    // Given up once the statement settles: on a pool of one (DB_POOL_MAX=1, no DATABASE_MIGRATE_URL) the question
    // waits for the session's own connection, which sat idle until idle_session_timeout ended it, and the next file
    // ran on a new one, without the lock (review N4). usename and backend_start show for another role's sessions too.
    const waitingFor = await Promise.race([
      sql`
        SELECT pid, usename, application_name, backend_start, state, xact_start, left(query, 100) AS query
        FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(${pid})) ORDER BY pid`.catch(() => []),
      ended.then(() => []),
    ]);
    const seen = JSON.stringify(waitingFor.map((s) => s.pid));
    if (waitingFor.length > 0 && seen !== last) onWait([...waitingFor]);
    last = seen;
  }
  await statement;
}
