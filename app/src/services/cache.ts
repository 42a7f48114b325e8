import type { z } from "@hono/zod-openapi";
import { createClient, ErrorReply } from "redis";
import { beforeDeadline } from "../deadline.ts";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { readOnlyNodeCheck, silentConnectionCheck } from "./connection-health.ts";
import { slidingWindow, trimIdleLogs } from "./sliding-window.ts";

const connect = (options: Parameters<typeof createClient>[0]) =>
  createClient({ ...options, scripts: { slidingWindow, trimIdleLogs } });

export type RedisClient = ReturnType<typeof connect>;

/**
 * An entry read back from Redis, checked against its shape: undefined when it is not JSON or not of that shape (one
 * written by another version of the app during a rolling deploy, say), so the caller treats it as a miss.
 */
export function parseEntry<T>(schema: z.ZodType<T>, raw: string): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export interface CacheRead<T> {
  value: T | undefined;
  result: "hit" | "miss" | "error";
}

export interface CacheOptions {
  url: string;
  password?: string | undefined;
  commandTimeoutMs: number;
  metrics: Metrics;
  log: Logger;
}

/** What an operation is for, the `use` label of redis_operations_total: which part of the app a failing Redis hurts. */
export type RedisUse = "cache" | "ratelimit" | "readiness";

const resultsOf = (use: RedisUse) => ({ ok: { use, result: "ok" }, error: { use, result: "error" } });
/** Label sets built once: `run` is on every request's path. */
const RESULTS = { cache: resultsOf("cache"), ratelimit: resultsOf("ratelimit"), readiness: resultsOf("readiness") };

/** Commands waiting for Redis, at most: past it a command fails at once, so a long stall cannot grow the queue. */
const MAX_QUEUED_COMMANDS = 10_000;
/** Operations in a row without an answer within the deadline, after which the connection is taken for dead. */
const MISSES_BEFORE_RECONNECT = 3;
/** How long closing waits for replies still owed (to requests that gave up on them) before dropping the connection. */
const CLOSE_WAIT_MS = 1_000;

/**
 * Milliseconds before the n-th reconnect: doubling to 2 s, plus 0-200 ms at random as node-redis' default strategy
 * adds (socket.js `defaultReconnectStrategy`), so replicas cut off together (a failover) do not all come back at the
 * same instants. Unlike that default, a socket timeout is tried again too.
 */
export const redisReconnectDelay = (retries: number) => Math.min(100 * 2 ** retries, 2000) + Math.floor(Math.random() * 200);

/**
 * Redis as a best-effort cache: TLS and password come from a rediss:// URL (or REDIS_PASSWORD), commands fail fast
 * while disconnected (no offline queue) or past the command deadline (`run`), and every failure is reported as a miss.
 */
