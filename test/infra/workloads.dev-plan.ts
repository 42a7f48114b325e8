// The dev stack's workloads (tier dev) under mocks: everything on the one general node, CPU-only Ollama
// with the small models, a single Qdrant, the HPA at dev size, and the same hardening as prod.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { MOCK_SECRET_PREFIX } from "../../infra/plan/mocks.ts";
import { containersOf, parseImage } from "../../policy/lib/k8s.ts";
import { inputs, ofType, one } from "../support/plan.ts";
import { workloadView } from "../support/workloads.ts";

const plan = await stackPlan("dev");
const { workloads, k8sWorkloads, pod, container, envOf, deployment, api, ollama, qdrant } = workloadView(plan);

test("dev builds the same multi-arch app/Dockerfile (its node is Graviton) into its own repository and runs it by digest", () => {
  const image = inputs(one(plan, "docker-build:index:Image"));
  assert.deepEqual(
    [image.context, image.dockerfile, image.platforms],
    [{ location: "app" }, { location: "app/Dockerfile" }, ["linux/amd64", "linux/arm64"]],
  );
  assert.match(image.tags[0], /\/agent-stack-dev-api:src-[0-9a-f]{12}$/);
  assert.match(api.image!, /\/agent-stack-dev-api@sha256:[0-9a-f]{64}$/);
  assert.match(String(plan.outputs.imageDigest), /^sha256:[0-9a-f]{64}$/);
});

test("the dev API: probes, hardening, Secret-only credentials and the CPU models", () => {
  assert.equal((api.startupProbe as any).httpGet.path, "/health");
  assert.equal((api.livenessProbe as any).httpGet.path, "/health");
  assert.equal((api.readinessProbe as any).httpGet.path, "/health/serving");
  assert.equal(pod(deployment).securityContext.runAsNonRoot, true);
  assert.equal(api.securityContext!.readOnlyRootFilesystem, true);
  assert.deepEqual(api.envFrom, [{ secretRef: { name: "agent-api-env" } }]);
  const env = envOf(api);
  for (const name of ["DATABASE_URL", "REDIS_URL", "API_KEYS", "QDRANT_API_KEY"]) {
    assert.ok(!env[name] || env[name].value === undefined, `${name} is set in plain env`);
  }
  assert.ok(!JSON.stringify(workloads).includes(MOCK_SECRET_PREFIX), "a generated secret appears in plain text");
  assert.deepEqual(
    [env.MODEL_SMALL.value, env.MODEL_DEFAULT.value, env.MODEL_LARGE.value, env.EMBED_MODEL.value],
    ["qwen2.5:0.5b", "qwen2.5:1.5b", "qwen2.5:1.5b", "nomic-embed-text"],
  );
  assert.deepEqual(api.resources, { requests: { cpu: "250m", memory: "256Mi" }, limits: { cpu: "1", memory: "512Mi" } });
  assert.equal(inputs(deployment).spec.replicas, undefined);
});

test("HPA at dev size (1 to 2) with the guide's targets and scaling behaviour", () => {
  const hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "agent-api");
  const spec = inputs(hpa).spec;
  assert.equal(spec.minReplicas, 1);
  assert.equal(spec.maxReplicas, 2);
  assert.deepEqual(
    spec.metrics.map((m: any) => [m.resource.name, m.resource.target.averageUtilization]),
    [
      ["cpu", 70],
      ["memory", 80],
    ],
  );
  assert.deepEqual(spec.behavior.scaleUp.policies, [{ type: "Percent", value: 50, periodSeconds: 60 }]);
  assert.equal(spec.behavior.scaleUp.stabilizationWindowSeconds, 60);
  assert.deepEqual(spec.behavior.scaleDown.policies, [{ type: "Percent", value: 10, periodSeconds: 60 }]);
  assert.equal(spec.behavior.scaleDown.stabilizationWindowSeconds, 300);
  // Dev scales nothing off-peak, so no CronJob owns minReplicas: Pulumi does, and a new size (an override) reaches it.
  assert.deepEqual(
    ofType(plan, "kubernetes:batch/v1:CronJob")
      .map((c) => inputs(c).metadata.name)
      .filter((n) => /offpeak/.test(n)),
    [],
  );
  assert.equal(hpa.options.ignoreChanges, undefined);
});

