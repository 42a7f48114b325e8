import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { beforeDeadline } from "../deadline.ts";
import { dependencyUnavailable, describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  readOnlyNodeCheck,
  type SilentConnectionCheck,
  silentConnectionCheck,
  unansweredConnectionCheck,
} from "./connection-health.ts";

export type Sql = postgres.Sql;

export interface DbOptions {
  max: number;
  connectTimeoutMs: number;
  /** PEM CA bundle: TLS with the server certificate and host name verified (libpq sslmode=verify-full). */
  ca?: string | undefined;
  /** Where dropping silent connections is reported. */
  log?: Logger | undefined;
  /**
   * Server-side bounds on each statement (Postgres `lock_timeout` and `statement_timeout`, set at connect). The
   * client's deadline answers the request but leaves a sent statement running: one waiting on a lock held elsewhere
   * kept its connection until the lock went, and a few of those took the whole pool, failing every request.
   */
  lockTimeoutMs?: number | undefined;
  statementTimeoutMs?: number | undefined;
  /**
   * Called when a statement got no answer by its deadline (`missed`), and when the pool's connections are dropped as
   * silent or on a read-only node (`dropped`): another client's connection to the same server may be cut off too.
   */
  onTrouble?: ((kind: "missed" | "dropped") => void) | undefined;
  /** Where each statement's time is observed, in seconds, from its hand-over to the pool to its answer or failure. */
  statementDuration?: { observe(seconds: number): void } | undefined;
}

/** The pool's connections and the app's statements on them, as db_pool_* shows them (metrics.ts). */
export interface PoolUse {
  /** Connections the pool may open: its `max` (DB_POOL_MAX). */
  size: number;
  /** Connections a statement holds. */
  active: number;
  /** Statements waiting for a connection. */
  waiting: number;
}

/**
 * Reconnect delay in seconds after the n-th failed attempt. postgres.js' default grows to 20 s and is shared by the
 * whole pool, so after an outage every query waited out the backoff; capped at 0.5 s the pool is back within a second.
 */
export const reconnectBackoff = (retries: number) => Math.min(0.05 * 2 ** retries, 0.5);

/** Statements in a row that went out and got no answer by their deadline, after which the pool's connections are dropped. */
const SILENT_MISSES_BEFORE_RECONNECT = 3;
/** ... with no statement of the pool answered for this long: a busy pool still answers some (connection-health.ts). */
const SILENT_FOR_MS = 1_000;

/** What `withDeadline` tells a pool about its connections. */
interface PoolWatch {
  /** The client's sockets (socketOpener); a closed one stays until the client opens the next. */
  open: Set<Socket>;
  silence: SilentConnectionCheck;
  /** A statement got no answer by its deadline. */
  missed(): void;
  /** A statement got 25006: the connection reached a read-only node. */
  readOnly(): void;
  /** What the pool was created with (watchUnanswered reads its timeouts and log). */
  opts: DbOptions;
  /**
   * The pool's last statement to end was a 503 (no answer by its deadline, no connection, or a refusal such as a lock
   * or statement timeout): `reachable` is false until one is answered.
   */
  unreachable: boolean;
  /** Statements handed to the pool and not yet settled (`poolUse`): one past its deadline still runs, and counts. */
  inFlight: number;
}
const pools = new WeakMap<Sql, PoolWatch>();

/** Counts a statement handed to the pool; returns when, for `statementEnded`. */
function statementStarted(pool: PoolWatch): number {
  pool.inFlight++;
  return performance.now();
}

/** The statement counted at `startedAt` settled: it holds no connection, and waits for none, any more. */
function statementEnded(pool: PoolWatch, startedAt: number): void {
  pool.inFlight--;
  pool.opts.statementDuration?.observe((performance.now() - startedAt) / 1000);
}

/**
 * How busy the pool is, from the statements the app has in flight on it (`withDeadline`, `counted`): postgres.js keeps
 * its connections' queues to itself (3.4.9 index.js: open, busy, full, connecting are the closure's). It hands a
 * statement to an idle connection, else opens one (a closed connection of its `max`), and only once none is left
 * pipelines it behind the statements of a busy one, or queues it: so up to `max` statements in flight hold as many
 * connections, and those past `max` wait for one. (A connection that ends its statements while another still has some
 * pipelined sits idle until the next statement comes: for that moment the count says busy.)
 */
export function poolUse(sql: Sql): PoolUse {
  const pool = pools.get(sql);
  if (!pool) throw new Error("poolUse: a pool created by createDb");
  const { max: size } = pool.opts;
  return { size, active: Math.min(pool.inFlight, size), waiting: Math.max(0, pool.inFlight - size) };
}

