// Ollama, the model server, as a StatefulSet (stable pod names for the off-peak scaler).
// GPU tiers: on the tainted gpu nodes with one nvidia.com/gpu each; dev: CPU-only on the general node.
// Models are data that can be fetched again, so they live on no EBS volume (a zonal volume would pin the pod
// to one zone): on the g5's NVMe instance store, which the GPU nodes mount under the kubelet's directory
// (platform/cluster.ts), as an emptyDir. An init container pulls the tier's models before the server starts,
// a postStart hook loads each into memory, and the readiness probe only passes once `ollama list` lists every one.
// The official image defaults to root; Ollama only needs a writable $HOME, so it runs as an unprivileged
// user with HOME (keys and models) on its volume, no capabilities and a read-only root filesystem.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { modelRef } from "../capacity.ts";
import type { Tier } from "../tiers.ts";
import { API_STOP, IMAGES, NAME_LABEL, OLLAMA } from "./names.ts";
import {
  disruptionBudget,
  labelsFor,
  lockedDown,
  nonRootPod,
  placement,
  resources,
  selectorFor,
  spreadOverNodes,
  spreadOverZones,
  TMP,
} from "./pod.ts";

/**
 * Guide 000 "Issue 4: Slow first response": "Don't unload models". Its 24h unloaded a model idle for a day (the large
 * one over a quiet weekend), and the next question to it waited for the load; a negative value is never (ollama
 * v0.13.5 envconfig/config.go KeepAlive). The app sends no keep_alive of its own.
 */
export const OLLAMA_ENV = { OLLAMA_KEEP_ALIVE: "-1" } as const;

/**
 * Serving settings from the tier: every distinct model stays resident (infra/capacity.ts checks that they fit
 * the GPU together with their KV caches), each with numParallel slots of contextLength tokens.
 */
export function servingEnv(s: Tier["ollama"]): Record<string, string> {
  return {
    ...OLLAMA_ENV,
    OLLAMA_MAX_LOADED_MODELS: String(modelRefs(s.models).length),
    OLLAMA_NUM_PARALLEL: String(s.numParallel),
    OLLAMA_CONTEXT_LENGTH: String(s.contextLength),
    OLLAMA_KV_CACHE_TYPE: s.kvCacheType,
    // A quantised KV cache needs flash attention.
    OLLAMA_FLASH_ATTENTION: s.kvCacheType === "f16" ? "0" : "1",
  };
}

const OLLAMA_UID = 1000;
/** $HOME of the server: Ollama keeps its key and models under $HOME/.ollama. */
const HOME_DIR = "/data";
const GPU_RESOURCE = "nvidia.com/gpu";

/**
 * Starts a local server, pulls $REQUIRED_MODELS into the volume, stops the server. A server that exits before it
 * answers fails the container at once (the wait spun until the StatefulSet's 60-minute timeout).
 */
const PULL_MODELS = `set -e
ollama serve & server=$!
until ollama list >/dev/null 2>&1; do kill -0 "$server" 2>/dev/null || exit 1; sleep 1; done
for model in $REQUIRED_MODELS; do ollama pull "$model"; done
kill "$server"; wait "$server" || true`;

/**
 * Loads every model into memory before the pod can turn ready (a postStart hook: probes wait for it). Pulled is not
 * loaded: the first answer of each model after a start (a scale-up, a replaced node, the morning after off-peak) waited
 * for the model to load, up to the app's OLLAMA_TIMEOUT_MS. `ollama run MODEL ""` sends an empty prompt, which only
 * loads the model (server/routes.go GenerateHandler, done_reason "load"); an embedding model refuses an empty prompt
 * (cmd/cmd.go RunHandler), so it embeds a word. No options are sent: the runner is the one the app's requests use.
 * A model that cannot load fails the hook, and the container restarts, instead of serving errors.
 */
const LOAD_MODELS = `set -e
until ollama list >/dev/null 2>&1; do sleep 1; done
for model in $REQUIRED_MODELS; do
  if [ "$model" = "$EMBED_MODEL" ]; then prompt=warm-up; else prompt=""; fi
  ollama run "$model" "$prompt" </dev/null >/dev/null
done`;

