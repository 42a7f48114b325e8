// The Hono agent API: Deployment (no replica count: the HPA in api-autoscaler.ts owns it), Service,
// PodDisruptionBudget and a token-less ServiceAccount. Credentials come from Secrets only.
import { readFileSync } from "node:fs";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { answerShare } from "../../app/src/services/answer-share.ts";
import type { Tier } from "../tiers.ts";
import { RDS_CA, RDS_CA_FILE } from "./db-roles.ts";
import {
  ALB_IDLE_TIMEOUT_SECONDS,
  API,
  API_KEEP_ALIVE_MARGIN_SECONDS,
  API_ROLLING_SURGE_PERCENT,
  API_DRAIN_SECONDS,
  API_STOP,
  NAME_LABEL,
  OLLAMA,
  QDRANT,
  SECRETS,
  serviceHost,
} from "./names.ts";
import { type SecretRef, secretVersionAnnotations } from "./secrets.ts";
import { EVICTABLE } from "../platform/cluster.ts";
import { disruptionBudget, labelsFor, lockedDown, nonRootPod, placement, resources, selectorFor, TMP } from "./pod.ts";

/**
 * The init container's script (wait-for-paths.cjs says why) and how long it may hold a new pod back: a rollout of the
 * large tier's 10 replicas at 25 % surge is four rounds, which must fit Pulumi's 10-minute wait for a Deployment.
 */
const WAIT_FOR_PATHS = readFileSync(new URL("./wait-for-paths.cjs", import.meta.url), "utf8");
export const WAIT_FOR_PATHS_SECONDS = 90;

/** uid/gid the API runs as (the `node` user of the official Node.js images). */
const API_UID = 1000;
/**
 * Readiness on /health/serving, not /health/ready: a Postgres outage fails /health/ready on every pod at once, and the
 * ALB then held no target, so clients got its own 503 page instead of the app's JSON 503, and after the outage waited
 * for each pod's registration and health checks (probe J). /health/serving fails only on the pod's own faults.
 */
const HEALTH = { liveness: "/health", readiness: "/health/serving" } as const;

/**
 * Each API pod's share of the tier's answer slots per model at the HPA's minimum, by the app's own rule for a pod that
 * does not know its place (the whole part): the share until the app has counted the ready Ollama and API pods
 * (OLLAMA_PODS_DNS, API_PODS_DNS), which it then follows as the HPA and the off-peak schedule change them.
 */
const answerSlotsPerPod = (ollama: Tier["ollama"], api: Tier["api"]) =>
  answerShare(ollama.replicas * ollama.numParallel, api.minReplicas);

export interface ApiArgs {
  namespace: pulumi.Input<string>;
  /** repository@sha256:... */
  imageRef: pulumi.Input<string>;
  sizes: Tier["api"];
  /** The tier's Ollama: its models, context window (prompts and answers are fitted into it) and answer slots. */
  ollama: Tier["ollama"];
  /** Collections are created with these (the app reads QDRANT_REPLICATION_FACTOR / QDRANT_WRITE_CONSISTENCY). */
  qdrantReplication: { factor: number; writeConsistency: number };
  /** Secret with DATABASE_URL, DATABASE_MIGRATE_URL, REDIS_URL and API_KEYS. */
  envSecret: SecretRef;
  /** Serve /docs and /openapi.json (config `docsEnabled`). */
  docsEnabled: boolean;
  /** Origins whose pages may call the API (config `corsOrigins`); none: no CORS_ORIGINS, so no CORS header. */
  corsOrigins: string[];
  /** Where clients reach the API (config `domain`): the agent card names it. */
  publicUrl?: string;
  qdrantApiKey: SecretRef & { key: string };
  qdrantUrl: string;
  ollamaUrl: string;
}