export function createCache({ url, password, commandTimeoutMs, metrics, log }: CacheOptions) {
  let lastErrorLog = Number.NEGATIVE_INFINITY;
  /** Why the connection last failed, until it is ready again: readiness names it (`ping`). */
  let lastError: string | undefined;
  const open = (): RedisClient => {
    const c = connect({
      url,
      ...(password ? { password } : {}),
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      // Off (its default is 5 s): node-redis' per-command timeout stops counting once the command is written
      // (redis/node-redis#3008: "Once a command is sent over the wire, the timeout is deleted"), and it arms an
      // AbortSignal.timeout per command. `run` bounds each operation instead.
      commandOptions: { timeout: 0 },
      // Off (with RESP3, node-redis 6's default, it is "auto"): each connect sent `CLIENT MAINT_NOTIFICATIONS ON`, a
      // Redis Enterprise command open-source servers refuse ("ERR unknown subcommand", redis/go-redis#3536 on Redis
      // 8.2.2), after a DNS lookup of its own that failed the whole handshake when it failed (@redis/client 6.3.1
      // enterprise-maintenance-manager.js, getHandshakeCommand and determineEndpoint).
      maintNotifications: "disabled",
      socket: {
        connectTimeout: Math.max(commandTimeoutMs, 1000),
        reconnectStrategy: redisReconnectDelay,
      },
    });
    c.on("error", (err: unknown) => {
      lastError = describe(err);
      // The client emits on every reconnect attempt; one line every 10 s is enough.
      if (performance.now() - lastErrorLog > 10_000) {
        lastErrorLog = performance.now();
        log.warn({ err: lastError }, "redis error");
      }
    });
    c.on("ready", () => {
      lastError = undefined;
      log.info("redis connected");
    });
    c.connect().catch(() => {});
    return c;
  };
  let client = open();

  /** Opens a new connection (its name looked up again) in place of `used`, unless that was done already. */
  function replace(used: RedisClient, why: string, fields: object = {}): void {
    if (used !== client) return;
    log.warn(fields, why);
    client = open();
    used.destroy();
  }

  /**
   * A silent connection is replaced. The new one fails at once while Redis cannot be reached (no offline queue), so
   * requests skip the cache without waiting, and it is used as soon as Redis answers again.
   */
  const silence = silentConnectionCheck(MISSES_BEFORE_RECONNECT, (missed) =>
    replace(client, "redis stopped answering: opening a new connection", { missed }),
  );
  // After an ElastiCache failover the old primary may keep the connection open as a replica (AWS re:Post, "READONLY
  // You can't write against a read only replica"); node-redis has no reconnect-on-error hook.
  const readOnlyNode = readOnlyNodeCheck(() =>
    replace(
      client,
      "redis answered READONLY (a failover left this connection on a replica, or REDIS_URL names one): opening a new connection",
    ),
  );

  /**
   * Runs Redis commands within REDIS_COMMAND_TIMEOUT_MS, waiting for the reply included: a Redis that keeps the
   * connection open but does not answer stalled every request that touched it. A command past the deadline is
   * left to finish or fail on its own.
   */
  async function run<T>(op: (c: RedisClient) => Promise<T>, use: RedisUse = "cache"): Promise<T> {
    const used = client;
    const counted = RESULTS[use];
    try {
      const result = await beforeDeadline(op(used), commandTimeoutMs, () => {
        if (used === client) silence.missed();
        return new Error(`redis did not answer within ${commandTimeoutMs} ms`);
      });
      silence.answered();
      metrics.redisOperations.inc(counted.ok);
      return result;
    } catch (err) {
      metrics.redisOperations.inc(counted.error);
      // Reads still answer on a replica; every write (cache entries, the rate limiter's log) fails until it is replaced.
      if (err instanceof ErrorReply && err.message.startsWith("READONLY") && used === client) readOnlyNode();
      throw err;
    }
  }

  /** A lookup, not counted: the caller `count`s it once it knows whether the read was used (and how). */
  async function read<T>(cache: string, op: (c: RedisClient) => Promise<T | undefined>): Promise<CacheRead<T>> {
    try {
      const value = await run(op);
      return { value, result: value === undefined ? "miss" : "hit" };
    } catch (err) {
      log.debug({ err: describe(err), cache }, "cache read failed");
      return { value: undefined, result: "error" };
    }
  }

  /** Counts a lookup (hit rates also cover reads answered without Redis, e.g. a local copy). */
  function count(cache: string, result: CacheRead<unknown>["result"]): void {
    metrics.cacheRequests.inc({ cache, result });
  }

  return {
    run,
    read,
    count,

    /** Fire-and-forget write: a failed cache write never fails or delays a request. */
    write(cache: string, op: (c: RedisClient) => Promise<unknown>): void {
      run(op).catch((err: unknown) => log.debug({ err: describe(err), cache }, "cache write failed"));
    },

    /**
     * Readiness: a write, as every use of Redis here writes (cache entries, the rate limiter's log). A PING answered on
     * a read-only replica and on a Redis out of memory, where every write failed and the limiter ran per process.
     * While the connection is down it says why it last failed: "The client is offline" alone hid a password Redis
     * now requires (NOAUTH) in a log line written at most every 10 s (probe BK).
     */
    ping: () =>
      run((c) => c.set("readiness-probe", "1", { PX: 10_000 }), "readiness").catch((err: unknown) => {
        throw lastError && !client.isReady ? new Error(`${describe(err)}: ${lastError}`) : err;
      }),

    /**
     * Closes the connection once the replies owed on it arrive, for at most CLOSE_WAIT_MS: node-redis' `close` waits
     * for every queued reply, so a partitioned Redis would hold the process past its grace period until SIGKILL.
     */
    async close(): Promise<void> {
      const last = client;
      if (!last.isOpen) return void last.destroy();
      await beforeDeadline(last.close(), CLOSE_WAIT_MS, () => new Error("redis close timed out")).catch(() => last.destroy());
    },
  };
}

export type Cache = ReturnType<typeof createCache>;

/**
 * A JSON entry under `key`. One of another shape (another app version's, during a rolling deploy) or not JSON is a read
 * error, so a miss, but Redis answered: parsed outside `run`, it is no failed Redis operation (probe CK: 2 in 5 counted
 * so, against ApiCacheErrors' "the API cannot use Redis").
 */
export async function readEntry<T>(
  cache: Pick<Cache, "read">,
  name: string,
  key: string,
  schema: z.ZodType<T>,
): Promise<CacheRead<T>> {
  const raw = await cache.read(name, async (c) => (await c.get(key)) ?? undefined);
  if (raw.value === undefined) return { value: undefined, result: raw.result };
  const value = parseEntry(schema, raw.value);
  return value === undefined ? { value, result: "error" } : { value, result: "hit" };
}
