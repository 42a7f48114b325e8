import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { PoolUse } from "./services/db.ts";

/** Metric names and labels are a contract with monitoring/ (alerts and dashboards query exactly these). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  /** The app's pool, read at each scrape (`watchDbPool`); the gauges stay 0 until it is set. */
  let dbPool: (() => PoolUse) | undefined;
  const dbPoolGauge = (name: string, help: string, value: (use: PoolUse) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (dbPool) this.set(value(dbPool()));
      },
    });

  return {
    registry,
    httpRequests: new Counter({
      name: "http_requests_total",
      help: "HTTP requests by method, route pattern and status",
      labelNames: ["method", "route", "status"] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: "http_request_duration_seconds",
      help: "HTTP request duration by method, route pattern and status",
      labelNames: ["method", "route", "status"] as const,
      // 3 and 30: HighApiLatency's and SlowIngest's thresholds (guide 002), edges, or histogram_quantile interpolates
      // across them.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3, 5, 10, 30, 60],
      registers,
    }),
    agentDuration: new Histogram({
      name: "agent_execution_duration_seconds",
      help: "Time spent answering a query, by agent and query complexity",
      labelNames: ["agent_name", "query_type"] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
      registers,
    }),
    agentTokens: new Histogram({
      name: "agent_token_usage",
      help: "Tokens (prompt + completion) used per agent execution",
      labelNames: ["agent_name", "model"] as const,
      buckets: [50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000],
      registers,
    }),
    agentQueries: new Counter({
      name: "agent_queries_total",
      help: "Questions answered (turn stored), by the model that answers them and whether the answer was cached",
      labelNames: ["agent_name", "model", "cached"] as const,
      registers,
    }),
    agentErrors: new Counter({
      name: "agent_errors_total",
      help: "Agent execution errors by type",
      labelNames: ["agent_name", "error_type"] as const,
      registers,
    }),
    activeQueries: new Gauge({
      name: "active_queries",
      help: "Queries currently being answered",
      registers,
    }),
    requestBodyBytesHeld: new Gauge({
      name: "http_request_body_bytes_held",
      help: "Bytes of request bodies this replica holds, from their read to their answer (BODIES_MAX_BYTES_RECEIVING bounds them)",
      registers,
    }),
    toolCalls: new Counter({
      name: "tool_calls_total",
      help: "Calls to upstream tools (embedding, vector search, chat) by outcome",
      labelNames: ["tool_name", "success"] as const,
      registers,
    }),
    toolDuration: new Histogram({
      name: "tool_duration_seconds",
      help: "Upstream tool call duration",
      labelNames: ["tool_name"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    cacheRequests: new Counter({
      name: "cache_requests_total",
      help: "Cache lookups by cache and result (hit, miss, error)",
      labelNames: ["cache", "result"] as const,
      registers,
    }),
    // Every use of Redis, not only the lookups above: answers a replica holds are hits without Redis, so with Redis
    // out of reach and questions repeated, lookups showed 1.5 % errors and ApiCacheErrors stayed silent (probe CJ).
    redisOperations: new Counter({
      name: "redis_operations_total",
      help: "Redis operations of this replica by use (cache: reads and writes of the caches; ratelimit: the rate limiter and its sweep of idle logs; readiness) and result: ok or error",
      labelNames: ["use", "result"] as const,
      registers,
    }),
    // Guide 002's health_agent_db_pool_size and _active, without the prefix no metric here carries. The pool's own view:
    // its DB_POOL_MAX connections can all be taken (requests queue in it, then 503 at DB_QUERY_TIMEOUT_MS) while the
    // server, which DatabaseConnectionPoolExhausted watches, is mostly idle. Read at each scrape (db.ts poolUse).
    dbPoolSize: dbPoolGauge("db_pool_size", "Connections this replica's Postgres pool may open (DB_POOL_MAX)", (u) => u.size),
    dbPoolActive: dbPoolGauge(
      "db_pool_active",
      "Connections of this replica's Postgres pool a statement holds: its statements in flight, at most db_pool_size",
      (u) => u.active,
    ),
    dbPoolWaiting: dbPoolGauge(
      "db_pool_waiting",
      "Statements of this replica's Postgres pool waiting for a connection: those in flight past db_pool_size",
      (u) => u.waiting,
    ),
    dbStatementDuration: new Histogram({
      name: "db_statement_duration_seconds",
      help: "Statements of this replica's Postgres pool, from their hand-over to the pool (the wait for a connection included) to their answer or failure",
      // 0.05: guide 002's "Query latency (P95 < 50ms)", an edge so the p95 is not interpolated across it; 1 and 10:
      // a statement's deadline and its statement_timeout at the defaults (DB_QUERY_TIMEOUT_MS, 10x for reports).
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    /** Shows `read()`'s pool in db_pool_* at each scrape: the app's one pool (start.ts). */
    watchDbPool(read: () => PoolUse): void {
      dbPool = read;
    },
    turnRetentionLastSuccess: new Gauge({
      name: "turn_retention_last_success_timestamp_seconds",
      help: "When a turn retention sweep last finished on the database, whichever replica ran it, as this replica last read it (0: retention off, or not read yet)",
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Times an upstream call into tool_calls_total / tool_duration_seconds. */
export async function timeTool<T>(metrics: Metrics, toolName: string, call: () => Promise<T>): Promise<T> {
  const stop = metrics.toolDuration.startTimer({ tool_name: toolName });
  try {
    const result = await call();
    metrics.toolCalls.inc({ tool_name: toolName, success: "true" });
    return result;
  } catch (err) {
    metrics.toolCalls.inc({ tool_name: toolName, success: "false" });
    throw err;
  } finally {
    stop();
  }
}
