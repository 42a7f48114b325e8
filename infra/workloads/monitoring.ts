// The monitoring stack (guide 000 "Monitoring and Observability"): kube-prometheus-stack (Prometheus,
// Alertmanager, Grafana, kube-state-metrics, node-exporter), Loki with Grafana Alloy shipping pod logs,
// exporters for RDS PostgreSQL, ElastiCache and NVIDIA GPUs, and ServiceMonitors for the API and Qdrant.
// Rules, dashboards, the Alertmanager config and the Alloy config are the plain files in monitoring/,
// read at deploy time. Ollama has no Prometheus endpoint, so it is watched through pod and GPU metrics.
import { readdirSync, readFileSync } from "node:fs";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import YAML from "yaml";
import { RECEIVER_SECRET_KEYS, RECEIVER_SECRET_NAME, renderAlertmanagerConfig } from "../../monitoring/alertmanager/render.ts";
import { EVICTABLE } from "../platform/cluster.ts";
import { CostMetrics } from "./cost-metrics.ts";
import { monitoringIngress } from "./network-policies.ts";
import { CHARTS } from "../versions.ts";
import { type Chart, helmRelease } from "./helm.ts";
import { RDS_CA, RDS_CA_FILE } from "./db-roles.ts";
import { API, NAME_LABEL, QDRANT, SECRETS } from "./names.ts";
import { claimSpec, placement, resources, selectorFor, type Sizes } from "./pod.ts";

const monitoringFile = (path: string) => new URL(`../../monitoring/${path}`, import.meta.url);

/** Pinned charts of the monitoring stack (versions and their sources: infra/versions.ts). */
export const MONITORING_CHARTS = {
  kubePrometheusStack: CHARTS.kubePrometheusStack,
  loki: CHARTS.loki,
  alloy: CHARTS.alloy,
  postgresExporter: CHARTS.postgresExporter,
  redisExporter: CHARTS.redisExporter,
  dcgmExporter: CHARTS.dcgmExporter,
} as const;

/**
 * Helm release name of kube-prometheus-stack. Its Prometheus selects PrometheusRules and ServiceMonitors
 * (in every namespace) carrying `release: <this>`.
 */
export const KPS_RELEASE = "kube-prometheus-stack";
const SELECTED_BY_PROMETHEUS = { release: KPS_RELEASE };

/** Helm release name of Loki. */
export const LOKI_RELEASE = "loki";
/**
 * Loki's service account, the IRSA subject in S3 mode, named in the values: the chart (6.29.0 _helpers.tpl
 * loki.serviceAccountName) names it `serviceAccount.name`, else the chart's name, not the release's (IRSA audit).
 */
export const LOKI_SERVICE_ACCOUNT = "loki";

/** Alertmanager's service account (kube-prometheus-stack values alertmanager.serviceAccount.name). */
export const ALERTMANAGER_SERVICE_ACCOUNT = "alertmanager";

/**
 * Grafana's service account, named so its IRSA role can trust exactly it: kube-prometheus-stack 81.4.3 passes
 * `grafana.serviceAccount` to the grafana chart (10.5.15), whose _helpers.tpl uses `serviceAccount.name` as given and
 * whose serviceaccount.yaml puts `serviceAccount.annotations` on it. The chart's securityContext (fsGroup 472) lets
 * Grafana read the projected web-identity token, which its CloudWatch data source finds through the AWS SDK's default
 * chain (`authType: default`, Grafana's "Configure the CloudWatch data source").
 */
export const GRAFANA_SERVICE_ACCOUNT = "grafana";

/**
 * EKS runs the control plane out of reach: kube-controller-manager, kube-scheduler and etcd have no endpoint a
 * pod can scrape, and kube-proxy's metrics listen on 127.0.0.1:10249 (the EKS add-on's kube-proxy-config;
 * its configuration schema has no metricsBindAddress, and edits to the ConfigMap are overwritten by add-on
 * updates). Scraping them only feeds `absent()` alerts (KubeControllerManagerDown, KubeSchedulerDown,
 * KubeProxyDown, etcd's) that fire for ever. Keys checked in kube-prometheus-stack values.yaml (tags 81.4.3
 * and 88.5.3): `<component>.enabled` and `defaultRules.rules.<group>`; the rule templates need both.
 */
