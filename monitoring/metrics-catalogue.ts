// Every metric name the rules and dashboards in monitoring/ rely on, with who
// exports it. test/monitoring checks that nothing outside this list (or
// recorded by our own rules) is queried, and that the app's entries really
// appear on a running app's /metrics.

export type MetricType = "counter" | "gauge" | "histogram";

export const SOURCES = {
  app: "agent API, app/src/metrics.ts (prom-client), scraped via the agent-api ServiceMonitor",
  prometheus: "Prometheus itself: the synthetic up series of every scrape target",
  "kube-state-metrics": "kube-state-metrics (kube-prometheus-stack), docs/metrics/ in kubernetes/kube-state-metrics",
  "node-exporter": "prometheus-node-exporter (kube-prometheus-stack)",
  "postgres-exporter": "prometheus-postgres-exporter chart, postgres_exporter 0.18 default collectors",
  "redis-exporter": "prometheus-redis-exporter chart (oliver006/redis_exporter)",
  qdrant: "Qdrant /metrics on port 6333 (qdrant.tech/documentation/guides/monitoring)",
  "dcgm-exporter": "NVIDIA dcgm-exporter chart, default counters (GPU tiers only)",
  alloy: "Grafana Alloy (alloy chart 0.12.5, v1.7.4) /metrics: loki.write's counters (internal/component/common/loki/client)",
  stack: "the stack's own cost-estimate PrometheusRule (monitoring/cost-estimate.ts), constants from the plan's estimate",
} as const;

export type MetricSource = keyof typeof SOURCES;

export interface MetricEntry {
  source: MetricSource;
  type: MetricType;
}

const m = (source: MetricSource, type: MetricType): MetricEntry => ({ source, type });

/** Metric family names; a histogram also covers its _bucket, _sum and _count series. */
export const METRICS: Record<string, MetricEntry> = {
  http_requests_total: m("app", "counter"),
  http_request_duration_seconds: m("app", "histogram"),
  agent_execution_duration_seconds: m("app", "histogram"),
  agent_token_usage: m("app", "histogram"),
  agent_queries_total: m("app", "counter"),
  agent_errors_total: m("app", "counter"),
  active_queries: m("app", "gauge"),
  tool_calls_total: m("app", "counter"),
  tool_duration_seconds: m("app", "histogram"),
  cache_requests_total: m("app", "counter"),
  redis_operations_total: m("app", "counter"),
  turn_retention_last_success_timestamp_seconds: m("app", "gauge"),
  db_pool_size: m("app", "gauge"),
  db_pool_active: m("app", "gauge"),
  db_pool_waiting: m("app", "gauge"),
  db_statement_duration_seconds: m("app", "histogram"),

  up: m("prometheus", "gauge"),

  kube_node_status_condition: m("kube-state-metrics", "gauge"),
  // These four: kube-state-metrics v2.18.0 internal/store/node.go and pod.go.
  kube_node_created: m("kube-state-metrics", "gauge"),
  kube_pod_start_time: m("kube-state-metrics", "gauge"),
  kube_pod_init_container_status_running: m("kube-state-metrics", "gauge"),
  kube_pod_init_container_status_restarts_total: m("kube-state-metrics", "counter"),
  kube_pod_status_phase: m("kube-state-metrics", "gauge"),
  kube_pod_owner: m("kube-state-metrics", "gauge"),
  kube_pod_container_status_waiting_reason: m("kube-state-metrics", "gauge"),
  kube_pod_container_status_restarts_total: m("kube-state-metrics", "counter"),
  kube_pod_container_status_last_terminated_reason: m("kube-state-metrics", "gauge"),
  kube_cronjob_created: m("kube-state-metrics", "gauge"),
  kube_cronjob_next_schedule_time: m("kube-state-metrics", "gauge"),
  kube_cronjob_status_last_schedule_time: m("kube-state-metrics", "gauge"),
  kube_cronjob_status_last_successful_time: m("kube-state-metrics", "gauge"),

  node_cpu_seconds_total: m("node-exporter", "counter"),
  node_memory_MemAvailable_bytes: m("node-exporter", "gauge"),
  node_memory_MemTotal_bytes: m("node-exporter", "gauge"),
  node_filesystem_avail_bytes: m("node-exporter", "gauge"),
  node_filesystem_size_bytes: m("node-exporter", "gauge"),
  node_disk_read_bytes_total: m("node-exporter", "counter"),
  node_disk_written_bytes_total: m("node-exporter", "counter"),
  node_disk_io_time_seconds_total: m("node-exporter", "counter"),

  pg_up: m("postgres-exporter", "gauge"),
  pg_stat_database_numbackends: m("postgres-exporter", "gauge"),
  pg_settings_max_connections: m("postgres-exporter", "gauge"),
  pg_stat_database_xact_commit: m("postgres-exporter", "counter"),
  pg_stat_database_xact_rollback: m("postgres-exporter", "counter"),
  pg_stat_database_blks_hit: m("postgres-exporter", "counter"),
  pg_stat_database_blks_read: m("postgres-exporter", "counter"),
  pg_database_size_bytes: m("postgres-exporter", "gauge"),

  redis_up: m("redis-exporter", "gauge"),
  redis_connected_clients: m("redis-exporter", "gauge"),
  redis_memory_used_bytes: m("redis-exporter", "gauge"),
  redis_memory_max_bytes: m("redis-exporter", "gauge"),
  redis_keyspace_hits_total: m("redis-exporter", "counter"),
  redis_keyspace_misses_total: m("redis-exporter", "counter"),
  redis_evicted_keys_total: m("redis-exporter", "counter"),
  redis_commands_processed_total: m("redis-exporter", "counter"),

  rest_responses_total: m("qdrant", "counter"),
  rest_responses_duration_seconds: m("qdrant", "histogram"),
  collections_vector_total: m("qdrant", "gauge"),
  memory_resident_bytes: m("qdrant", "gauge"),

  DCGM_FI_DEV_GPU_UTIL: m("dcgm-exporter", "gauge"),
  DCGM_FI_DEV_FB_USED: m("dcgm-exporter", "gauge"),
  DCGM_FI_DEV_FB_FREE: m("dcgm-exporter", "gauge"),
  DCGM_FI_DEV_GPU_TEMP: m("dcgm-exporter", "gauge"),
  DCGM_FI_DEV_POWER_USAGE: m("dcgm-exporter", "gauge"),

  loki_write_sent_entries_total: m("alloy", "counter"),

  "component:estimated_cost_usd_per_hour:plan": m("stack", "gauge"),
};

/** The catalogue entry a queried series name belongs to (histogram suffixes resolved), if any. */
export function catalogueEntry(series: string): { family: string; entry: MetricEntry } | undefined {
  if (METRICS[series]) return { family: series, entry: METRICS[series] };
  const family = series.replace(/_(bucket|sum|count)$/, "");
  const entry = METRICS[family];
  return entry?.type === "histogram" ? { family, entry } : undefined;
}