/** Ready only when every model in $REQUIRED_MODELS is listed by the server. */
const MODELS_LOADED = `names=$(ollama list | awk 'NR > 1 { print $1 }') || exit 1
for model in $REQUIRED_MODELS; do echo "$names" | grep -qxF "$model" || exit 1; done`;

/**
 * A stopping pod (a rollout, a drained node, each night's off-peak scale-down) first drains. On SIGTERM Ollama closes
 * its server at once (v0.13.5 server/routes.go, Serve: the signal handler calls srvr.Close()), which cut every answer
 * it was generating: a 502, or a stream's `error` event (probe BV: 4 of 4 questions, 2 of 2 streams).
 * - `leaveSeconds`: the API replicas stop choosing the pod. It leaves the headless Service's answer as it turns
 *   terminating, and each replica looks the name up every ANSWER_SHARE_REFRESH_MS (10 s), through CoreDNS (5 s TTL).
 * - `longestCallSeconds`: then the calls it took end, at most the API's request deadline. The script waits while a
 *   connection to its port is established (state 01 in /proc/net/tcp, or tcp6: Go listens on both for 0.0.0.0); the
 *   API's idle ones close after undici's 4 s keep-alive.
 * - `exitSeconds`: Ollama's own stop after SIGTERM, in the grace period.
 */
const OLLAMA_STOP = { leaveSeconds: 20, longestCallSeconds: API_STOP.requestTimeoutSeconds, exitSeconds: 10 } as const;

/** The preStop drain; its port is OLLAMA_HOST's, as /proc/net/tcp writes it (4 hex digits). */
const DRAIN = `sleep ${OLLAMA_STOP.leaveSeconds}
port=$(printf '%04X' "\${OLLAMA_HOST##*:}")
end=$(( $(date +%s) + ${OLLAMA_STOP.longestCallSeconds} ))
while [ "$(date +%s)" -lt "$end" ] && cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
  awk -v port=":$port" '$4 == "01" && substr($2, length($2) - 4) == port { busy = 1 } END { exit !busy }'; do
  sleep 1
done`;

export interface OllamaArgs {
  namespace: pulumi.Input<string>;
  sizes: Tier["ollama"];
  /** The tier's `gpu`: on the gpu nodes with one GPU each, else CPU-only on the general nodes. */
  gpu: boolean;
  /** The tier scales down off-peak (offpeak.ts): its CronJobs own the replica count once the StatefulSet exists. */
  scaledOffPeak: boolean;
}