export const EKS_HIDDEN_TARGETS = {
  kubeControllerManager: { enabled: false },
  kubeScheduler: { enabled: false },
  kubeEtcd: { enabled: false },
  kubeProxy: { enabled: false },
} as const;
export const EKS_HIDDEN_RULES = {
  kubeControllerManager: false,
  kubeSchedulerAlerting: false,
  kubeSchedulerRecording: false,
  etcd: false,
  kubeProxy: false,
} as const;

/**
 * Qdrant's scrape endpoint. honorLabels: Qdrant names the route of its REST series `endpoint` (v1.15.5
 * src/common/metrics.rs WebApiTelemetry: `("method", method), ("endpoint", endpoint), ("status", ...)`), and so does
 * prometheus-operator the port of every ServiceMonitor target (v0.88.1 pkg/prometheus/promcfg.go: `target_label:
 * endpoint`, `replacement: <port>`). Without it Prometheus keeps the target's, "http", and renames Qdrant's to
 * exported_endpoint (honor_labels false, Prometheus scrape.go mutateSampleLabels), so QdrantHighLatency and the
 * Infrastructure dashboard's Qdrant latency and per-endpoint panels matched nothing. Qdrant's other labels (name,
 * version, peer_id, id, method, status) are none of those Prometheus sets (job, instance, namespace, service, pod,
 * container, endpoint).
 */
export const QDRANT_SCRAPE = { port: "http", path: "/metrics", honorLabels: true } as const;

/** Label the Grafana sidecar loads dashboards from. */
export const DASHBOARD_LABEL = { key: "grafana_dashboard", value: "1" } as const;

/** Keys the exporters read from the Secrets named in MonitoringArgs.postgres / .redis. */
export const EXPORTER_SECRET_KEY = "password";

export interface MonitoringSizing {
  /** Prometheus TSDB retention (guide 000: 30 d). */
  retentionDays: number;
  /** Prometheus persistent volume (gp3 StorageClass); retention by size stops at 85 % of it. */
  storageGb: number;
  prometheusReplicas: number;
  /** Prometheus container; the other components are small and fixed. */
  resources: Sizes;
  /** singleBinary: Loki keeps logs on its volume (dev); s3: chunks and index in the bucket of `loki`. */
  lokiMode: "singleBinary" | "s3";
  /** Defaults to retentionDays. */
  lokiRetentionDays?: number;
  /** Where the monitoring pods run: `{ role: "monitoring" }` in prod tiers, `{}` where only the general group exists. */
  nodeSelector: Record<string, string>;
  /** The tier has GPU nodes: deploy the DCGM exporter there. */
  gpu: boolean;
}

export interface MonitoringArgs {
  provider: k8s.Provider;
  namespace: pulumi.Input<string>;
  /** Pod Security "privileged" namespace for the exporters that read the node (node-exporter, DCGM). */
  hostNamespace: pulumi.Input<string>;
  /**
   * The API's and Qdrant's namespace (the Namespace's output, so the ServiceMonitors there wait for it: they named it
   * as a plain string and depended only on the chart's CRDs).
   */
  agentNamespace: pulumi.Input<string>;
  /**
   * The default StorageClass's name as its output, so the releases' volume claims wait for it (they named it as a plain
   * string: a claim made first stays Pending until the volume controller's next resync finds the class).
   */
  storageClassName: pulumi.Input<string>;
  sizing: MonitoringSizing;
  /** Required with lokiMode "s3": the log bucket and the IRSA role Loki's service account assumes. */
  loki?: { bucketName: pulumi.Input<string>; region: string; roleArn: pulumi.Input<string> };
  /**
   * RDS endpoint and the read-only monitor role; its password is under EXPORTER_SECRET_KEY of `secretName` in
   * `namespace`, the RDS CA bundle in the RDS_CA ConfigMap there (verify-full).
   */
  postgres: {
    host: pulumi.Input<string>;
    port: pulumi.Input<number>;
    database: string;
    user: string;
    secretName: pulumi.Input<string>;
  };
  /** ElastiCache endpoint; the AUTH token is under EXPORTER_SECRET_KEY of `secretName` in `namespace`. */
  redis: { host: pulumi.Input<string>; port: pulumi.Input<number>; tls: boolean; secretName: pulumi.Input<string> };
  /** Grafana's CloudWatch data source (the Edge dashboard): its region and the IRSA role of GRAFANA_SERVICE_ACCOUNT. */
  cloudwatch: { region: string; roleArn: pulumi.Input<string> };
  /** Receivers left out are dropped from the Alertmanager config (see monitoring/alertmanager/render.ts). */
  alerting: {
    slackWebhookUrl?: pulumi.Input<string>;
    pagerdutyKey?: pulumi.Input<string>;
    /** The stack's SNS topic; Alertmanager's service account assumes `roleArn` (IRSA) to publish to it. */
    sns?: { topicArn: pulumi.Input<string>; region: string; roleArn: pulumi.Input<string> };
    email?: { to: string; from: string; smarthost: string; username?: string; password?: pulumi.Input<string> };
  };
}

