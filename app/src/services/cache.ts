import { createClient } from "redis";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { slidingWindow } from "./sliding-window.ts";

const connect = (options: Parameters<typeof createClient>[0]) => createClient({ ...options, scripts: { slidingWindow } });

export type RedisClient = ReturnType<typeof connect>;

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

/**
 * Redis as a best-effort cache: TLS and password come from a rediss:// URL (or REDIS_PASSWORD), commands fail fast
 * while disconnected (no offline queue, short timeout), and every failure is reported as a miss.
 */
export function createCache({ url, password, commandTimeoutMs, metrics, log }: CacheOptions) {
  const client: RedisClient = connect({
    url,
    ...(password ? { password } : {}),
    disableOfflineQueue: true,
    commandOptions: { timeout: commandTimeoutMs },
    socket: {
      connectTimeout: Math.max(commandTimeoutMs, 1000),
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000),
    },
  });

  let lastErrorLog = 0;
  client.on("error", (err: unknown) => {
    // The client emits on every reconnect attempt; one line every 10 s is enough.
    if (Date.now() - lastErrorLog > 10_000) {
      lastErrorLog = Date.now();
      log.warn({ err: describe(err) }, "redis error");
    }
  });
  client.on("ready", () => log.info("redis connected"));
  client.connect().catch(() => {});

  /** A lookup without counting it: for a read that may turn out unneeded (`count` it if used). */
  async function read<T>(cache: string, op: (c: RedisClient) => Promise<T | undefined>): Promise<CacheRead<T>> {
    try {
      const value = await op(client);
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
    client,
    read,
    count,

    /** Reads through `read`; undefined is a miss. Errors are counted and reported as misses. */
    async lookup<T>(cache: string, op: (c: RedisClient) => Promise<T | undefined>): Promise<T | undefined> {
      const { value, result } = await read(cache, op);
      count(cache, result);
      return value;
    },

    /** Fire-and-forget write: a failed cache write never fails or delays a request. */
    write(cache: string, op: (c: RedisClient) => Promise<unknown>): void {
      op(client).catch((err: unknown) => log.debug({ err: describe(err), cache }, "cache write failed"));
    },

    ping: () => client.ping(),

    async close(): Promise<void> {
      if (client.isOpen) await client.close().catch(() => client.destroy());
      else client.destroy();
    },
  };
}

export type Cache = ReturnType<typeof createCache>;