export class Ollama extends pulumi.ComponentResource {
  constructor(name: string, args: OllamaArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Ollama", name, {}, opts);
    const o = { parent: this };
    const s = args.sizes;
    const labels = labelsFor(OLLAMA.name);
    const metadata = { name: OLLAMA.name, namespace: args.namespace, labels };
    const gpu: Record<string, string> = args.gpu ? { [GPU_RESOURCE]: "1" } : {};
    const requiredModels = { name: "REQUIRED_MODELS", value: modelRefs(s.models).join(" ") };
    const home = { name: "HOME", value: HOME_DIR };
    const volumeMounts = [{ name: "models", mountPath: HOME_DIR }, TMP.mount];

    const ports = [{ name: "http", port: OLLAMA.port, targetPort: "http", protocol: "TCP" }];
    // The API's entry: load-balanced over the ready pods.
    new k8s.core.v1.Service(
      OLLAMA.name,
      {
        metadata,
        spec: { type: "ClusterIP", selector: { [NAME_LABEL]: OLLAMA.name }, ports },
      },
      o,
    );
    // The StatefulSet's governing Service: headless, so each pod gets a stable DNS name (ollama-0.ollama-headless).
    const headless = new k8s.core.v1.Service(
      OLLAMA.headless,
      {
        metadata: { ...metadata, name: OLLAMA.headless },
        spec: { clusterIP: "None", selector: { [NAME_LABEL]: OLLAMA.name }, ports },
      },
      o,
    );

    new k8s.apps.v1.StatefulSet(
      OLLAMA.name,
      {
        metadata,
        spec: {
          replicas: s.replicas,
          serviceName: headless.metadata.name,
          podManagementPolicy: "Parallel",
          selector: selectorFor(OLLAMA.name),
          template: {
            metadata: { labels },
            spec: {
              automountServiceAccountToken: false,
              securityContext: nonRootPod(OLLAMA_UID),
              ...placement(args.gpu ? "gpu" : "general"),
              affinity: spreadOverNodes(OLLAMA.name, "preferred"),
              // Replicas over zones as well as nodes: the gpu group spans every zone (no volume pins it).
              topologySpreadConstraints: [spreadOverZones(OLLAMA.name, "ScheduleAnyway")],
              terminationGracePeriodSeconds: OLLAMA_STOP.leaveSeconds + OLLAMA_STOP.longestCallSeconds + OLLAMA_STOP.exitSeconds,
              initContainers: [
                {
                  name: "pull-models",
                  image: IMAGES.ollama,
                  command: ["/bin/sh", "-c", PULL_MODELS],
                  env: [
                    { name: "OLLAMA_HOST", value: `127.0.0.1:${OLLAMA.port}` },
                    home,
                    requiredModels,
                    // The image asks the NVIDIA runtime for every GPU; pulling needs none.
                    { name: "NVIDIA_VISIBLE_DEVICES", value: "void" },
                  ],
                  resources: resources({ cpuRequest: "250m", memoryRequest: "512Mi", cpuLimit: "1", memoryLimit: "1Gi" }),
                  securityContext: lockedDown(),
                  volumeMounts,
                },
              ],
              containers: [
                {
                  name: "ollama",
                  image: IMAGES.ollama,
                  ports: [{ name: "http", containerPort: OLLAMA.port, protocol: "TCP" }],
                  env: [
                    { name: "OLLAMA_HOST", value: `0.0.0.0:${OLLAMA.port}` },
                    home,
                    ...Object.entries(servingEnv(s)).map(([envName, value]) => ({ name: envName, value })),
                    requiredModels,
                    { name: "EMBED_MODEL", value: modelRef(s.models.embed) },
                  ],
                  lifecycle: {
                    postStart: { exec: { command: ["/bin/sh", "-c", LOAD_MODELS] } },
                    preStop: { exec: { command: ["/bin/sh", "-c", DRAIN] } },
                  },
                  resources: resources(s, gpu),
                  startupProbe: { httpGet: { path: "/", port: "http" }, periodSeconds: 5, failureThreshold: 60 },
                  livenessProbe: {
                    httpGet: { path: "/", port: "http" },
                    periodSeconds: 15,
                    timeoutSeconds: 5,
                    failureThreshold: 4,
                  },
                  readinessProbe: {
                    exec: { command: ["/bin/sh", "-c", MODELS_LOADED] },
                    periodSeconds: 10,
                    timeoutSeconds: 5,
                    failureThreshold: 3,
                  },
                  securityContext: lockedDown(),
                  volumeMounts,
                },
              ],
              // On the node's instance store (GPU nodes) or root volume (dev); pulled again on every start.
              volumes: [{ name: "models", emptyDir: { sizeLimit: `${s.storageGb}Gi` } }, TMP.volume],
            },
          },
        },
      },
      {
        ...o,
        // The off-peak CronJob scales Ollama down at night; `pulumi up` must not undo it. Without the CronJobs (dev)
        // Pulumi sets it, or a new replica count never reached the StatefulSet.
        ignoreChanges: args.scaledOffPeak ? ["spec.replicas"] : [],
        // Every start pulls the models (about 16 GB on a GPU tier) before the pods turn ready.
        customTimeouts: { create: "60m", update: "60m" },
      },
    );

    if (s.replicas > 1) disruptionBudget(OLLAMA.name, args.namespace, o);
    this.registerOutputs({});
  }
}

/** The tier's distinct models as `ollama list` names them (an untagged name means `:latest`). */
function modelRefs(models: Tier["ollama"]["models"]): string[] {
  return [...new Set(Object.values(models).map(modelRef))];
}