export class Monitoring extends pulumi.ComponentResource {
  readonly grafanaAdminSecretName: pulumi.Output<string>;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Monitoring", name, {}, opts);
    const o = { parent: this, provider: args.provider };
    const { sizing, namespace } = args;
    if (sizing.lokiMode === "s3" && !args.loki)
      throw new Error("Monitoring: lokiMode 's3' needs args.loki (bucketName, region, roleArn)");
    const onNodes = { nodeSelector: sizing.nodeSelector };

    const adminPassword = new random.RandomPassword(`${name}-grafana-admin`, { length: 32, special: false }, { parent: this });
    const grafanaAdmin = new k8s.core.v1.Secret(
      `${name}-grafana-admin`,
      {
        metadata: { name: "grafana-admin", namespace },
        type: "Opaque",
        stringData: pulumi.secret({ "admin-user": "admin", "admin-password": adminPassword.result }),
      },
      o,
    );

    const receiverSecrets = new k8s.core.v1.Secret(
      `${name}-alertmanager-receivers`,
      {
        metadata: { name: RECEIVER_SECRET_NAME, namespace },
        type: "Opaque",
        stringData: pulumi.secret(receiverSecretData(args.alerting)),
      },
      o,
    );

    const release = (id: string, chart: Chart, values: pulumi.Inputs, extra: pulumi.CustomResourceOptions = {}, ns = namespace) =>
      helmRelease(`${name}-${id}`, { name: id, namespace: ns, chart, values, timeoutSeconds: 900 }, { ...o, ...extra });

    monitoringIngress(name, namespace, o);

