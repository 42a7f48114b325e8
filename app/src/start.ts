import { setMaxListeners } from "node:events";
import { fileURLToPath } from "node:url";
import type { Config } from "./config.ts";
import { beforeDeadline, retryUntil } from "./deadline.ts";
import { AppError, dependencyUnavailable, describe, treatAsSecret } from "./errors.ts";
import { listenHttp } from "./http.ts";
import type { Logger } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { createAuthenticator } from "./middleware/auth.ts";
import { buildOpsApp } from "./ops.ts";
import { buildApp, securityHeaders } from "./server.ts";
import { createCache } from "./services/cache.ts";
import { createCorpusVersion } from "./services/corpus.ts";
import { createDb, isUnavailable, poolUse, type Sql, watchUnanswered } from "./services/db.ts";
import { migrate } from "./services/migrations.ts";
import { createOllama } from "./services/ollama.ts";
import { createPodRouter } from "./services/ollama-pods.ts";
import { createQdrant } from "./services/qdrant.ts";
import { createDocuments } from "./services/documents.ts";
import { watchAnswerShare } from "./services/answer-share.ts";
import { createRag } from "./services/rag.ts";
import { createRateLimiter } from "./services/ratelimit.ts";
import { startRateLogSweeps } from "./services/ratelimit-sweep.ts";
import { createStore, statementTimeoutMs } from "./services/store.ts";
import { startTurnRetention } from "./services/turn-retention.ts";
import { createVectorFit } from "./services/vector-fit.ts";

/** app/migrations, both from app/src (tsx) and from app/dist (the bundled image). */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations", import.meta.url));

export interface RunningServer {
  url: string;
  port: number;
  /** The METRICS_PORT listener: /metrics and detailed readiness. */
  metricsUrl: string;
  /** Stops accepting, lets in-flight requests finish (at most `graceMs`), then closes Postgres and Redis. */
  close(graceMs?: number): Promise<void>;
}

/** Migrations run as DATABASE_MIGRATE_URL's role (DDL) when set, so DATABASE_URL's role needs DML only. */
async function runMigrations(config: Config, sql: Sql, log: Logger): Promise<void> {
  const owner = config.DATABASE_MIGRATE_URL
    ? createDb(config.DATABASE_MIGRATE_URL, {
        max: 2, // the migrations' session, and one to ask what a long index build waits for (services/migrations.ts)
        connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
        ca: config.DATABASE_CA_FILE?.contents,
      })
    : sql;
  const role = config.DATABASE_MIGRATE_URL ? "DATABASE_MIGRATE_URL" : "DATABASE_URL";
  try {
    const applied = await migrate(owner, MIGRATIONS_DIR, log);
    log.info({ applied, role }, "migrations done");
  } catch (err) {
    // Which of the two URLs failed: the refusal (a password, a grant) is the same text for both.
    if (err instanceof Error) err.message = `migrating as ${role}: ${err.message}`;
    throw err;
  } finally {
    if (owner !== sql) await owner.end({ timeout: 5 });
  }
}

/**
 * A refusal that waiting does not cure: a wrong password or role (class 28), a database that does not exist (3D000),
 * a role without a privilege it needs (class 42: 42501, as CONNECT on the database).
 */
const NOT_CURED_BY_WAITING = /^(28|3D000$|42)/;
/**
 * A statement with no answer within DB_QUERY_TIMEOUT_MS (db.ts withDeadline: postgres_unavailable) is a Postgres slow
 * or busy, which waiting cures too: taken for a refusal, a replica whose first read of the corpus version met a
 * lock or a stall of a second exited at once (the clean-clone CI's one failure of 3dd17b9, a replica started in a test).
 */
export const curedByWaiting = (err: unknown) =>
  (err instanceof AppError && err.type === "postgres_unavailable") ||
  (isUnavailable(err) && !NOT_CURED_BY_WAITING.test(String((err as { code?: unknown }).code ?? "")));