test("dev Ollama runs on the CPU of the general node: no GPU request, no toleration, no device plugin", () => {
  assert.equal(inputs(ollama).spec.replicas, 1);
  assert.equal(ollama.options.ignoreChanges, undefined, "no off-peak CronJob owns the replica count in dev");
  assert.deepEqual(pod(ollama).nodeSelector, { role: "general" });
  assert.equal(pod(ollama).tolerations, undefined);
  for (const c of containersOf(pod(ollama))) {
    assert.ok(!JSON.stringify(c.resources).includes("nvidia.com/gpu"), `${c.name} requests a GPU`);
  }
  // Issue 13: requests == limits (Guaranteed memory), sized in infra/capacity.ts.
  assert.deepEqual(container(ollama, "ollama").resources, { requests: { cpu: "1", memory: "5Gi" }, limits: { memory: "5Gi" } });
  const releases = ofType(plan, "kubernetes:helm.sh/v3:Release").map((r) => inputs(r).chart);
  assert.ok(!releases.includes("nvidia-device-plugin"));
  assert.ok(releases.includes("aws-load-balancer-controller") && releases.includes("metrics-server"));
});

test("dev Ollama pulls only the small CPU models into a 20 GiB emptyDir (no zonal volume) and keeps all three loaded", () => {
  const required = envOf(container(ollama, "pull-models")).REQUIRED_MODELS.value.split(" ").sort();
  assert.deepEqual(required, ["nomic-embed-text:latest", "qwen2.5:0.5b", "qwen2.5:1.5b"]);
  assert.equal(inputs(ollama).spec.volumeClaimTemplates, undefined);
  assert.deepEqual(pod(ollama).volumes.find((v: any) => v.name === "models").emptyDir, { sizeLimit: "20Gi" });
  const env = envOf(container(ollama, "ollama"));
  assert.deepEqual(
    [env.OLLAMA_NUM_PARALLEL.value, env.OLLAMA_MAX_LOADED_MODELS.value, env.OLLAMA_KEEP_ALIVE.value],
    ["2", "3", "-1"],
  );
});

test("dev Qdrant: one replica on the general node, not clustered, 10 GiB, API key from the Secret", () => {
  const spec = inputs(qdrant).spec;
  assert.equal(spec.replicas, 1);
  assert.deepEqual(pod(qdrant).nodeSelector, { role: "general" });
  assert.equal(pod(qdrant).affinity, undefined);
  const server = container(qdrant, "qdrant");
  assert.equal(server.command, undefined, "a single node needs no bootstrap");
  const env = envOf(server);
  assert.equal(env.QDRANT__CLUSTER__ENABLED.value, "false");
  assert.deepEqual(env.QDRANT__SERVICE__API_KEY.valueFrom, { secretKeyRef: { name: "qdrant-api-key", key: "api-key" } });
  assert.equal(spec.volumeClaimTemplates[0].spec.resources.requests.storage, "10Gi");
  assert.equal((server.readinessProbe as any).httpGet.path, "/readyz");
});

test("single-replica Ollama and Qdrant get no disruption budget (it would block node drains); the API keeps one", () => {
  const budgets = ofType(plan, "kubernetes:policy/v1:PodDisruptionBudget").map((r) => r.name);
  assert.deepEqual(budgets, ["agent-api"]);
});

test("dev has the same network policies as prod", () => {
  const names = ofType(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    .map((r) => r.name)
    .sort();
  assert.deepEqual(names, [
    "agent-api-ingress",
    "default-deny-ingress",
    "observability-stack-alertmanager-ingress",
    "observability-stack-grafana-ingress",
    "observability-stack-loki-gateway-ingress",
    "observability-stack-loki-ingress",
    "observability-stack-prometheus-ingress",
    "ollama-ingress",
    "qdrant-ingress",
  ]);
  const toOllama = inputs(one(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "ollama-ingress")).spec.ingress;
  assert.deepEqual(toOllama[0].from, [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "agent-api" } } }]);
});