    const kps = release(
      KPS_RELEASE,
      MONITORING_CHARTS.kubePrometheusStack,
      {
        crds: { enabled: true },
        // monitoring/prometheus/rules replaces these three of the chart's own alerts.
        defaultRules: {
          create: true,
          disabled: { KubePodCrashLooping: true, KubePodNotReady: true, KubeNodeNotReady: true },
          rules: EKS_HIDDEN_RULES,
        },
        // Two of the chart's alerts fire on a morning start (alerts audit): the large tier's Ollama scale-up keeps its
        // PodDisruptionBudget short of healthy pods while models pull (OFF_PEAK_WARM_UP_MINUTES, up to 20), and dev's
        // Prometheus starts with an empty window while metrics-server is not up yet. `customRules.<alert>.for` is read
        // by the rule templates (chart 81.4.3 templates/prometheus/rules-1.14: `dig "<alert>" "for" ...`).
        customRules: { KubePdbNotEnoughHealthyPods: { for: "30m" }, KubeAggregatedAPIDown: { for: "10m" } },
        ...EKS_HIDDEN_TARGETS,
        prometheus: {
          prometheusSpec: {
            replicas: sizing.prometheusReplicas,
            retention: `${sizing.retentionDays}d`,
            retentionSize: `${Math.floor(sizing.storageGb * 0.85)}GB`,
            resources: resources(sizing.resources),
            storageSpec: volumeClaim(args.storageClassName, sizing.storageGb),
            ...onNodes,
          },
        },
        alertmanager: {
          config: renderAlertmanagerConfig(readFileSync(monitoringFile("alertmanager/alertmanager.yml"), "utf8"), {
            slack: Boolean(args.alerting.slackWebhookUrl),
            pagerduty: Boolean(args.alerting.pagerdutyKey),
            email: args.alerting.email && { ...args.alerting.email, password: Boolean(args.alerting.email.password) },
            sns: args.alerting.sns && { topicArn: args.alerting.sns.topicArn, region: args.alerting.sns.region },
          }),
          // Named, so the IRSA role can trust exactly this service account.
          serviceAccount: {
            create: true,
            name: ALERTMANAGER_SERVICE_ACCOUNT,
            annotations: args.alerting.sns ? { "eks.amazonaws.com/role-arn": args.alerting.sns.roleArn } : {},
          },
          alertmanagerSpec: {
            replicas: Math.min(sizing.prometheusReplicas, 2),
            secrets: [RECEIVER_SECRET_NAME],
            storage: volumeClaim(args.storageClassName, 2),
            resources: small("50m", "64Mi", "256Mi"),
            ...onNodes,
          },
        },
        grafana: {
          admin: { existingSecret: grafanaAdmin.metadata.name, userKey: "admin-user", passwordKey: "admin-password" },
          sidecar: { dashboards: { enabled: true, label: DASHBOARD_LABEL.key, labelValue: DASHBOARD_LABEL.value } },
          serviceAccount: {
            create: true,
            name: GRAFANA_SERVICE_ACCOUNT,
            annotations: { "eks.amazonaws.com/role-arn": args.cloudwatch.roleArn },
          },
          // Loki's gateway Service lives in the same namespace. kube-prometheus-stack renders each entry whole
          // (templates/grafana/configmaps-datasources.yaml: toYaml of the list), jsonData included.
          additionalDataSources: [
            { name: "Loki", type: "loki", uid: "loki", access: "proxy", url: "http://loki-gateway" },
            {
              name: "CloudWatch",
              type: "cloudwatch",
              uid: "cloudwatch",
              jsonData: { authType: "default", defaultRegion: args.cloudwatch.region },
            },
          ],
          resources: small("100m", "256Mi", "512Mi"),
          // Its database and sidecar folders are emptyDirs (grafana chart 10.5.15 templates/_pod.tpl): on dev's general
          // group it kept a node from every scale-down. What is provisioned comes back at start; what is saved in its UI
          // (dashboards, users) is lost at any move of the pod, a scale-down now too (README, "Dashboards:").
          podAnnotations: EVICTABLE,
          ...onNodes,
        },
        prometheusOperator: { resources: small("100m", "128Mi", "512Mi"), ...onNodes },
        "kube-state-metrics": { resources: small("50m", "128Mi", "512Mi"), ...onNodes },
        // A DaemonSet: it must also run on the tainted GPU nodes. Host network, PID and root filesystem: it
        // lives in the privileged host namespace (prometheus-node-exporter chart 4.51: namespaceOverride).
        "prometheus-node-exporter": {
          namespaceOverride: args.hostNamespace,
          tolerations: [{ operator: "Exists", effect: "NoSchedule" }],
        },
      },
      { dependsOn: [receiverSecrets] },
    );
    const afterCrds = { dependsOn: [kps] };

