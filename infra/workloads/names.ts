// Names and ports of everything the workloads deploy (versions: infra/versions.ts). Other components (the
// off-peak scaler, the Qdrant snapshot job, monitoring) refer to these, so they live in one place.

/** `monitoringHost`: exporters that need the node (hostPath, hostNetwork, devices), under Pod Security "privileged". */
export const NAMESPACES = { agent: "agent", monitoring: "monitoring", monitoringHost: "monitoring-host" } as const;

/** The label every workload's selector, Service and NetworkPolicy matches on. */
export const NAME_LABEL = "app.kubernetes.io/name";

/** `metricsPort`: the app's METRICS_PORT; /metrics is served only there, and the Ingress never routes to it. */
/** `headless`: its DNS name answers the ready API pods' addresses (the app counts them to share out answer slots). */
export const API = {
  name: "agent-api",
  headless: "agent-api-headless",
  port: 8080,
  portName: "http",
  metricsPort: 9464,
  metricsPortName: "metrics",
} as const;
/**
 * Seconds the ALB keeps an idle connection (guide 000's nginx proxy_read_timeout 300s, for streamed answers). The API's
 * keep-alive outlasts it by API_KEEP_ALIVE_MARGIN_SECONDS: the ALB must be the side that closes an idle connection,
 * or it may send a request on one the API is closing (AWS: a 502 to the client).
 */
export const ALB_IDLE_TIMEOUT_SECONDS = 300;
export const API_KEEP_ALIVE_MARGIN_SECONDS = 5;
/**
 * A stopping API pod: preStop keeps it serving while the ALB deregisters it; the ALB may send it a request until
 * then, and a request may run API_REQUEST_TIMEOUT_SECONDS (the app's REQUEST_TIMEOUT_MS), so the app's drain
 * (SHUTDOWN_TIMEOUT_MS) waits that long and a little more, and Kubernetes' grace period covers both.
 */
export const API_STOP = { preStopSeconds: 10, requestTimeoutSeconds: 60, drainMarginSeconds: 5, killMarginSeconds: 5 } as const;
/**
 * How long a stopping API pod drains (the app's SHUTDOWN_TIMEOUT_MS), and so how long the ALB keeps a deregistering
 * target's requests: the longest request and a margin.
 */
export const API_DRAIN_SECONDS = API_STOP.requestTimeoutSeconds + API_STOP.drainMarginSeconds;
/**
 * How long the ALB keeps a deregistering target's requests: the pod's whole stop, preStop then drain. Deregistration
 * starts when the pod is deleted, as preStop does, and the app only drains after it: at the drain's length alone, the
 * ALB cut the streams still running 10 s before the app ended them with their `error` event (probe J), and a stream
 * is not bounded by REQUEST_TIMEOUT_MS. A target whose requests end sooner is let go sooner.
 */
export const API_DEREGISTRATION_SECONDS = API_STOP.preStopSeconds + API_DRAIN_SECONDS;
/**
 * Extra API pods a rolling update may start (maxSurge, rounded up): in infra/capacity.ts's database connections at
 * peak, the margin over a rollout's new and draining pods.
 */
export const API_ROLLING_SURGE_PERCENT = 25;
/**
 * The apiUrl of a stack with no public entry (tier network.publicIngress: false): the command that reaches the API
 * through the cluster's API server instead. The deploy workflow's readiness check reads the "port-forward:" prefix.
 */
export const PORT_FORWARD_API_URL = `port-forward: kubectl -n ${NAMESPACES.agent} port-forward svc/${API.name} ${API.port}:${API.port}`;
export const OLLAMA = { name: "ollama", kind: "StatefulSet", headless: "ollama-headless", port: 11434 } as const;
export const QDRANT = {
  name: "qdrant",
  kind: "StatefulSet",
  headless: "qdrant-headless",
  ports: { http: 6333, grpc: 6334, p2p: 6335 },
} as const;

/** Label a pod carries to be let through Qdrant's NetworkPolicy besides the API (e.g. the snapshot CronJob). */
export const QDRANT_CLIENT_LABEL = { "agent-stack/qdrant-client": "true" } as const;

export const SECRETS = {
  /** DATABASE_URL, DATABASE_MIGRATE_URL, REDIS_URL, API_KEYS: read by the API with envFrom. */
  api: "agent-api-env",
  /** Qdrant's API key under `key`: read by Qdrant, the API and the snapshot job. */
  qdrantApiKey: { name: "qdrant-api-key", key: "api-key" },
} as const;

export const STORAGE_CLASS = "gp3-encrypted";
/** Same, and its volumes carry the AWS Backup selection tag (Qdrant's data). */
export const BACKED_UP_STORAGE_CLASS = "gp3-encrypted-backup";

/** Pinned images (the API image is built from this repository and pinned by digest): see infra/versions.ts. */
export { IMAGES } from "../versions.ts";

/** In-cluster DNS name of a Service in the agent namespace (of each ready pod, for a headless one). */
export function serviceHost(service: string): string {
  return `${service}.${NAMESPACES.agent}.svc.cluster.local`;
}

/** In-cluster URL of a Service in the agent namespace. */
export function serviceUrl(service: string, port: number): string {
  return `http://${serviceHost(service)}:${port}`;
}