test("every dev workload container has requests and limits and runs hardened from a pinned image", () => {
  assert.deepEqual(k8sWorkloads.map((r) => r.name).sort(), ["agent-api", "db-roles", "ollama", "qdrant"]);
  for (const r of k8sWorkloads) {
    assert.equal(pod(r).securityContext.runAsNonRoot, true, r.name);
    for (const c of containersOf(pod(r))) {
      const label = `${r.name}/${c.name}`;
      assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${label} lacks requests`);
      assert.ok(c.resources?.limits?.memory, `${label} lacks a memory limit`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, label);
      assert.deepEqual(c.securityContext?.capabilities, { drop: ["ALL"] }, label);
      const { tag, digest } = parseImage(c.image!);
      assert.ok(digest || (tag && tag !== "latest"), `${label} image ${c.image} is not pinned`);
    }
  }
});

test("dev volumes are deleted with their claims; the ALB controller runs one replica", () => {
  for (const sc of ofType(plan, "kubernetes:storage.k8s.io/v1:StorageClass")) assert.equal(inputs(sc).reclaimPolicy, "Delete");
  assert.equal(inputs(one(plan, "kubernetes:helm.sh/v3:Release", "workloads-addons-alb-controller")).values.replicaCount, 1);
});

test("dev has no public entry: no Ingress, apiUrl says how to port-forward, nothing from the VPC reaches the serving port", () => {
  assert.deepEqual(ofType(plan, "kubernetes:networking.k8s.io/v1:Ingress"), []);
  assert.deepEqual(ofType(plan, "aws:wafv2/webAcl:WebAcl"), [], "no ALB, so no web ACL to pay for");
  assert.equal(plan.outputs.apiUrl, "port-forward: kubectl -n agent port-forward svc/agent-api 8080:8080");
  // Only Prometheus, on the metrics port; no rule with an empty `from` (that would admit every source).
  const toApi = inputs(one(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "agent-api-ingress")).spec.ingress;
  assert.deepEqual(toApi, [
    {
      from: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
          podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
        },
      ],
      ports: [{ protocol: "TCP", port: 9464 }],
    },
  ]);
});

test("the chart pods on the general group that mount an emptyDir let the cluster autoscaler evict them", () => {
  // Each kept the dev general node it ran on from every scale-down (skip-nodes-with-local-storage, default true):
  // metrics-server's tmp (metrics-server chart 3.12.2 templates/deployment.yaml), Grafana's database and sidecar
  // folders (grafana chart 10.5.15 templates/_pod.tpl; dev has no monitoring group), Loki's scratch and rules folders
  // (loki chart 6.29.0 single-binary and gateway templates), the EBS CSI controller's socket-dir (aws-ebs-csi-driver
  // chart templates/controller.yaml), through the add-on's configuration.
  const values = (name: string) => inputs(one(plan, "kubernetes:helm.sh/v3:Release", name)).values;
  const evictable = { "cluster-autoscaler.kubernetes.io/safe-to-evict": "true" };
  assert.deepEqual(values("workloads-addons-metrics-server").podAnnotations, evictable);
  const grafana = values("observability-stack-kube-prometheus-stack").grafana;
  assert.equal(grafana.nodeSelector?.role, undefined, "Grafana runs where the general group's pods run");
  assert.deepEqual(grafana.podAnnotations, evictable);
  assert.deepEqual(values("observability-stack-loki").loki.podAnnotations, evictable);
  const ebs = inputs(ofType(plan, "aws:eks/addon:Addon").find((a) => inputs(a).addonName === "aws-ebs-csi-driver")!);
  assert.deepEqual(JSON.parse(ebs.configurationValues).controller.podAnnotations, evictable);
});