    for (const file of monitoringFiles("prometheus/rules", ".yml")) {
      const base = file.replace(/\.yml$/, "");
      new k8s.apiextensions.CustomResource(
        `${name}-rules-${base}`,
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind: "PrometheusRule",
          metadata: { name: `agent-stack-${base}`, namespace, labels: SELECTED_BY_PROMETHEUS },
          spec: YAML.parse(readFileSync(monitoringFile(`prometheus/rules/${file}`), "utf8")),
        },
        { ...o, ...afterCrds },
      );
    }

    new CostMetrics(
      `${name}-cost`,
      { namespace, labels: SELECTED_BY_PROMETHEUS, stack: pulumi.getStack() },
      { ...o, ...afterCrds },
    );

    for (const file of monitoringFiles("grafana/dashboards", ".json")) {
      const base = file.replace(/\.json$/, "");
      new k8s.core.v1.ConfigMap(
        `${name}-dashboard-${base}`,
        {
          metadata: { name: `grafana-dashboard-${base}`, namespace, labels: { [DASHBOARD_LABEL.key]: DASHBOARD_LABEL.value } },
          data: { [file]: readFileSync(monitoringFile(`grafana/dashboards/${file}`), "utf8") },
        },
        o,
      );
    }

    // In the agent namespace: the Qdrant API key Secret they read must sit beside them.
    const monitor = serviceMonitor(args.agentNamespace, o, afterCrds);
    monitor(`${name}-${API.name}`, API.name, { port: API.metricsPortName, path: "/metrics" });
    monitor(`${name}-${QDRANT.name}`, QDRANT.name, {
      ...QDRANT_SCRAPE,
      authorization: { type: "Bearer", credentials: { name: SECRETS.qdrantApiKey.name, key: SECRETS.qdrantApiKey.key } },
      // One target per peer: the headless Service selects the same pods.
      relabelings: [{ sourceLabels: ["__meta_kubernetes_service_name"], regex: QDRANT.headless, action: "drop" }],
    });

    const loki = release(LOKI_RELEASE, MONITORING_CHARTS.loki, lokiValues(args), afterCrds);
    release(
      "alloy",
      MONITORING_CHARTS.alloy,
      {
        // One replica tails every pod through the Kubernetes API: no host mounts, no per-node agent.
        controller: { type: "deployment", replicas: 1, ...onNodes },
        // Scraped (chart 0.12.5 templates/servicemonitor.yaml, port http-metrics) for LogsNotShipped: its pushes to Loki.
        serviceMonitor: { enabled: true, additionalLabels: SELECTED_BY_PROMETHEUS },
        alloy: {
          configMap: { create: true, content: readFileSync(monitoringFile("logs/config.alloy"), "utf8") },
          resources: small("50m", "128Mi", "512Mi"),
        },
      },
      { dependsOn: [loki] },
    );

    const exporterMonitor = { enabled: true, labels: SELECTED_BY_PROMETHEUS };
    release(
      "postgres-exporter",
      MONITORING_CHARTS.postgresExporter,
      {
        config: {
          datasource: {
            host: args.postgres.host,
            port: pulumi.output(args.postgres.port).apply(String),
            database: args.postgres.database,
            user: args.postgres.user,
            passwordSecret: { name: args.postgres.secretName, key: EXPORTER_SECRET_KEY },
            // Chart 7.3.0 builds the URI as ...?sslmode=<sslmode>&<extraParams>; lib/pq reads sslrootcert.
            sslmode: "verify-full",
            extraParams: `sslrootcert=${RDS_CA_FILE}`,
          },
        },
        extraVolumes: [{ name: "rds-ca", configMap: { name: RDS_CA.configMap } }],
        extraVolumeMounts: [{ name: "rds-ca", mountPath: RDS_CA.mountPath, readOnly: true }],
        serviceMonitor: exporterMonitor,
        resources: small("50m", "64Mi", "128Mi"),
        ...onNodes,
      },
      afterCrds,
    );
    release(
      "redis-exporter",
      MONITORING_CHARTS.redisExporter,
      {
        redisAddress: pulumi.interpolate`${args.redis.tls ? "rediss" : "redis"}://${args.redis.host}:${args.redis.port}`,
        auth: { enabled: true, secret: { name: args.redis.secretName, key: EXPORTER_SECRET_KEY } },
        serviceMonitor: exporterMonitor,
        resources: small("50m", "64Mi", "128Mi"),
        ...onNodes,
      },
      afterCrds,
    );
    if (sizing.gpu) {
      // Reads the GPUs through the node's devices and kubelet socket: the privileged host namespace.
      release(
        "dcgm-exporter",
        MONITORING_CHARTS.dcgmExporter,
        {
          serviceMonitor: { enabled: true, additionalLabels: SELECTED_BY_PROMETHEUS },
          resources: small("100m", "256Mi", "512Mi"),
          ...placement("gpu"),
        },
        afterCrds,
        args.hostNamespace,
      );
    }

    this.grafanaAdminSecretName = grafanaAdmin.metadata.name;
    this.registerOutputs({ grafanaAdminSecretName: this.grafanaAdminSecretName });
  }
}

