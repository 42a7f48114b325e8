// Qdrant, the vector database: a StatefulSet with a gp3 volume per replica on the vector nodes (the
// general node in dev). With more than one replica it runs in cluster mode: replica 0 starts the
// cluster and the others join it through the headless Service (peer-to-peer port 6335), one per node.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { NodeRole } from "../node-zones.ts";
import type { Tier } from "../tiers.ts";
import { IMAGES, NAME_LABEL, QDRANT, SECRETS } from "./names.ts";
import { type SecretRef, secretVersionAnnotations } from "./secrets.ts";
import {
  claimSpec,
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

const QDRANT_UID = 1000;
const DIRS = { storage: "/qdrant/storage", snapshots: "/qdrant/snapshots", init: "/qdrant/init" } as const;

/** Replica 0 bootstraps the cluster; every other replica joins it. Peers address each other by pod DNS. */
const START_CLUSTER_NODE = `set -e
uri="http://\${HOSTNAME}.${QDRANT.headless}:${QDRANT.ports.p2p}"
if [ "\${HOSTNAME##*-}" = "0" ]; then exec /qdrant/entrypoint.sh --uri "$uri"; fi
exec /qdrant/entrypoint.sh --bootstrap "http://${QDRANT.name}-0.${QDRANT.headless}:${QDRANT.ports.p2p}" --uri "$uri"`;

export interface QdrantArgs {
  namespace: pulumi.Input<string>;
  sizes: Tier["qdrant"];
  nodeRole: NodeRole;
  storageClassName: pulumi.Input<string>;
  apiKey: SecretRef & { key: string };
}

export class Qdrant extends pulumi.ComponentResource {
  constructor(name: string, args: QdrantArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Qdrant", name, {}, opts);
    const o = { parent: this };
    const s = args.sizes;
    const clustered = s.replicas > 1;
    const labels = labelsFor(QDRANT.name);
    const ports = (names: (keyof typeof QDRANT.ports)[]) =>
      names.map((p) => ({ name: p, port: QDRANT.ports[p], targetPort: p, protocol: "TCP" }));

    new k8s.core.v1.Service(
      QDRANT.name,
      {
        metadata: { name: QDRANT.name, namespace: args.namespace, labels },
        spec: { type: "ClusterIP", selector: { [NAME_LABEL]: QDRANT.name }, ports: ports(["http", "grpc"]) },
      },
      o,
    );
    const headless = new k8s.core.v1.Service(
      QDRANT.headless,
      {
        metadata: { name: QDRANT.headless, namespace: args.namespace, labels },
        spec: {
          clusterIP: "None",
          // Peers must find each other before any of them is ready.
          publishNotReadyAddresses: true,
          selector: { [NAME_LABEL]: QDRANT.name },
          ports: ports(["http", "grpc", "p2p"]),
        },
      },
      o,
    );

    const env = [
      { name: "QDRANT__SERVICE__API_KEY", valueFrom: { secretKeyRef: { name: args.apiKey.name, key: args.apiKey.key } } },
      { name: "QDRANT__SERVICE__HTTP_PORT", value: String(QDRANT.ports.http) },
      { name: "QDRANT__SERVICE__GRPC_PORT", value: String(QDRANT.ports.grpc) },
      { name: "QDRANT__CLUSTER__ENABLED", value: String(clustered) },
      { name: "QDRANT__CLUSTER__P2P__PORT", value: String(QDRANT.ports.p2p) },
      { name: "QDRANT__STORAGE__STORAGE_PATH", value: DIRS.storage },
      { name: "QDRANT__STORAGE__SNAPSHOTS_PATH", value: DIRS.snapshots },
      { name: "QDRANT__TELEMETRY_DISABLED", value: "true" },
      { name: "QDRANT_INIT_FILE_PATH", value: `${DIRS.init}/.qdrant-initialized` },
    ];
    const probe = (path: string) => ({ httpGet: { path, port: "http" } });

    new k8s.apps.v1.StatefulSet(
      QDRANT.name,
      {
        metadata: {
          name: QDRANT.name,
          namespace: args.namespace,
          labels,
          // A new volume size (the tier's storageGb) cannot be applied to a StatefulSet (pkg/apis/apps/validation
          // ValidateStatefulSetUpdate), so pulumi-kubernetes replaces it (provider/pkg/provider/diff.go), deleting it first
          // with foreground propagation: every peer went down at once. Orphaned, the pods keep serving and the new
          // StatefulSet adopts them (kubectl delete --cascade=orphan). The claims keep their size: grow them
          // (docs/operations-runbook.md).
          annotations: { "pulumi.com/deletionPropagationPolicy": "orphan" },
        },
        spec: {
          replicas: s.replicas,
          serviceName: headless.metadata.name,
          podManagementPolicy: "Parallel",
          selector: selectorFor(QDRANT.name),
          template: {
            metadata: { labels, annotations: secretVersionAnnotations({ [SECRETS.qdrantApiKey.name]: args.apiKey }) },
            spec: {
              automountServiceAccountToken: false,
              securityContext: nonRootPod(QDRANT_UID),
              ...placement(args.nodeRole),
              // Peers on different nodes and zones (one vector node group per zone): with replicationFactor >= 2
              // a node or a zone going away leaves a copy of every shard.
              ...(clustered
                ? {
                    affinity: spreadOverNodes(QDRANT.name, "required"),
                    topologySpreadConstraints: [spreadOverZones(QDRANT.name, "DoNotSchedule")],
                  }
                : {}),
              terminationGracePeriodSeconds: 60,
              containers: [
                {
                  name: "qdrant",
                  image: IMAGES.qdrant,
                  ...(clustered ? { command: ["/bin/sh", "-c", START_CLUSTER_NODE] } : {}),
                  ports: Object.entries(QDRANT.ports).map(([portName, containerPort]) => ({
                    name: portName,
                    containerPort,
                    protocol: "TCP",
                  })),
                  env,
                  resources: resources(s),
                  // Qdrant loads every collection before it starts its HTTP server (qdrant v1.15.5 src/main.rs:
                  // TableOfContent::new, then the actix server), so /livez waits for the whole volume: 5 minutes
                  // restarted a large node (500 GiB in prod) in a loop while it loaded. 30 minutes.
                  startupProbe: { ...probe("/livez"), periodSeconds: 10, failureThreshold: 180 },
                  livenessProbe: { ...probe("/livez"), periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 6 },
                  readinessProbe: { ...probe("/readyz"), periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 },
                  securityContext: lockedDown(),
                  volumeMounts: [
                    { name: "data", mountPath: DIRS.storage, subPath: "storage" },
                    { name: "data", mountPath: DIRS.snapshots, subPath: "snapshots" },
                    { name: "init", mountPath: DIRS.init },
                    TMP.mount,
                  ],
                },
              ],
              volumes: [{ name: "init", emptyDir: {} }, TMP.volume],
            },
          },
          volumeClaimTemplates: [{ metadata: { name: "data", labels }, spec: claimSpec(args.storageClassName, s.storageGb) }],
        },
      },
      // Pulumi waits 10 minutes for a StatefulSet by default (pulumi-kubernetes DefaultStatefulSetTimeoutMins), less
      // than one large peer's load may take (the start-up probe's 30); under Ollama's 60, the longest a deploy allows
      // for (deploy-stack.yml's timeout).
      { ...o, customTimeouts: { create: "45m", update: "45m" } },
    );

    if (clustered) disruptionBudget(QDRANT.name, args.namespace, o);
    this.registerOutputs({});
  }
}