/**
 * A statement of the pool with no deadline of its own (turn retention's, bounded by Postgres' statement_timeout),
 * counted in `poolUse` as `withDeadline` counts its statements: it holds one of the pool's connections all the same.
 */
export function counted<T>(sql: Sql, query: Promise<T>): Promise<T> {
  const pool = pools.get(sql);
  if (!pool) return query;
  const startedAt = statementStarted(pool);
  return query.finally(() => statementEnded(pool, startedAt));
}

/** False while the pool's last statement to end was a 503 (`PoolWatch.unreachable`). */
export const reachable = (sql: Sql): boolean => !pools.get(sql)?.unreachable;

/** The client's newest connection still open, if any: the one a single-connection client (a listener) is using. */
export function openConnection(sql: Sql): Socket | undefined {
  let newest: Socket | undefined;
  for (const socket of pools.get(sql)?.open ?? []) if (!socket.destroyed) newest = socket;
  return newest;
}

/** A connection that lived at least this long reached a Postgres that serves: the reconnect backoff starts over. */
const HEALTHY_CONNECTION_MS = 1_000;

/**
 * Opens a connection's socket as postgres.js does (net.connect; it then runs its startup or TLS handshake over it,
 * under connect_timeout), and keeps it where `withDeadline` can close it. postgres.js documents the `socket` option
 * (README "Custom socket": a function returning a duplex stream, awaited) but not in its types.
 *
 * It also backs off (`reconnectBackoff`) while connections die young. postgres.js does not when a connection with a
 * statement waiting to be its first is closed without an error (3.4.9 connection.js `closed`: `if (initial) return
 * reconnect()` before the delay is updated): the LISTEN connection, which always has its LISTEN waiting, reconnected
 * about 650 times a second for as long as Postgres (or a proxy in front of it) accepted and closed connections.
 *
 * A URL naming several hosts (`postgres://u@h1:5432,h2:5432/db`) has the pool's connections go to one host, the first
 * to start with, and to the next once a connection to it ended before it could have served: refused, past its
 * connect_timeout, or ended by its target_session_attrs check. postgres.js moves on to the next host at every connect
 * of each connection (connection.js `connect`, `hostIndex`), but only for the sockets it opens itself: through this
 * opener every connection went to the first host, and with it down the app never started.
 */
function socketOpener(open: Set<Socket>) {
  const openedAt = new WeakMap<Socket, number>();
  /** The index of the host each socket was opened to: only a failure of the current host moves the pool on. */
  const openedTo = new WeakMap<Socket, number>();
  let failures = 0;
  let hostIndex = 0;
  return async ({
    host,
    port,
    path: socketPath,
    connect_timeout: connectTimeoutS,
  }: {
    host: string[];
    port: number[];
    path?: string | false;
    connect_timeout: number;
  }) => {
    // Read from the sockets, not their events: postgres.js removes every listener from a socket it starts TLS on.
    const now = performance.now();
    const couldServeAfterMs = connectTimeoutS * 1000 + HEALTHY_CONNECTION_MS;
    let diedYoung = false;
    let healthy = false;
    let hostFailed = false;
    for (const old of open) {
      const age = now - openedAt.get(old)!;
      if (!old.destroyed) healthy ||= age >= HEALTHY_CONNECTION_MS;
      else {
        diedYoung ||= age < HEALTHY_CONNECTION_MS;
        hostFailed ||= openedTo.get(old) === hostIndex && age < couldServeAfterMs;
        open.delete(old);
      }
    }
    if (hostFailed) hostIndex = (hostIndex + 1) % host.length;
    if (diedYoung) failures++;
    else if (healthy) failures = 0;
    if (failures > 0) await sleep(reconnectBackoff(failures) * 1000);
    const [toHost, toPort] = [host[hostIndex]!, port[hostIndex]!];
    const socket = socketPath ? connect(socketPath) : connect(toPort, toHost);
    // As on postgres.js' own sockets: its errors print them, and its TLS handshake checks the server certificate
    // against `socket.host` (servername), so without it the host name would go unverified.
    Object.assign(socket, { host: toHost, port: toPort });
    openedAt.set(socket, performance.now());
    openedTo.set(socket, hostIndex);
    open.add(socket);
    return socket;
  };
}