/** Data of the receivers Secret: only the secrets the stack has (alertmanager.yml's *_file paths). */
function receiverSecretData(alerting: MonitoringArgs["alerting"]): Record<string, pulumi.Input<string>> {
  const data: Record<string, pulumi.Input<string>> = {};
  if (alerting.slackWebhookUrl) data[RECEIVER_SECRET_KEYS.slack] = alerting.slackWebhookUrl;
  if (alerting.pagerdutyKey) data[RECEIVER_SECRET_KEYS.pagerduty] = alerting.pagerdutyKey;
  if (alerting.email?.password) data[RECEIVER_SECRET_KEYS.smtpPassword] = alerting.email.password;
  return data;
}

function lokiValues(args: MonitoringArgs): pulumi.Inputs {
  const { sizing } = args;
  const s3 = sizing.lokiMode === "s3" ? args.loki! : undefined;
  const store = s3 ? "s3" : "filesystem";
  const onNodes = { nodeSelector: sizing.nodeSelector };
  return {
    // Its pods' component label is single-binary: Loki's NetworkPolicy selects them by it (MONITORING_PODS.loki).
    deploymentMode: "SingleBinary",
    loki: {
      // Every Loki pod's (loki chart 6.29.0 templates: single-binary/statefulset.yaml and
      // gateway/deployment-gateway-nginx.yaml read it beside their own): their tmp, rules-sidecar and nginx scratch
      // emptyDirs kept a dev general node from every scale-down. The logs themselves are on the volume or in S3.
      podAnnotations: EVICTABLE,
      auth_enabled: false,
      commonConfig: { replication_factor: 1 },
      schemaConfig: {
        configs: [
          {
            from: "2024-04-01",
            store: "tsdb",
            object_store: store,
            schema: "v13",
            index: { prefix: "loki_index_", period: "24h" },
          },
        ],
      },
      storage: s3
        ? {
            type: "s3",
            // `admin` is read only by the enterprise templates (loki chart 6.29.0 admin-api, gateway-enterprise).
            bucketNames: { chunks: s3.bucketName, ruler: s3.bucketName },
            s3: { region: s3.region },
          }
        : { type: "filesystem" },
      limits_config: { retention_period: `${(sizing.lokiRetentionDays ?? sizing.retentionDays) * 24}h` },
      compactor: { retention_enabled: true, delete_request_store: store },
    },
    // With s3 the volume only holds the WAL and compactor scratch; without it, every log line.
    singleBinary: {
      replicas: 1,
      persistence: { enabled: true, size: "10Gi", storageClass: args.storageClassName },
      resources: small("100m", "256Mi", "1Gi"),
      ...onNodes,
    },
    read: { replicas: 0 },
    write: { replicas: 0 },
    backend: { replicas: 0 },
    gateway: onNodes,
    // The chart's memcached caches default to 8 GiB; not worth it at this log volume.
    chunksCache: { enabled: false },
    resultsCache: { enabled: false },
    lokiCanary: { enabled: false },
    test: { enabled: false },
    minio: { enabled: false },
    serviceAccount: {
      name: LOKI_SERVICE_ACCOUNT,
      ...(s3 && { annotations: { "eks.amazonaws.com/role-arn": s3.roleArn } }),
    },
  };
}

const serviceMonitor =
  (namespace: pulumi.Input<string>, o: pulumi.CustomResourceOptions, extra: pulumi.CustomResourceOptions) =>
  (resourceName: string, service: string, endpoint: Record<string, unknown>): k8s.apiextensions.CustomResource =>
    new k8s.apiextensions.CustomResource(
      resourceName,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "ServiceMonitor",
        metadata: { name: service, namespace, labels: SELECTED_BY_PROMETHEUS },
        spec: {
          // job = the Service's app.kubernetes.io/name ("agent-api", "qdrant"), the job the alert rules name.
          jobLabel: NAME_LABEL,
          selector: selectorFor(service),
          endpoints: [{ interval: "30s", ...endpoint }],
        },
      },
      { ...o, ...extra },
    );

function volumeClaim(storageClassName: pulumi.Input<string>, gb: number) {
  return { volumeClaimTemplate: { spec: claimSpec(storageClassName, gb) } };
}

function small(cpuRequest: string, memoryRequest: string, memoryLimit: string) {
  return resources({ cpuRequest, memoryRequest, memoryLimit });
}

function monitoringFiles(dir: string, suffix: string): string[] {
  return readdirSync(monitoringFile(dir))
    .filter((f) => f.endsWith(suffix))
    .sort();
}
