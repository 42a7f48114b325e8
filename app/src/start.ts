import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { createAuthenticator } from "./middleware/auth.ts";
import { buildApp } from "./server.ts";
import { createCache } from "./services/cache.ts";
import { createDb, migrate } from "./services/db.ts";
import { createOllama } from "./services/ollama.ts";
import { createQdrant } from "./services/qdrant.ts";
import { createRag } from "./services/rag.ts";
import { createRateLimiter } from "./services/ratelimit.ts";
import { createStore } from "./services/store.ts";

/** app/migrations, both from app/src (tsx) and from app/dist (the bundled image). */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url));

export interface RunningServer {
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish (at most `graceMs`), then closes Postgres and Redis. */
  close(graceMs?: number): Promise<void>;
}

/** Connects the dependencies, runs migrations and listens; the one composition root for main.ts, tests and bench. */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const metrics = createMetrics();
  const sql = createDb(config.DATABASE_URL, { max: config.DB_POOL_MAX, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS });
  const cache = createCache({
    url: config.REDIS_URL,
    password: config.REDIS_PASSWORD,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    metrics,
    log,
  });
  try {
    const applied = await migrate(sql, MIGRATIONS_DIR);
    log.info({ applied }, "migrations done");
  } catch (err) {
    await Promise.allSettled([sql.end({ timeout: 1 }), cache.close()]);
    throw err;
  }

  const store = createStore(sql);
  const ollama = createOllama({
    url: config.OLLAMA_URL,
    timeoutMs: config.OLLAMA_TIMEOUT_MS,
    embedModel: config.EMBED_MODEL,
    batchSize: config.EMBED_BATCH_SIZE,
    metrics,
  });
  const qdrant = createQdrant({
    url: config.QDRANT_URL,
    apiKey: config.QDRANT_API_KEY,
    collection: config.QDRANT_COLLECTION,
    timeoutMs: config.QDRANT_TIMEOUT_MS,
    metrics,
  });
  let shuttingDown = false;
  const app = buildApp({
    config,
    log,
    metrics,
    store,
    rag: createRag({ config, store, cache, ollama, qdrant, metrics, log }),
    rateLimiter: createRateLimiter(cache, config.RATE_LIMIT_PER_MINUTE),
    authenticate: createAuthenticator(config.API_KEYS, config.ADMIN_API_KEYS, store),
    probes: {
      postgres: { critical: true, check: () => store.ping() },
      redis: { critical: false, check: () => cache.ping() },
      qdrant: { critical: false, check: () => qdrant.ready() },
      ollama: { critical: false, check: () => ollama.version() },
    },
    isShuttingDown: () => shuttingDown,
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, () => resolve(s as Server));
    s.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "127.0.0.1" : config.HOST;
  log.info({ port }, "listening");

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    close(graceMs = config.SHUTDOWN_TIMEOUT_MS) {
      closing ??= (async () => {
        shuttingDown = true;
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), graceMs);
        });
        if ((await Promise.race([drained, timedOut])) === "timeout") {
          log.warn({ graceMs }, "in-flight requests did not finish in time; closing their connections");
          server.closeAllConnections();
          await drained;
        }
        clearTimeout(timer);
        await Promise.allSettled([sql.end({ timeout: 5 }), cache.close()]);
        log.info("stopped");
      })();
      return closing;
    },
  };
}