export function createDb(url: string, opts: DbOptions): Sql {
  const open = new Set<Socket>();
  const sql = postgres(url, {
    max: opts.max,
    connect_timeout: opts.connectTimeoutMs / 1000,
    backoff: reconnectBackoff,
    idle_timeout: 60,
    onnotice: () => {},
    // Off: postgres.js (3.4.9) otherwise runs a pg_type query as every new connection's first statement and drops its
    // promise, so that query failing (a backend terminated in a restart or failover) is an unhandled rejection, which
    // ends the process (porsager/postgres#1192, #1205, #1223, open). Without the fetched types it has no array
    // parsers or serializers: the app's statements pass and read lists as jsonb instead.
    fetch_types: false,
    // Sent in the startup message (postgres.js types: ConnectionParameters; connection.js StartupMessage), in ms.
    connection: {
      application_name: "agent-api",
      ...(opts.lockTimeoutMs ? { lock_timeout: opts.lockTimeoutMs } : {}),
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
    },
    // postgres.js passes the object to tls.connect with servername = the URL's host, so the name is checked too.
    ...(opts.ca ? { ssl: { ca: opts.ca, rejectUnauthorized: true } } : {}),
    ...({ socket: socketOpener(open) } as object),
  });
  // Every socket of the pool is closed: postgres.js reconnects (looking the host up again, so a failover's new node is
  // found), and statements on the closed sockets fail as connection errors, which are 503s anyway.
  const reconnect = (why: string, fields: object) => {
    opts.log?.warn({ ...fields, connections: open.size }, why);
    for (const socket of open) socket.destroy();
    opts.onTrouble?.("dropped");
  };
  pools.set(sql, {
    open,
    silence: silentConnectionCheck(
      SILENT_MISSES_BEFORE_RECONNECT,
      (missed) => reconnect("postgres stopped answering: closing the pool's connections", { missed }),
      SILENT_FOR_MS,
    ),
    // An RDS blue/green switchover sets the old primary read-only (RDS Proxy guide: "the Blue database enters
    // read-only mode"); a connection that reached it through a cached DNS answer gets 25006 on every write.
    readOnly: readOnlyNodeCheck(() => reconnect("postgres answered read-only (25006): closing the pool's connections", {})),
    missed() {
      this.silence.missed();
      opts.onTrouble?.("missed");
    },
    opts,
    unreachable: false,
    inFlight: 0,
  });
  return sql;
}

/**
 * How often `watchUnanswered` samples the pool's connections. A write in the same period as the answer before it is
 * seen only with that connection's next write: meanwhile the pool may run a connection short.
 */
const UNANSWERED_SAMPLE_MS = 250;
/** Room past the longest wait of a live connection for the answer's way back and a busy event loop. */
const UNANSWERED_GRACE_MS = 2_000;

/**
 * Closes each connection of the pool that has read nothing for longer than a live Postgres takes to answer anything
 * (its statement_timeout, or the connect timeout for a start-up), though a statement went out to it after its last
 * answer: one flow silenced on the way while the pool's other connections answer, so the pool-wide check
 * (SILENT_MISSES_BEFORE_RECONNECT) never fires. postgres.js keeps such a connection busy for good and, once every
 * connection is busy, pipelines statements onto it, each a 503 at its deadline: with 9 of 10 connections silent, 467
 * 503s over 25 s, and their sockets open until TCP gave up (probe CA). Started once migrations are done: their
 * session sets no statement_timeout (migrations.ts). Returns its stop.
 */
export function watchUnanswered(sql: Sql): () => void {
  const watch = pools.get(sql);
  const { statementTimeoutMs, connectTimeoutMs, log } = watch?.opts ?? {};
  if (!watch || !statementTimeoutMs) throw new Error("watchUnanswered: a pool created with statementTimeoutMs");
  const limitMs = Math.max(statementTimeoutMs, connectTimeoutMs ?? 0) + UNANSWERED_GRACE_MS;
  const check = unansweredConnectionCheck<Socket>(limitMs, (socket) => {
    // Judged after the reads already waiting are taken (setImmediate runs after the poll phase): samples run before
    // them, so after the event loop was held an answer that came meanwhile is not yet counted.
    const read = socket.bytesRead;
    setImmediate(() => {
      if (socket.destroyed || socket.bytesRead !== read) return;
      log?.warn({ limit_ms: limitMs }, "a postgres connection stopped answering while others answer: closing it");
      socket.destroy();
    });
  });
  // A closed socket stays in `open` until the pool opens its next one; it reads and writes nothing more, and one
  // reported is skipped above.
  const timer = setInterval(() => check(watch.open), UNANSWERED_SAMPLE_MS).unref();
  return () => clearInterval(timer);
}