/**
 * How long before the grace period ends the shutdown notice is given (at most half the period): queries still waiting
 * for their answer end with it, and requests arriving after it are refused with it (server.ts, query.ts). At least a
 * statement's deadline (DB_QUERY_TIMEOUT_MS) and this margin more: a turn already sent to a Postgres that hangs is
 * answered at that deadline, and with 1 s for both it was answered as the drain ended and its connection was cut, a
 * reset after acceptance (probe CM: 3-4 of 16 requests).
 */
const SHUTDOWN_NOTICE_MS = 1_000;
const SHUTDOWN_NOTICE_MARGIN_MS = 500;
export const noticeLeadMs = (graceMs: number, statementMs: number) =>
  Math.min(Math.max(SHUTDOWN_NOTICE_MS, statementMs + SHUTDOWN_NOTICE_MARGIN_MS), graceMs / 2);

/** Connects the dependencies, runs migrations and listens; the one composition root for main.ts, tests and bench. */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  // As written in the URL and decoded: an error text may carry either. (config.ts refused a malformed %-escape.)
  const passwords = (url: string | undefined) => {
    const password = url ? new URL(url).password : "";
    return [password, decodeURIComponent(password)];
  };
  treatAsSecret(
    config.REDIS_PASSWORD,
    ...passwords(config.DATABASE_URL),
    ...passwords(config.DATABASE_MIGRATE_URL),
    ...passwords(config.REDIS_URL),
    ...config.API_KEYS,
    ...config.ADMIN_API_KEYS,
  );
  const metrics = createMetrics();
  const ca = config.DATABASE_CA_FILE?.contents;
  let corpus: Awaited<ReturnType<typeof createCorpusVersion>>;
  const sql = createDb(config.DATABASE_URL, {
    max: config.DB_POOL_MAX,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    ca,
    log,
    lockTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    statementTimeoutMs: statementTimeoutMs(config.DB_QUERY_TIMEOUT_MS),
    // A statement unanswered, connections dropped: the corpus listener's connection to the same Postgres may be cut off.
    onTrouble: (kind) => corpus?.probeListener(kind === "dropped"),
    statementDuration: metrics.dbStatementDuration,
  });
  // The serving pool only. Not the corpus listener's client, whose one connection holds its LISTEN for good, nor the
  // migrations' (DATABASE_MIGRATE_URL's, or this pool's own before /metrics listens: start-up).
  metrics.watchDbPool(() => poolUse(sql));
  const cache = createCache({
    url: config.REDIS_URL,
    password: config.REDIS_PASSWORD,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    metrics,
    log,
  });
  const store = createStore(sql, config.DB_QUERY_TIMEOUT_MS, log);
  // The corpus version's LISTEN, on a client of its own: corpus.ts replaces one that stopped hearing (its comment says why).
  const openListener = () => createDb(config.DATABASE_URL, { max: 1, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, ca });
  // Replies still owed (to requests that gave up on them in a partition) are waited for a second: the 5 s this once
  // waited put the exit of a drain that used its whole period past SIGKILL. (Redis' close is bounded alike.)
  const closeStores = () => Promise.allSettled([sql.end({ timeout: 1 }), cache.close()]);
  try {
    // Tried again while Postgres is unavailable (an outage, a failover, a reboot: "the database system is starting
    // up"), for DB_STARTUP_WAIT_MS in all: a replica started meanwhile comes up once Postgres answers, instead of
    // exiting into CrashLoopBackOff, whose delay before the next start doubles up to 5 minutes.
    // Each try is bounded by what is left of the wait too: the migration and LISTEN have no statement deadline, and a
    // connection gone silent (a partition after connecting) held start-up past the startupProbe, with nothing logged.
    // At least DB_CONNECT_TIMEOUT_MS, a connection's own time: the last try starts as the wait ends (and at 0, the
    // only one), and a healthy Postgres connects, migrates and listens within it.
    const giveUpAt = performance.now() + config.DB_STARTUP_WAIT_MS;
    const connectCorpus = async () => {
      await runMigrations(config, sql, log);
      return createCorpusVersion(openListener, store, log, config.CORPUS_VERSION_REFRESH_MS);
    };
    const notDone = (last?: Error) =>
      dependencyUnavailable(
        "postgres",
        `start-up not done within DB_STARTUP_WAIT_MS (${config.DB_STARTUP_WAIT_MS} ms)${last ? `: ${last.message}` : ""}`,
      );
    /** The error of an attempt cut by the wait's end: it says so already, and is not wrapped again below. */
    let cut: Error | undefined;
    const tryOnce = () => {
      const attempt = connectCorpus();
      return beforeDeadline(attempt, Math.max(giveUpAt - performance.now(), config.DB_CONNECT_TIMEOUT_MS), () => {
        // An attempt given up on that still ends: its listener and checks would live on, unused, with the process.
        attempt.then(
          (abandoned) => abandoned.stop(),
          () => {},
        );
        cut = notDone();
        return cut;
      });
    };
    corpus = await retryUntil(tryOnce, giveUpAt, {
      retryable: curedByWaiting,
      onRetry: (err, waitMs) => log.warn({ err: describe(err), retry_in_ms: waitMs }, "waiting for postgres"),
    }).catch((err: unknown) => {
      // Out of time with a refusal waiting would cure, its last try failing at once (a reset, not a silence): the
      // wait's end, and what the last try met. It was that error alone, which did not say the wait was over.
      throw curedByWaiting(err) && err !== cut ? notDone(err as Error) : err;
    });
  } catch (err) {
    await closeStores();
    throw err;
  }
  // From here on every statement of the pool has its statement_timeout: a connection silent past it is closed.
  const stopWatchingUnanswered = watchUnanswered(sql);

  // Told of pods by the count below (OLLAMA_PODS_DNS, API_PODS_DNS), each model call goes to one (ollama-pods.ts).
  const ollamaPods = createPodRouter(config.OLLAMA_URL, log);
  const ollama = createOllama({
    url: config.OLLAMA_URL,
    pods: ollamaPods,
    timeoutMs: config.OLLAMA_TIMEOUT_MS,
    embedModel: config.EMBED_MODEL,
    batchSize: config.EMBED_BATCH_SIZE,
    maxAnswerTokens: config.MAX_ANSWER_TOKENS,
    metrics,
  });
  const qdrant = createQdrant({
    url: config.QDRANT_URL,
    apiKey: config.QDRANT_API_KEY,
    collection: config.QDRANT_COLLECTION,
    replicationFactor: config.QDRANT_REPLICATION_FACTOR,
    writeConsistencyFactor: config.QDRANT_WRITE_CONSISTENCY,
    timeoutMs: config.QDRANT_TIMEOUT_MS,
    metadataIndexLimit: config.QDRANT_METADATA_INDEX_LIMIT,
    metrics,
    log,
  });
  const vectorFit = createVectorFit({
    embeddingSize: async () => (await ollama.embed(["readiness"]))[0]!.length,
    collectionSize: () => qdrant.vectorSize(),
    collection: config.QDRANT_COLLECTION,
    timeoutMs: config.READY_PROBE_TIMEOUT_MS / 2,
    log,
  });
  let shuttingDown = false;
  // Aborted a moment before the drain ends, with the error each query still waiting then ends with (query.ts).
  const shutdownNotice = new AbortController();
  setMaxListeners(0, shutdownNotice.signal); // one listener per waiting query: past 10, Node would warn of a leak
  const health = {
    probes: {
      postgres: { critical: true, check: () => store.ping() },
      redis: { critical: false, check: () => cache.ping() },
      qdrant: { critical: false, check: () => qdrant.ready() },
      ollama: { critical: false, check: () => ollama.version() },
      // Critical: a pod whose model's vectors do not fit the collection fails every question it has not cached. Out
      // of service only until it first fits (vector-fit.ts `admit`): in a rolling deploy that changes the model.
      embedding: { critical: true, check: () => vectorFit.check(), servingCheck: () => vectorFit.admit() },
    },
    probeTimeoutMs: config.READY_PROBE_TIMEOUT_MS,
    isShuttingDown: () => shuttingDown,
  };
  const rag = createRag({ config, store, cache, corpus, ollama, qdrant, vectorFit, metrics });
  const answerShare =
    config.OLLAMA_PODS_DNS && config.API_PODS_DNS
      ? watchAnswerShare({
          ollamaDns: config.OLLAMA_PODS_DNS,
          apiDns: config.API_PODS_DNS,
          numParallel: config.OLLAMA_NUM_PARALLEL,
          podIp: config.POD_IP,
          refreshMs: config.ANSWER_SHARE_REFRESH_MS,
          onShare: rag.resizeAnswerSlots,
          onOllamaPods: ollamaPods.update,
          log,
        })
      : undefined;
  const documents = createDocuments({ config, store, corpus, ollama, qdrant, vectorFit, log });
  const rateLimiter = createRateLimiter(cache, config.RATE_LIMIT_PER_MINUTE);
  const rateLogSweeps = startRateLogSweeps(cache, rateLimiter.windowMs, log);
  const app = buildApp({
    config,
    log,
    metrics,
    store,
    rag,
    documents,
    rateLimiter,
    authenticate: createAuthenticator(config.API_KEYS, config.ADMIN_API_KEYS, store),
    probes: health.probes,
    isShuttingDown: health.isShuttingDown,
    shutdownNotice: shutdownNotice.signal,
  });

  const retention = startTurnRetention(sql, {
    days: config.TURN_RETENTION_DAYS,
    everyMs: config.TURN_RETENTION_SWEEP_MS,
    log,
    lastSuccess: metrics.turnRetentionLastSuccess,
  });

  const listening = {
    host: config.HOST,
    metrics,
    log,
    keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // A request's head and body must arrive within half its deadline: a client still sending then gets a 408 (its
    // own slowness), not the 504 of REQUEST_TIMEOUT_MS (a server error to the 5xx alert). A body at the 2 MiB limit
    // needs 70 kB/s at the default 60 s.
    requestTimeoutMs: Math.ceil(config.REQUEST_TIMEOUT_MS / 2),
    maxBytesWaiting: config.ANSWERS_MAX_BYTES_WAITING,
  };
  const main = await listenHttp(app.fetch, {
    ...listening,
    port: config.PORT,
    portSetting: "PORT",
    responseHeaders: await securityHeaders(),
  });
  // Not counted in http_requests_total: the API's error-rate alerts read it, and a scraper's bad request is not the API's.
  const ops = await listenHttp(buildOpsApp({ ...health, metrics, log }).fetch, {
    ...listening,
    metrics: undefined,
    port: config.METRICS_PORT,
    portSetting: "METRICS_PORT",
  });
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "127.0.0.1" : config.HOST;
  log.info({ port: main.port, metrics_port: ops.port }, "listening");

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${main.port}`,
    port: main.port,
    metricsUrl: `http://${host}:${ops.port}`,
    close(graceMs = config.SHUTDOWN_TIMEOUT_MS) {
      closing ??= (async () => {
        shuttingDown = true;
        answerShare?.stop();
        retention.stop();
        rateLogSweeps.stop();
        // An answer can outlast any grace period: a moment before it ends, each query still waiting is told so (a
        // stream in its stream, a JSON request by a 503), and so is each request arriving after it, so the client
        // reads an end it can retry elsewhere instead of a connection cut mid-answer.
        const notice = setTimeout(
          () =>
            shutdownNotice.abort(
              new AppError("shutting_down", "server shutting down: ask again", undefined, { "Retry-After": "0" }),
            ),
          graceMs - noticeLeadMs(graceMs, config.DB_QUERY_TIMEOUT_MS),
        );
        const drainStarted = performance.now();
        if (await main.close(graceMs))
          log.warn({ graceMs }, "in-flight requests did not finish in time; closing their connections");
        clearTimeout(notice);
        // A document write answered 504 goes on after its answer: its end (chunks published, documents released)
        // before the stores close, within what is left of the grace.
        await documents.idle(graceMs - (performance.now() - drainStarted));
        await ops.close(0);
        stopWatchingUnanswered();
        // The listener last: a replica draining its requests still hears other replicas' ingests and deletes.
        await Promise.all([corpus.stop(), closeStores()]);
        log.info("stopped");
      })();
      return closing;
    },
  };
}