export class Api extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;

  constructor(name: string, args: ApiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Api", name, {}, opts);
    const o = { parent: this };
    const labels = labelsFor(API.name);
    const metadata = { name: API.name, namespace: args.namespace, labels };

    const serviceAccount = new k8s.core.v1.ServiceAccount(
      API.name,
      {
        metadata,
        automountServiceAccountToken: false,
      },
      o,
    );

    const port = { name: API.portName, containerPort: API.port, protocol: "TCP" };
    const metricsPort = { name: API.metricsPortName, containerPort: API.metricsPort, protocol: "TCP" };
    const probe = (path: string) => ({ httpGet: { path, port: API.portName } });

    this.deployment = new k8s.apps.v1.Deployment(
      API.name,
      {
        metadata,
        spec: {
          selector: selectorFor(API.name),
          revisionHistoryLimit: 5,
          strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: `${API_ROLLING_SURGE_PERCENT}%`, maxUnavailable: 0 } },
          template: {
            metadata: {
              labels,
              annotations: {
                ...EVICTABLE,
                ...secretVersionAnnotations({
                  [SECRETS.api]: args.envSecret,
                  [SECRETS.qdrantApiKey.name]: args.qdrantApiKey,
                }),
              },
            },
            spec: {
              serviceAccountName: serviceAccount.metadata.name,
              automountServiceAccountToken: false,
              securityContext: nonRootPod(API_UID),
              ...placement("general"),
              topologySpreadConstraints: ["topology.kubernetes.io/zone", "kubernetes.io/hostname"].map((topologyKey) => ({
                maxSkew: 1,
                topologyKey,
                whenUnsatisfiable: "ScheduleAnyway",
                labelSelector: selectorFor(API.name),
              })),
              terminationGracePeriodSeconds: API_STOP.preStopSeconds + API_DRAIN_SECONDS + API_STOP.killMarginSeconds,
              // Every Qdrant and Ollama pod by its headless name (Qdrant's lists the not-ready ones too, which refuse).
              initContainers: [
                {
                  name: "wait-for-paths",
                  image: args.imageRef,
                  imagePullPolicy: "IfNotPresent",
                  command: [
                    "node",
                    "-e",
                    WAIT_FOR_PATHS,
                    String(WAIT_FOR_PATHS_SECONDS),
                    `${serviceHost(QDRANT.headless)}:${QDRANT.ports.http}`,
                    `${serviceHost(OLLAMA.headless)}:${OLLAMA.port}`,
                  ],
                  resources: resources({ cpuRequest: "10m", memoryRequest: "32Mi", memoryLimit: "128Mi" }),
                  securityContext: lockedDown(),
                },
              ],
              containers: [
                {
                  name: "api",
                  image: args.imageRef,
                  imagePullPolicy: "IfNotPresent",
                  ports: [port, metricsPort],
                  envFrom: [{ secretRef: { name: args.envSecret.name } }],
                  env: [
                    { name: "PORT", value: String(API.port) },
                    { name: "METRICS_PORT", value: String(API.metricsPort) },
                    { name: "DOCS_ENABLED", value: String(args.docsEnabled) },
                    ...(args.publicUrl ? [{ name: "PUBLIC_URL", value: args.publicUrl }] : []),
                    // Only when set: a stack without it keeps its pod template, so no rollout.
                    ...(args.corsOrigins.length > 0 ? [{ name: "CORS_ORIGINS", value: args.corsOrigins.join(",") }] : []),
                    { name: "DATABASE_CA_FILE", value: RDS_CA_FILE },
                    { name: "NODE_ENV", value: "production" },
                    { name: "DB_POOL_MAX", value: String(args.sizes.dbPoolMax) },
                    { name: "TURN_RETENTION_DAYS", value: String(args.sizes.turnRetentionDays) },
                    { name: "REQUEST_TIMEOUT_MS", value: String(API_STOP.requestTimeoutSeconds * 1000) },
                    { name: "SHUTDOWN_TIMEOUT_MS", value: String(API_DRAIN_SECONDS * 1000) },
                    {
                      name: "HTTP_KEEP_ALIVE_TIMEOUT_MS",
                      value: String((ALB_IDLE_TIMEOUT_SECONDS + API_KEEP_ALIVE_MARGIN_SECONDS) * 1000),
                    },
                    { name: "QDRANT_URL", value: args.qdrantUrl },
                    { name: "OLLAMA_URL", value: args.ollamaUrl },
                    { name: "EMBED_MODEL", value: args.ollama.models.embed },
                    { name: "MODEL_SMALL", value: args.ollama.models.small },
                    { name: "MODEL_DEFAULT", value: args.ollama.models.default },
                    { name: "MODEL_LARGE", value: args.ollama.models.large },
                    { name: "MODEL_CONTEXT_TOKENS", value: String(args.ollama.contextLength) },
                    { name: "OLLAMA_MAX_ANSWERS", value: String(answerSlotsPerPod(args.ollama, args.sizes)) },
                    { name: "OLLAMA_NUM_PARALLEL", value: String(args.ollama.numParallel) },
                    { name: "OLLAMA_PODS_DNS", value: serviceHost(OLLAMA.headless) },
                    { name: "API_PODS_DNS", value: serviceHost(API.headless) },
                    { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
                    { name: "QDRANT_REPLICATION_FACTOR", value: String(args.qdrantReplication.factor) },
                    { name: "QDRANT_WRITE_CONSISTENCY", value: String(args.qdrantReplication.writeConsistency) },
                    {
                      name: "QDRANT_API_KEY",
                      valueFrom: { secretKeyRef: { name: args.qdrantApiKey.name, key: args.qdrantApiKey.key } },
                    },
                  ],
                  resources: resources(args.sizes),
                  startupProbe: { ...probe(HEALTH.liveness), periodSeconds: 2, failureThreshold: 30, timeoutSeconds: 2 },
                  livenessProbe: { ...probe(HEALTH.liveness), periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 2 },
                  readinessProbe: { ...probe(HEALTH.readiness), periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 3 },
                  lifecycle: { preStop: { sleep: { seconds: API_STOP.preStopSeconds } } },
                  securityContext: lockedDown(),
                  volumeMounts: [TMP.mount, { name: "rds-ca", mountPath: RDS_CA.mountPath, readOnly: true }],
                },
              ],
              volumes: [TMP.volume, { name: "rds-ca", configMap: { name: RDS_CA.configMap } }],
            },
          },
        },
      },
      o,
    );

    this.service = new k8s.core.v1.Service(
      API.name,
      {
        metadata,
        spec: {
          type: "ClusterIP",
          selector: { [NAME_LABEL]: API.name },
          // The Ingress routes only `http`; the ServiceMonitor scrapes only `metrics`.
          ports: [
            { name: API.portName, port: API.port, targetPort: API.portName, protocol: "TCP" },
            { name: API.metricsPortName, port: API.metricsPort, targetPort: API.metricsPortName, protocol: "TCP" },
          ],
        },
      },
      o,
    );

    // Its DNS name answers one address per ready API pod. Labelled apart from the Service above, so that the
    // ServiceMonitor (which selects agent-api) does not scrape every pod twice.
    new k8s.core.v1.Service(
      API.headless,
      {
        metadata: { name: API.headless, namespace: args.namespace, labels: labelsFor(API.headless) },
        spec: {
          clusterIP: "None",
          selector: { [NAME_LABEL]: API.name },
          ports: [{ name: API.portName, port: API.port, targetPort: API.portName, protocol: "TCP" }],
        },
      },
      o,
    );

    disruptionBudget(API.name, args.namespace, o);
    this.registerOutputs({});
  }
}