/**
 * Codes that say Postgres cannot serve statements now, whatever the statement: the driver's own connection errors,
 * SQLSTATE class 08 (connection exception), 53 (insufficient resources: 53300 too many connections, 53100 disk full),
 * 57 (operator intervention: 57P01 shutdown, 57P03 starting up, 57014 cancelled, as by statement_timeout), 55P03 (a
 * lock not granted within lock_timeout), 25006 (a read-only transaction: the endpoint reached a standby, as during
 * a failover) and 40P01 (a deadlock with another transaction: asked again, it goes through).
 */
const UNAVAILABLE_CODES =
  /^(ECONN|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EPIPE|CONNECT_TIMEOUT|CONNECTION_|08|53|57|55P03$|25006$|40P01$)/;

/**
 * True when a statement failed because a row it refers to is gone (SQLSTATE 23503): a turn's session, or a feedback's
 * turn, deleted by turn retention while the statement ran.
 */
export const isForeignKeyViolation = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === "23503";

/**
 * True when refuse_partial_write (migration 018, SQLSTATE AS409) undid an ingest's statement: another write leased some
 * of its documents after the statement's snapshot was taken.
 */
export const isPartialWrite = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === "AS409";

/**
 * True when the error says Postgres could not serve the statement, as opposed to a bad statement: a 503, not a 500.
 * A FATAL or PANIC error ends the backend, so it is one too: at a connection's start that is a refusal such as
 * 53300 (max_connections or the role's limit reached), 28P01 (the password was rotated) or 3D000 (no such database).
 */
export function isUnavailable(err: unknown): boolean {
  const { code, severity } = (err ?? {}) as { code?: unknown; severity?: unknown };
  if (severity === "FATAL" || severity === "PANIC") return true;
  return typeof code === "string" && UNAVAILABLE_CODES.test(code);
}

/**
 * A statement's rows as Postgres sent them. postgres.js 3.4.9 (3.4.10 too) counts a connection's rows in one variable
 * that only a statement's successful end resets: after a statement that failed midway through its rows (its
 * statement_timeout, a cancel, a row's error) or whose connection closed mid-answer, the next statement on that
 * connection stores its rows after that many empty slots (porsager/postgres#1119, #1181, open). Its count is still
 * right, so the leading slots are dropped; rows that are not that shape are refused as garbled (a 503).
 */
export function exactRows<T>(rows: T): T {
  if (!Array.isArray(rows)) return rows;
  const count = (rows as { count?: unknown }).count;
  if (typeof count !== "number" || rows.length <= count) return rows;
  const stale = rows.length - count;
  for (let i = 0; i < rows.length; i++) {
    if (i in rows === i < stale) throw dependencyUnavailable("postgres", "the driver garbled an answer's rows");
  }
  rows.splice(0, stale);
  return rows;
}

/**
 * Internal postgres.js query state (src/query.js, src/index.js `cancel`): `state` once a connection took the statement
 * (it is written at once, behind the ones before it), `active` while it is the one the connection is running;
 * `strings` and `args` are what a connection builds it from when it takes it, and `cancelled` makes it skip it.
 */
type QueryState = {
  state?: unknown;
  active?: boolean;
  strings?: readonly string[];
  args?: unknown[];
  cancelled?: unknown;
  cancel(): Promise<void> | void;
};

// One array for all: postgres.js caches an error's origin per statement text array (query.js `origin`), for good.
const NO_OP: readonly string[] = Object.freeze(["SELECT 1"]);

/**
 * Makes sure a statement no connection has taken is never sent. postgres.js' cancel takes it out of the pool's queue,
 * but a statement can instead be a connecting connection's first one, and 3.4.9 (3.4.10 too) strands that connection:
 * connection.js ReadyForQuery skips a cancelled `initial` and returns without handing the connection to the pool, so
 * it sits connected and idle while statements queue behind it until its socket closes. After a Postgres partition
 * under load, every reconnecting connection took a statement about to pass its deadline, and readiness stayed false
 * for a minute. So the statement is emptied to `SELECT 1` first, and left runnable after the cancel: taken out of the
 * queue, nothing holds it; a connecting connection sends the no-op and joins the pool.
 */
function withdraw(query: QueryState): void {
  query.strings = NO_OP;
  query.args = [];
  Promise.resolve(query.cancel()).catch(() => {});
  query.cancelled = null;
}

