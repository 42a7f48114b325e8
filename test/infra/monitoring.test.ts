// The Monitoring component under Pulumi mocks, in isolation: a dev-like and a prod-like instance in one
// process (Pulumi's mocks are process-global, so this file sets them once).
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings.js";
import YAML from "yaml";
import { Monitoring, type MonitoringArgs, type MonitoringSizing } from "../../infra/workloads/monitoring.ts";
import { NAME_LABEL, STORAGE_CLASS } from "../../infra/workloads/names.ts";
import { run } from "../monitoring/lib.ts";

interface Recorded {
  type: string;
  name: string;
  /** Secrets revealed. */
  inputs: Record<string, any>;
  /** As registered, secrets still wrapped. */
  raw: Record<string, any>;
}

const recorded: Recorded[] = [];

// How the mock monitor hands over a secret input: { [SIG_KEY]: SIG, value }.
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const isSecret = (v: unknown) => typeof v === "object" && v !== null && (v as any)[SECRET_SIG_KEY] === SECRET_SIG;
function reveal(v: any): any {
  if (isSecret(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map(reveal);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
  return v;
}
const MOCK_PASSWORD = "mock-generated-password";
const SLACK_URL = "https://hooks.slack.test/services/T0/B0/secret-token";
const PAGERDUTY_KEY = "pd-routing-key-secret";

await pulumi.runtime.setMocks(
  {
    newResource(args) {
      recorded.push({ type: args.type, name: args.name, inputs: reveal(args.inputs), raw: args.inputs });
      const computed = args.type === "random:index/randomPassword:RandomPassword" ? { result: MOCK_PASSWORD } : {};
      return { id: `${args.name}-id`, state: { ...args.inputs, ...computed } };
    },
    call: (args) => args.inputs,
  },
  "agent-stack",
  "test",
  false,
);

const DEV: MonitoringSizing = {
  retentionDays: 7,
  storageGb: 20,
  prometheusReplicas: 1,
  resources: { cpuRequest: "200m", memoryRequest: "1Gi", memoryLimit: "2Gi" },
  lokiMode: "singleBinary",
  nodeSelector: {},
  gpu: false,
};
const PROD: MonitoringSizing = {
  retentionDays: 30,
  storageGb: 100,
  prometheusReplicas: 2,
  resources: { cpuRequest: "1", memoryRequest: "4Gi", memoryLimit: "6Gi" },
  lokiMode: "s3",
  lokiRetentionDays: 30,
  nodeSelector: { role: "monitoring" },
  gpu: true,
};

function args(name: string, sizing: MonitoringSizing, extra: Partial<MonitoringArgs> = {}): MonitoringArgs {
  return {
    provider: new k8s.Provider(`${name}-k8s`, { kubeconfig: "{}" }),
    namespace: "monitoring",
    hostNamespace: "monitoring-host",
    agentNamespace: "agent",
    storageClassName: STORAGE_CLASS,
    sizing,
    postgres: {
      host: "agent.mock.rds.amazonaws.com",
      port: 5432,
      database: "agent",
      user: "agent",
      secretName: "postgres-exporter",
    },
    redis: { host: "master.agent.mock.cache.amazonaws.com", port: 6379, tls: true, secretName: "redis-exporter" },
    cloudwatch: { region: "eu-west-1", roleArn: `arn:aws:iam::123456789012:role/${name}-grafana` },
    alerting: {},
    ...extra,
  };
}

const dev = new Monitoring("dev", args("dev", DEV));
const prod = new Monitoring(
  "prod",
  args("prod", PROD, {
    loki: { bucketName: "agent-stack-prod-logs", region: "us-east-1", roleArn: "arn:aws:iam::123456789012:role/prod-loki" },
    alerting: { slackWebhookUrl: pulumi.secret(SLACK_URL), pagerdutyKey: pulumi.secret(PAGERDUTY_KEY) },
  }),
);
const devUrn = await new Promise<string>((resolve) => dev.urn.apply(resolve));
await new Promise<string>((resolve) => prod.urn.apply(resolve));
// Internal to @pulumi/pulumi (no typings): resolves once every registration has reached the mocks.
await (settings as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();

const of = (stack: string, type: string) => recorded.filter((r) => r.type === type && r.name.startsWith(`${stack}-`));
const releases = (stack: string) => of(stack, "kubernetes:helm.sh/v3:Release");
const release = (stack: string, helmName: string) => {
  const found = releases(stack).filter((r) => r.inputs.name === helmName);
  assert.equal(found.length, 1, `${stack}: one release ${helmName}, found ${releases(stack).map((r) => r.inputs.name)}`);
  return found[0].inputs;
};
const customResources = (stack: string, kind: string) => of(stack, `kubernetes:monitoring.coreos.com/v1:${kind}`);
const monitoringDir = (dir: string) => new URL(`../../monitoring/${dir}/`, import.meta.url);
const filesIn = (dir: string, suffix: string) =>
  readdirSync(monitoringDir(dir))
    .filter((f) => f.endsWith(suffix))
    .sort();

const work = mkdtempSync(join(tmpdir(), "monitoring-mocks-"));
after(() => rmSync(work, { recursive: true, force: true }));

describe("Monitoring component", () => {
  it("is one agent-stack:workloads:Monitoring component", () => {
    assert.match(devUrn, /::agent-stack:workloads:Monitoring::dev$/);
  });

  it("pins every Helm chart to an exact version from its upstream repository", () => {
    const expected: Record<string, string> = {
      "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
      loki: "https://grafana.github.io/helm-charts",
      alloy: "https://grafana.github.io/helm-charts",
      "postgres-exporter": "https://prometheus-community.github.io/helm-charts",
      "redis-exporter": "https://prometheus-community.github.io/helm-charts",
      "dcgm-exporter": "https://nvidia.github.io/dcgm-exporter/helm-charts",
    };
    assert.deepEqual(
      releases("prod")
        .map((r) => r.inputs.name)
        .sort(),
      Object.keys(expected).sort(),
    );
    for (const r of releases("prod")) {
      assert.match(r.inputs.version, /^\d+\.\d+\.\d+$/, r.inputs.name);
      assert.equal(r.inputs.repositoryOpts.repo, expected[r.inputs.name], r.inputs.name);
      // Node-level exporters go to the Pod Security "privileged" namespace; the rest stay in "monitoring" (baseline).
      assert.equal(r.inputs.namespace, r.inputs.name === "dcgm-exporter" ? "monitoring-host" : "monitoring", r.inputs.name);
    }
    assert.equal(
      release("prod", "kube-prometheus-stack").values["prometheus-node-exporter"].namespaceOverride,
      "monitoring-host",
    );
  });

  it("deploys the DCGM exporter only on tiers with GPUs, tolerating the GPU taint", () => {
    assert.equal(
      releases("dev").some((r) => r.inputs.name === "dcgm-exporter"),
      false,
    );
    const dcgm = release("prod", "dcgm-exporter").values;
    assert.ok(dcgm.tolerations.some((t: any) => t.key === "nvidia.com/gpu" && t.effect === "NoSchedule"));
    assert.deepEqual(dcgm.nodeSelector, { role: "gpu" });
    assert.equal(dcgm.serviceMonitor.additionalLabels.release, "kube-prometheus-stack");
  });

  it("sizes Prometheus per tier: retention, gp3 volume, replicas, monitoring nodes", () => {
    const spec = (s: string) => release(s, "kube-prometheus-stack").values.prometheus.prometheusSpec;
    assert.equal(spec("dev").retention, "7d");
    assert.equal(spec("prod").retention, "30d");
    assert.equal(spec("dev").storageSpec.volumeClaimTemplate.spec.resources.requests.storage, "20Gi");
    assert.equal(spec("prod").storageSpec.volumeClaimTemplate.spec.resources.requests.storage, "100Gi");
    assert.equal(spec("prod").retentionSize, "85GB");
    assert.equal(spec("prod").storageSpec.volumeClaimTemplate.spec.storageClassName, STORAGE_CLASS);
    assert.equal(spec("dev").replicas, 1);
    assert.equal(spec("prod").replicas, 2);
    assert.deepEqual(spec("dev").nodeSelector, {});
    assert.deepEqual(spec("prod").nodeSelector, { role: "monitoring" });
    assert.deepEqual(spec("prod").resources.requests, { cpu: "1", memory: "4Gi" });
  });

  it("wraps each rule file in a PrometheusRule the release selects", () => {
    for (const stack of ["dev", "prod"]) {
      const rules = customResources(stack, "PrometheusRule");
      assert.equal(rules.length, filesIn("prometheus/rules", ".yml").length);
      for (const file of filesIn("prometheus/rules", ".yml")) {
        const rule = rules.find((r) => r.inputs.metadata.name === `agent-stack-${file.replace(".yml", "")}`);
        assert.ok(rule, file);
        assert.equal(rule.inputs.metadata.labels.release, "kube-prometheus-stack");
        assert.deepEqual(rule.inputs.spec, YAML.parse(readFileSync(new URL(file, monitoringDir("prometheus/rules")), "utf8")));
      }
    }
  });

  it("ships each dashboard as a ConfigMap the Grafana sidecar loads", () => {
    const maps = of("dev", "kubernetes:core/v1:ConfigMap").filter((c) => c.inputs.metadata.labels?.grafana_dashboard === "1");
    assert.deepEqual(maps.flatMap((c) => Object.keys(c.inputs.data)).sort(), filesIn("grafana/dashboards", ".json"));
    for (const c of maps) for (const json of Object.values(c.inputs.data)) assert.ok(JSON.parse(json as string).uid);
    const sidecar = release("dev", "kube-prometheus-stack").values.grafana.sidecar.dashboards;
    assert.deepEqual([sidecar.label, sidecar.labelValue], ["grafana_dashboard", "1"]);
  });

  it("scrapes the API and Qdrant with ServiceMonitors, but not Ollama (it has no /metrics)", () => {
    const monitors = customResources("dev", "ServiceMonitor");
    assert.deepEqual(monitors.map((m) => m.inputs.metadata.name).sort(), ["agent-api", "qdrant"]);
    const api = monitors.find((m) => m.inputs.metadata.name === "agent-api")!.inputs;
    assert.equal(api.metadata.namespace, "agent");
    assert.equal(api.metadata.labels.release, "kube-prometheus-stack");
    assert.deepEqual(api.spec.selector.matchLabels, { "app.kubernetes.io/name": "agent-api" });
    assert.equal(api.spec.jobLabel, "app.kubernetes.io/name");
    assert.deepEqual(
      [api.spec.endpoints[0].port, api.spec.endpoints[0].path],
      ["metrics", "/metrics"],
      "the port the Ingress never routes",
    );
    const qdrant = monitors.find((m) => m.inputs.metadata.name === "qdrant")!.inputs.spec.endpoints[0];
    assert.deepEqual([qdrant.port, qdrant.path, qdrant.authorization.type], ["http", "/metrics", "Bearer"]);
    // Qdrant's route label is `endpoint`, as is the operator's target label (monitoring.ts QDRANT_SCRAPE).
    assert.equal(qdrant.honorLabels, true, "Qdrant's endpoint label would be exported_endpoint");
  });

  it("generates the Grafana admin password into a Secret, never into Helm values", () => {
    assert.equal(of("dev", "random:index/randomPassword:RandomPassword").length, 1);
    const secret = of("dev", "kubernetes:core/v1:Secret").find((s) => s.inputs.metadata.name === "grafana-admin")!;
    assert.equal(secret.inputs.stringData["admin-password"], MOCK_PASSWORD);
    assert.ok(isSecret(secret.raw.stringData), "stringData is a Pulumi secret");
    const grafana = release("dev", "kube-prometheus-stack").values.grafana.admin;
    assert.deepEqual(grafana, { existingSecret: "grafana-admin", userKey: "admin-user", passwordKey: "admin-password" });
    for (const r of releases("dev")) assert.doesNotMatch(JSON.stringify(r.inputs), new RegExp(MOCK_PASSWORD));
  });

  it("fills the receivers Secret from secret inputs and keeps them out of the Alertmanager config", () => {
    const receivers = of("prod", "kubernetes:core/v1:Secret").find((s) => s.inputs.metadata.name === "alertmanager-receivers")!;
    assert.deepEqual(receivers.inputs.stringData, { "slack-webhook-url": SLACK_URL, "pagerduty-routing-key": PAGERDUTY_KEY });
    assert.ok(isSecret(receivers.raw.stringData), "stringData is a Pulumi secret");
    const am = release("prod", "kube-prometheus-stack").values.alertmanager;
    assert.deepEqual(am.alertmanagerSpec.secrets, ["alertmanager-receivers"]);
    for (const r of releases("prod")) assert.doesNotMatch(JSON.stringify(r.inputs), /secret-token|pd-routing-key-secret/);
  });

  it("renders an Alertmanager config amtool accepts, with only the receivers a stack has secrets for", async () => {
    const receiverKinds = async (stack: string) => {
      const config = release(stack, "kube-prometheus-stack").values.alertmanager.config;
      const file = join(work, `${stack}-alertmanager.yml`);
      writeFileSync(file, YAML.stringify(config));
      const { code, output } = await run("amtool", ["check-config", file]);
      assert.equal(code, 0, output);
      return Object.fromEntries(
        config.receivers.map((r: any) => [
          r.name,
          Object.keys(r)
            .filter((k) => k !== "name")
            .sort(),
        ]),
      );
    };
    assert.deepEqual(await receiverKinds("dev"), { null: [], pager: [], chat: [] });
    assert.deepEqual(await receiverKinds("prod"), {
      null: [],
      pager: ["pagerduty_configs", "slack_configs"],
      chat: ["slack_configs"],
    });
  });

  it("runs Loki as a single binary on its volume in dev and on S3 through IRSA in prod", () => {
    const devLoki = release("dev", "loki").values;
    assert.equal(devLoki.deploymentMode, "SingleBinary");
    assert.equal(devLoki.loki.storage.type, "filesystem");
    assert.equal(devLoki.loki.limits_config.retention_period, "168h");
    const prodLoki = release("prod", "loki").values;
    assert.equal(prodLoki.loki.storage.type, "s3");
    assert.equal(prodLoki.loki.storage.bucketNames.chunks, "agent-stack-prod-logs");
    assert.equal(prodLoki.loki.schemaConfig.configs[0].object_store, "s3");
    assert.equal(prodLoki.serviceAccount.annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::123456789012:role/prod-loki");
    assert.equal(prodLoki.loki.limits_config.retention_period, "720h");
    const alloy = release("prod", "alloy").values;
    assert.match(alloy.alloy.configMap.content, /loki\.write "default"/);
    assert.deepEqual(alloy.controller.nodeSelector, { role: "monitoring" });
    // Scraped by the stack's Prometheus (its release label), for LogsNotShipped.
    assert.deepEqual(alloy.serviceMonitor, { enabled: true, additionalLabels: { release: "kube-prometheus-stack" } });
  });

  it("ships every pod's logs and the cluster's events to Loki's gateway, labelled as the runbook's LogQL reads them", () => {
    const alloy = release("prod", "alloy");
    const loki = release("prod", "loki");
    // Top-level blocks of the Alloy config: `<component> "<label>" { ... }`, each closed at the start of a line.
    const blocks = new Map(
      [...(alloy.values.alloy.configMap.content as string).matchAll(/^([\w.]+) "(\w+)" \{\n([\s\S]*?)^\}/gm)].map((m) => [
        `${m[1]}.${m[2]}`,
        m[3]!,
      ]),
    );
    const attr = (block: string, name: string) => {
      assert.ok(blocks.has(block), `no ${block} in ${[...blocks.keys()]}`);
      return new RegExp(`^\\s*${name}\\s*=\\s*(.+)$`, "m").exec(blocks.get(block)!)?.[1];
    };
    // The loki chart's gateway Service is <release>-gateway, in the release's namespace: Alloy's own.
    assert.equal(alloy.namespace, loki.namespace);
    assert.equal(attr("loki.write.default", "url"), `"http://${loki.name}-gateway/loki/api/v1/push"`);
    assert.equal(attr("loki.source.kubernetes.pods", "targets"), "discovery.relabel.pods.output");
    assert.equal(attr("discovery.relabel.pods", "targets"), "discovery.kubernetes.pods.targets");
    for (const source of ["loki.source.kubernetes.pods", "loki.source.kubernetes_events.events"]) {
      assert.equal(attr(source, "forward_to"), "[loki.write.default.receiver]", source);
    }
    // README's queries select {namespace="agent", app="agent-api"}: app is the pods' NAME_LABEL, as Kubernetes
    // discovery names a pod label (every character outside [a-zA-Z0-9_] an underscore).
    const rules = [...blocks.get("discovery.relabel.pods")!.matchAll(/source_labels = \["(\w+)"\]\s*target_label\s*= "(\w+)"/g)];
    assert.deepEqual(Object.fromEntries(rules.map((m) => [m[2], m[1]])), {
      namespace: "__meta_kubernetes_namespace",
      pod: "__meta_kubernetes_pod_name",
      container: "__meta_kubernetes_pod_container_name",
      app: `__meta_kubernetes_pod_label_${NAME_LABEL.replace(/[^a-zA-Z0-9_]/g, "_")}`,
      node: "__meta_kubernetes_pod_node_name",
    });
  });

  it("gives Grafana a CloudWatch data source through IRSA on its named service account", () => {
    const grafana = release("prod", "kube-prometheus-stack").values.grafana;
    assert.deepEqual(grafana.serviceAccount, {
      create: true,
      name: "grafana",
      annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/prod-grafana" },
    });
    const cloudwatch = grafana.additionalDataSources.find((d: { type: string }) => d.type === "cloudwatch");
    // The uid the Edge dashboard's datasource variable resolves to by type; region: the stack's.
    assert.deepEqual(cloudwatch, {
      name: "CloudWatch",
      type: "cloudwatch",
      uid: "cloudwatch",
      jsonData: { authType: "default", defaultRegion: "eu-west-1" },
    });
  });

  it("points the exporters at RDS and ElastiCache (TLS) with passwords from Secrets", () => {
    const pg = release("dev", "postgres-exporter").values;
    assert.deepEqual(pg.config.datasource.passwordSecret, { name: "postgres-exporter", key: "password" });
    assert.equal(pg.config.datasource.host, "agent.mock.rds.amazonaws.com");
    assert.equal(pg.config.datasource.port, "5432");
    // verify-full against the RDS CA bundle mounted from the rds-ca-bundle ConfigMap.
    assert.equal(pg.config.datasource.sslmode, "verify-full");
    assert.equal(pg.config.datasource.extraParams, "sslrootcert=/etc/rds-ca/rds-ca-bundle.pem");
    assert.deepEqual(pg.extraVolumes, [{ name: "rds-ca", configMap: { name: "rds-ca-bundle" } }]);
    assert.deepEqual(pg.extraVolumeMounts, [{ name: "rds-ca", mountPath: "/etc/rds-ca", readOnly: true }]);
    const redis = release("dev", "redis-exporter").values;
    assert.equal(redis.redisAddress, "rediss://master.agent.mock.cache.amazonaws.com:6379");
    assert.deepEqual(redis.auth, { enabled: true, secret: { name: "redis-exporter", key: "password" } });
    for (const v of [pg, redis]) assert.equal(v.serviceMonitor.labels.release, "kube-prometheus-stack");
  });

  it("names every Kubernetes object and Helm release explicitly (no random suffixes)", () => {
    for (const r of recorded.filter((r) => r.type.startsWith("kubernetes:") && r.type !== "pulumi:providers:kubernetes")) {
      const explicit = r.type === "kubernetes:helm.sh/v3:Release" ? r.inputs.name : r.inputs.metadata?.name;
      assert.ok(explicit, `${r.type} ${r.name}`);
    }
  });

  it("refuses lokiMode s3 without a bucket", () => {
    assert.throws(() => new Monitoring("broken", args("broken", { ...DEV, lokiMode: "s3" })), /lokiMode 's3' needs args.loki/);
  });
});