/**
 * Runs one statement of `sql` with a deadline: past `timeoutMs`, or when Postgres cannot be reached, it is a 503. A
 * statement still waiting for a connection is taken out of the queue, so a request answered 503 never writes later.
 * One already sent is left to finish (Postgres' statement_timeout bounds it): `onLate` gets its rows if it then
 * succeeds, so a write answered 503 can be taken back (`takeBack`). (Misses in a row, sent or not, drop the pool's
 * connections: connection-health.ts.)
 */
export function withDeadline<T>(
  sql: Sql,
  query: Promise<T> & QueryState,
  timeoutMs: number,
  onLate?: (rows: T) => void,
): Promise<T> {
  let late = false;
  const pool = pools.get(sql);
  // Counted in the pool's use until the statement settles, whichever way and whenever: answered, failed, withdrawn
  // (its cancel rejects it) or late (it holds its connection until Postgres ends it). Both ends in this one `then`: no
  // promise of its own per statement (the cache hit's turn write takes this path: `npm run bench:app`).
  const startedAt = pool ? statementStarted(pool) : 0;
  const answered = query.then(
    (rows) => {
      if (pool) {
        statementEnded(pool, startedAt);
        pool.silence.answered();
        pool.unreachable = false;
      }
      const exact = exactRows(rows);
      if (late) onLate?.(exact);
      return exact;
    },
    (err: unknown) => {
      if (pool) statementEnded(pool, startedAt);
      throw err;
    },
  );
  return beforeDeadline(answered, timeoutMs, () => {
    // Unsent ones count too: a pool whose connections all hang (connecting into a partition) sends nothing at all.
    if (pool) pool.unreachable = true;
    pool?.missed();
    // Only one no connection took is withdrawn. One already sent behind another on its connection (postgres.js
    // pipelines when every connection is busy) is not: postgres.js 3.4.9 drops a cancelled one from the statements
    // awaiting an answer (connection.js ReadyForQuery), so its rows went to the statement after it, another
    // request's, and every answer on that connection after them came one statement late.
    if (!query.state) withdraw(query);
    else late = true;
    return dependencyUnavailable("postgres", `no answer within ${timeoutMs} ms`);
  }).catch((err: unknown) => {
    if ((err as { code?: unknown } | null)?.code === "25006") pool?.readOnly();
    if (isUnavailable(err)) {
      if (pool) pool.unreachable = true;
      throw dependencyUnavailable("postgres", (err as { code: string }).code);
    }
    throw err;
  });
}

/** Tries of a take-back, the first included, each after twice the wait before the last (at most 10 s): about a minute. */
const TAKE_BACK_TRIES = 8;
const TAKE_BACK_FIRST_WAIT_MS = 1_000;

/**
 * Deletes turns a write inserted after its request was answered 503 or 504: its statement was already sent at the
 * deadline (a slow disk, a lock released late) and Postgres went on to commit it. The client asks again, as the
 * answer told it, and would otherwise find its question twice. A failed try is tried again, about a minute long: a
 * slow Postgres that made the turns late often failed the take-back too (its own deadline, on the same pool), and the
 * turns stayed (probe BN: 68 turns answered 503 left stored). Best effort: a failure is logged, not thrown.
 */
export function takeBackTurns(sql: Sql, requestIds: string[], timeoutMs: number, log: Logger | undefined, tries = 1): void {
  if (requestIds.length === 0) return;
  // With the sessions and source lists they leave without a turn (migration 014); deleting by request id, a try again
  // is harmless. (jsonb, not text[]: see fetch_types above.)
  const statement = sql`SELECT take_back_turns(${sql.json(requestIds)})`;
  // A delete past its own deadline was sent, and still deletes (or Postgres ends it with the rest of the outage).
  withDeadline(sql, statement, timeoutMs).then(
    () => log?.warn({ request_ids: requestIds }, "turns committed after their request was answered 503 or 504: taken back"),
    (err: unknown) => {
      const fields = { request_ids: requestIds, err: describe(err), tries };
      if (tries >= TAKE_BACK_TRIES) {
        log?.error(fields, "turns committed after their request was answered 503 or 504: maybe not taken back");
        return;
      }
      const waitMs = Math.min(10_000, TAKE_BACK_FIRST_WAIT_MS * 2 ** (tries - 1));
      log?.warn(
        { ...fields, retry_in_ms: waitMs },
        "turns committed after their request was answered 503 or 504: taking them back failed",
      );
      setTimeout(() => takeBackTurns(sql, requestIds, timeoutMs, log, tries + 1), waitMs).unref();
    },
  );
}
