// The prod stack's workloads (tier medium) under mocks: the app image, the API with its HPA and ALB,
// GPU Ollama, clustered Qdrant, network policies and the hardening every container must carry.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { type AddressInfo, connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { stackPlan } from "../support/stack-plan.ts";
import { TIERS } from "../../infra/tiers.ts";
import { MOCK_SECRET_PREFIX } from "../../infra/plan/mocks.ts";
import { SECRET_PLACEHOLDER, type PlannedResource } from "../../infra/plan/types.ts";
import { containersOf, parseImage, type Container } from "../../policy/lib/k8s.ts";
import { envSchema, loadConfig } from "../../app/src/config.ts";
import { MIN_CONTEXT_LENGTH } from "../../infra/tier-schema.ts";
import { appEnv, UNUSED_URLS } from "../support/app.ts";
import { inputs, ofType, one } from "../support/plan.ts";
import { workloadView } from "../support/workloads.ts";

const plan = await stackPlan("prod");
const { workloads, k8sWorkloads, pod, container, envOf, deployment, api, ollama, qdrant } = workloadView(plan);
const policy = (name: string) => inputs(one(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", name)).spec;

test("the API image is app/Dockerfile built for linux/amd64 and linux/arm64 and pushed to the stack's ECR repository", () => {
  const image = inputs(one(plan, "docker-build:index:Image"));
  assert.deepEqual([image.context, image.dockerfile], [{ location: "app" }, { location: "app/Dockerfile" }]);
  // Graviton API nodes (c7g) and x86 groups run the same manifest list.
  assert.deepEqual(image.platforms, ["linux/amd64", "linux/arm64"]);
  assert.equal(image.push, true);
  // ECR tags are immutable, so the tag must change with the source: a content hash, never "latest".
  assert.equal(image.tags.length, 1);
  assert.match(image.tags[0], /^\d{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com\/agent-stack-prod-api:src-[0-9a-f]{12}$/);
  assert.equal(image.registries, SECRET_PLACEHOLDER, "registry credentials must be a secret");
});

test("the Deployment runs the pushed image by digest and the stack exports that digest", () => {
  assert.match(api.image!, /^\d{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com\/agent-stack-prod-api@sha256:[0-9a-f]{64}$/);
  assert.equal(plan.outputs.imageDigest, api.image!.split("@")[1]);
});

test("API probes: startup and liveness on /health, readiness on /health/serving, all on the 8080 port; metrics on 9464", () => {
  assert.deepEqual(api.ports, [
    { name: "http", containerPort: 8080, protocol: "TCP" },
    { name: "metrics", containerPort: 9464, protocol: "TCP" },
  ]);
  assert.equal(envOf(api).PORT.value, "8080");
  assert.equal(envOf(api).METRICS_PORT.value, "9464");
  assert.equal(envOf(api).DOCS_ENABLED.value, "false", "docs only when agent-stack:docsEnabled turns them on");
  assert.equal(envOf(api).CORS_ORIGINS, undefined, "no CORS header unless agent-stack:corsOrigins lists origins");
  assert.equal((api.startupProbe as any).httpGet.path, "/health");
  assert.equal((api.livenessProbe as any).httpGet.path, "/health");
  assert.equal((api.readinessProbe as any).httpGet.path, "/health/serving");
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) assert.equal((api[probe] as any).httpGet.port, "http");
});

test("the startupProbe gives start-up longer than the app waits for Postgres, so a pod that cannot start exits itself", () => {
  const probe = api.startupProbe as { periodSeconds: number; failureThreshold: number };
  const waitMs = Number(envOf(api).DB_STARTUP_WAIT_MS?.value ?? loadConfig(appEnv(UNUSED_URLS)).DB_STARTUP_WAIT_MS);
  assert.ok(probe.periodSeconds * probe.failureThreshold * 1000 > waitMs + 10_000, `${JSON.stringify(probe)} vs ${waitMs} ms`);
});

test("a pod told to stop answers every request it admitted: the grace period outlasts preStop, then the longest request", () => {
  const timeouts = ["REQUEST_TIMEOUT_MS", "SHUTDOWN_TIMEOUT_MS"].filter((name) => envOf(api)[name]);
  const config = loadConfig({ ...appEnv(UNUSED_URLS), ...Object.fromEntries(timeouts.map((n) => [n, envOf(api)[n].value])) });
  const preStopMs = (api.lifecycle as any).preStop.sleep.seconds * 1000;
  const graceMs = pod(deployment).terminationGracePeriodSeconds * 1000;
  // The ALB may still send a request until the end of preStop; it can then run REQUEST_TIMEOUT_MS.
  assert.ok(config.SHUTDOWN_TIMEOUT_MS >= config.REQUEST_TIMEOUT_MS + 2_000, `drain ${config.SHUTDOWN_TIMEOUT_MS} ms`);
  assert.ok(graceMs >= preStopMs + config.SHUTDOWN_TIMEOUT_MS + 3_000, `grace ${graceMs} ms`);
});

test("every variable the API container is given is one the app reads: its schema drops an unknown name silently", () => {
  const read = new Set(Object.keys(envSchema.shape));
  // NODE_ENV is for the libraries (the app reads none of it).
  const unread = Object.keys(envOf(api)).filter((name) => !read.has(name) && name !== "NODE_ENV");
  assert.deepEqual(unread, []);
});

test("the API fits prompts and answers into Ollama's context window, and accepts the smallest window a tier may set", () => {
  const window = envOf(container(ollama, "ollama")).OLLAMA_CONTEXT_LENGTH.value;
  assert.equal(envOf(api).MODEL_CONTEXT_TOKENS?.value, window);
  for (const contextTokens of [window, String(MIN_CONTEXT_LENGTH)]) {
    assert.equal(
      loadConfig({ ...appEnv(UNUSED_URLS), MODEL_CONTEXT_TOKENS: contextTokens }).MODEL_CONTEXT_TOKENS,
      Number(contextTokens),
    );
  }
});

test("API pods at the HPA's minimum together ask Ollama for no more answers per model than its slots hold, until they count", () => {
  const minPods = inputs(one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "agent-api")).spec.minReplicas;
  const slots = inputs(ollama).spec.replicas * Number(envOf(container(ollama, "ollama")).OLLAMA_NUM_PARALLEL.value);
  const perPod = Number(envOf(api).OLLAMA_MAX_ANSWERS?.value);
  assert.ok(perPod * minPods <= slots && (perPod + 1) * minPods > slots, `${perPod} per pod x ${minPods} pods, ${slots} slots`);
  assert.equal(loadConfig({ ...appEnv(UNUSED_URLS), OLLAMA_MAX_ANSWERS: String(perPod) }).OLLAMA_MAX_ANSWERS, perPod);
});

test("API pods count the ready Ollama and API pods through headless Services to share out the answer slots", () => {
  const env = envOf(api);
  const services = ofType(plan, "kubernetes:core/v1:Service").map(inputs);
  const servingPods = (dns: string, podLabels: Record<string, string>) => {
    const [name, namespace, svc, ...domain] = dns.split(".");
    assert.deepEqual([svc, domain.join(".")], ["svc", "cluster.local"], dns);
    const service = services.find((s) => s.metadata.name === name && s.metadata.namespace === namespace);
    assert.ok(service, `no Service ${name} in ${namespace}`);
    assert.equal(service.spec.clusterIP, "None", `${name}: headless, so its name answers each pod's address`);
    assert.notEqual(service.spec.publishNotReadyAddresses, true, `${name}: ready pods only`);
    for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(podLabels[k], v, `${name} selects ${k}=${v}`);
    return service;
  };
  servingPods(env.OLLAMA_PODS_DNS!.value!, inputs(ollama).spec.template.metadata.labels);
  // Each model call goes to a pod's address at OLLAMA_URL's port (ollama-pods.ts): the Service's port is the pod's.
  const ollamaPort = Number(new URL(env.OLLAMA_URL!.value!).port);
  const ollamaContainerPorts = container(ollama, "ollama").ports as Array<{ containerPort: number }>;
  assert.deepEqual(
    ollamaContainerPorts.map((p) => p.containerPort),
    [ollamaPort],
  );
  const apiPods = servingPods(env.API_PODS_DNS!.value!, inputs(deployment).spec.template.metadata.labels);
  const monitor = inputs(one(plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "observability-stack-agent-api")).spec
    .selector;
  const scraped = Object.entries(monitor.matchLabels as Record<string, string>).every(
    ([k, v]) => apiPods.metadata.labels?.[k] === v,
  );
  assert.equal(scraped, false, "the ServiceMonitor would scrape every API pod twice");
  assert.equal(env.OLLAMA_NUM_PARALLEL!.value, envOf(container(ollama, "ollama")).OLLAMA_NUM_PARALLEL.value);
  const names = ["OLLAMA_PODS_DNS", "API_PODS_DNS", "OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_ANSWERS"];
  const config = loadConfig({ ...appEnv(UNUSED_URLS), ...Object.fromEntries(names.map((n) => [n, env[n]!.value])) });
  assert.equal(config.API_PODS_DNS, env.API_PODS_DNS!.value);
  // Its place among the API pods' addresses, which the share's left-over slots go by (answer-share.ts).
  assert.deepEqual(env.POD_IP!.valueFrom, { fieldRef: { fieldPath: "status.podIP" } });
});

test("the API runs non-root on a read-only filesystem with no capabilities and RuntimeDefault seccomp", () => {
  const podSecurity = pod(deployment).securityContext;
  assert.equal(podSecurity.runAsNonRoot, true);
  assert.ok(podSecurity.runAsUser > 0);
  assert.deepEqual(podSecurity.seccompProfile, { type: "RuntimeDefault" });
  assert.equal(api.securityContext!.readOnlyRootFilesystem, true);
  assert.equal(api.securityContext!.allowPrivilegeEscalation, false);
  assert.deepEqual(api.securityContext!.capabilities, { drop: ["ALL"] });
  assert.equal(pod(deployment).automountServiceAccountToken, false);
});

test("API credentials come from Secrets only; nothing generated appears in plain text", () => {
  assert.deepEqual(api.envFrom, [{ secretRef: { name: "agent-api-env" } }]);
  const secret = inputs(one(plan, "kubernetes:core/v1:Secret", "agent-api-env"));
  assert.equal(secret.metadata.namespace, "agent");
  assert.equal(secret.stringData, SECRET_PLACEHOLDER);
  const env = envOf(api);
  for (const name of ["DATABASE_URL", "DATABASE_MIGRATE_URL", "REDIS_URL", "API_KEYS", "QDRANT_API_KEY"]) {
    assert.ok(!env[name] || env[name].value === undefined, `${name} is set in plain env`);
  }
  assert.deepEqual(env.QDRANT_API_KEY.valueFrom, { secretKeyRef: { name: "qdrant-api-key", key: "api-key" } });
  assert.ok(!JSON.stringify(workloads).includes(MOCK_SECRET_PREFIX), "a generated secret appears in plain text");
  // The only ConfigMaps: the public RDS CA bundle and the DB-roles SQL (no credential in either).
  const configMaps = ofType(plan, "kubernetes:core/v1:ConfigMap").filter((r) => r.component === "workloads");
  assert.deepEqual([...new Set(configMaps.map((r) => inputs(r).metadata.name))].sort(), ["db-roles-sql", "rds-ca-bundle"]);
});

test("the API reaches Qdrant and Ollama through their Services and gets the tier's GPU models", () => {
  const env = envOf(api);
  assert.equal(env.QDRANT_URL.value, "http://qdrant.agent.svc.cluster.local:6333");
  assert.equal(env.OLLAMA_URL.value, "http://ollama.agent.svc.cluster.local:11434");
  assert.deepEqual(
    [env.MODEL_SMALL.value, env.MODEL_DEFAULT.value, env.MODEL_LARGE.value, env.EMBED_MODEL.value],
    ["llama3.2:3b", "llama3.1:8b", "qwen2.5:14b", "nomic-embed-text"], // 32b does not fit the A10G beside the others (issue 13)
  );
});

test("a new API pod waits, in its own image and at most 90 s, until every Qdrant and Ollama pod takes its connects", () => {
  // Their NetworkPolicies admit it only once each node's policy agent knows its address (wait-for-paths.cjs).
  const [init] = pod(deployment).initContainers;
  assert.equal(init.image, api.image);
  const [node, flag, script, seconds, ...targets] = init.command;
  assert.deepEqual([node, flag, seconds], ["node", "-e", "90"]);
  assert.match(script, /aws-network-policy-agent#487/);
  assert.deepEqual(targets, ["qdrant-headless.agent.svc.cluster.local:6333", "ollama-headless.agent.svc.cluster.local:11434"]);
  assert.deepEqual(init.securityContext, api.securityContext);
});

test("each API pod's Postgres pool is the tier's api.dbPoolMax, the number infra/capacity.ts sums", () => {
  assert.equal(envOf(api).DB_POOL_MAX.value, "10");
});

test("the API keeps turns for the tier's api.turnRetentionDays", () => {
  assert.equal(envOf(api).TURN_RETENTION_DAYS.value, "90");
});

test("the HPA owns the API's replica count: the Deployment sets none", () => {
  assert.equal(inputs(deployment).spec.replicas, undefined);
  assert.equal(inputs(deployment).spec.strategy.rollingUpdate.maxUnavailable, 0);
});

test("API placement: general nodes, spread over zones, sized per tier, with a disruption budget", () => {
  assert.deepEqual(pod(deployment).nodeSelector, { role: "general" });
  const zones = pod(deployment).topologySpreadConstraints.find((c: any) => c.topologyKey === "topology.kubernetes.io/zone");
  assert.deepEqual(zones.labelSelector, { matchLabels: { "app.kubernetes.io/name": "agent-api" } });
  assert.deepEqual(api.resources, { requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "2", memory: "2Gi" } });
  assert.equal(inputs(one(plan, "kubernetes:policy/v1:PodDisruptionBudget", "agent-api")).spec.maxUnavailable, 1);
});

test("Ollama's replicas (two in medium) have a disruption budget: a node drain takes one at a time", () => {
  assert.ok(TIERS.medium.ollama.replicas > 1);
  assert.equal(inputs(one(plan, "kubernetes:policy/v1:PodDisruptionBudget", "ollama")).spec.maxUnavailable, 1);
});

test("the API Service is agent-api:8080 named http plus 9464 named metrics, which the Ingress never routes", () => {
  const service = inputs(one(plan, "kubernetes:core/v1:Service", "agent-api"));
  assert.equal(service.metadata.namespace, "agent");
  assert.deepEqual(service.spec.selector, { "app.kubernetes.io/name": "agent-api" });
  assert.deepEqual(service.spec.ports, [
    { name: "http", port: 8080, targetPort: "http", protocol: "TCP" },
    { name: "metrics", port: 9464, targetPort: "metrics", protocol: "TCP" },
  ]);
  const ingress = inputs(one(plan, "kubernetes:networking.k8s.io/v1:Ingress", "agent-api"));
  const routed = ingress.spec.rules.flatMap((r: any) => r.http.paths.map((p: any) => p.backend.service.port));
  assert.deepEqual(routed, [{ name: "http" }]);
});

test("HPA: guide 000 Auto-Scaling Rules, 3 to 10 replicas, CPU 70 %, memory 80 %", () => {
  const hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "agent-api");
  const spec = inputs(hpa).spec;
  assert.deepEqual(spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name: "agent-api" });
  assert.equal(spec.minReplicas, 3);
  assert.equal(spec.maxReplicas, 10);
  const target = (name: string) => spec.metrics.find((m: any) => m.resource.name === name).resource.target;
  assert.deepEqual(target("cpu"), { type: "Utilization", averageUtilization: 70 });
  assert.deepEqual(target("memory"), { type: "Utilization", averageUtilization: 80 });
  assert.deepEqual(spec.behavior.scaleUp, {
    stabilizationWindowSeconds: 60,
    policies: [{ type: "Percent", value: 50, periodSeconds: 60 }],
  });
  assert.deepEqual(spec.behavior.scaleDown, {
    stabilizationWindowSeconds: 300,
    policies: [{ type: "Percent", value: 10, periodSeconds: 60 }],
  });
  assert.deepEqual(hpa.options.ignoreChanges, ["spec.minReplicas"], "the off-peak job owns minReplicas at night");
});

test("the HPA has CPU and memory metrics to read: metrics-server is installed", () => {
  const release = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "workloads-addons-metrics-server"));
  assert.match(release.version, /^\d+\.\d+\.\d+$/);
});

test("Ollama: two replicas on the GPU nodes, one GPU each, tolerating the GPU taint", () => {
  const spec = inputs(ollama).spec;
  assert.equal(spec.replicas, 2);
  assert.deepEqual(ollama.options.ignoreChanges, ["spec.replicas"], "the off-peak job owns replicas at night");
  assert.deepEqual(pod(ollama).nodeSelector, { role: "gpu" });
  assert.deepEqual(pod(ollama).tolerations, [{ key: "nvidia.com/gpu", operator: "Equal", value: "true", effect: "NoSchedule" }]);
  const server = container(ollama, "ollama");
  assert.equal(server.resources!.requests!["nvidia.com/gpu"], "1");
  assert.equal(server.resources!.limits!["nvidia.com/gpu"], "1");
  assert.deepEqual(server.resources!.requests, { cpu: "4", memory: "24Gi", "nvidia.com/gpu": "1" });
  assert.equal(server.resources!.limits!.memory, "24Gi", "requests == limits (issue 13)");
});

test("Ollama keeps every model loaded (guide: 4 parallel) in a 100 GiB emptyDir on the node's NVMe, no zonal volume", () => {
  const env = envOf(container(ollama, "ollama"));
  assert.equal(env.OLLAMA_NUM_PARALLEL.value, "4");
  assert.equal(env.OLLAMA_MAX_LOADED_MODELS.value, "4");
  assert.equal(env.OLLAMA_KEEP_ALIVE.value, "-1", "never unloaded");
  assert.equal(inputs(ollama).spec.volumeClaimTemplates, undefined);
  const models = pod(ollama).volumes.find((v: any) => v.name === "models");
  assert.deepEqual(models.emptyDir, { sizeLimit: "100Gi" });
  const mounts = (c: Container) => (c.volumeMounts as any[]).find((m) => m.name === models.name).mountPath;
  assert.equal(mounts(container(ollama, "ollama")), env.HOME.value, "models live under $HOME/.ollama on the volume");
});

test("Ollama pulls every tier model before starting and is ready only when all are listed", () => {
  const pull = container(ollama, "pull-models");
  const required = envOf(pull).REQUIRED_MODELS.value.split(" ").sort();
  assert.deepEqual(required, ["llama3.1:8b", "llama3.2:3b", "nomic-embed-text:latest", "qwen2.5:14b"]);
  assert.match((pull.command as string[]).join(" "), /ollama pull "\$model"/);
  const server = container(ollama, "ollama");
  assert.equal(envOf(server).REQUIRED_MODELS.value, envOf(pull).REQUIRED_MODELS.value);
  const readiness = (server.readinessProbe as any).exec.command.join(" ");
  assert.match(readiness, /ollama list/);
  assert.match(readiness, /\$REQUIRED_MODELS/);
});

test("Ollama's readiness probe passes only when `ollama list` names every required model exactly, tag included", () => {
  const server = container(ollama, "ollama");
  const probe = (server.readinessProbe as any).exec.command as string[];
  const required = String(envOf(server).REQUIRED_MODELS.value).split(" ");
  const dir = mkdtempSync(join(tmpdir(), "fake-ollama-"));
  // A stand-in whose `list` prints $LIST under the CLI's header line (NAME ID SIZE MODIFIED).
  writeFileSync(join(dir, "ollama"), '#!/bin/sh\necho "NAME ID SIZE MODIFIED"\nprintf "%s\\n" $LIST\n', { mode: 0o755 });
  const ready = (listed: string[]) =>
    spawnSync(probe[0]!, probe.slice(1), {
      env: { REQUIRED_MODELS: required.join(" "), LIST: listed.join(" "), PATH: `${dir}:/usr/bin:/bin` },
      timeout: 5_000,
    }).status;
  try {
    assert.equal(ready(required), 0, "every model listed");
    assert.equal(ready(required.slice(1)), 1, "one missing");
    // Listed under another tag, or a longer name that starts with the required one: not the model the app asks for.
    const [first, ...rest] = required;
    assert.equal(ready([`${first!.split(":")[0]}:other-tag`, ...rest]), 1, "another tag");
    assert.equal(ready([`${first}-instruct-q4_K_M`, ...rest]), 1, "a longer name");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the pull-models container fails at once when its local Ollama server exits before it answers", () => {
  const pull = container(ollama, "pull-models");
  const env = Object.fromEntries(Object.entries(envOf(pull)).map(([name, v]) => [name, String(v.value)]));
  const dir = mkdtempSync(join(tmpdir(), "fake-ollama-"));
  // A stand-in whose `serve` dies at once (a bad volume, a driver error) and whose `list` never gets an answer.
  writeFileSync(join(dir, "ollama"), '#!/bin/sh\n[ "$1" = serve ] && exit 1\n[ "$1" = list ] && exit 1\nexit 0\n', {
    mode: 0o755,
  });
  try {
    // The wait for the server spun until the StatefulSet's 60-minute timeout.
    const started = performance.now();
    const result = spawnSync((pull.command as string[])[0]!, (pull.command as string[]).slice(1), {
      env: { ...env, PATH: `${dir}:/usr/bin:/bin` },
      timeout: 10_000,
    });
    assert.equal(result.signal, null, "still waiting after 10 s");
    assert.notEqual(result.status, 0);
    assert.ok(performance.now() - started < 5_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("before the Ollama pod can turn ready, its postStart hook loads every model into memory, and fails if one cannot load", () => {
  const server = container(ollama, "ollama");
  const script = (server.lifecycle as any).postStart.exec.command as string[];
  const env = Object.fromEntries(Object.entries(envOf(server)).map(([name, v]) => [name, String(v.value)]));
  const dir = mkdtempSync(join(tmpdir(), "fake-ollama-"));
  const log = join(dir, "calls");
  // A stand-in for the CLI: records each call (argument count, arguments); `run` of $FAIL_MODEL fails.
  writeFileSync(
    join(dir, "ollama"),
    '#!/bin/sh\necho "$# $*" >> "$LOG"\n[ "$1" = run ] && [ "$2" = "$FAIL_MODEL" ] && exit 1\nexit 0\n',
    { mode: 0o755 },
  );
  const hook = (failModel: string) =>
    spawnSync(script[0]!, script.slice(1), { env: { ...env, PATH: `${dir}:/usr/bin:/bin`, LOG: log, FAIL_MODEL: failModel } });
  try {
    assert.equal(hook("").status, 0);
    const runs = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .filter((line) => line.includes(" run "));
    assert.deepEqual(runs.sort(), [
      "3 run llama3.1:8b ", // an empty prompt: load only
      "3 run llama3.2:3b ",
      "3 run nomic-embed-text:latest warm-up", // an embedding model needs text
      "3 run qwen2.5:14b ",
    ]);
    assert.notEqual(hook("qwen2.5:14b").status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a stopping Ollama pod waits for the API's next pod count, then for the calls it took, within its grace period", async () => {
  const server = container(ollama, "ollama");
  const drain = (server.lifecycle as any).preStop.exec.command as string[];
  const graceSeconds = pod(ollama).terminationGracePeriodSeconds;
  const timers = ["REQUEST_TIMEOUT_MS", "ANSWER_SHARE_REFRESH_MS"].filter((name) => envOf(api)[name]);
  const config = loadConfig({ ...appEnv(UNUSED_URLS), ...Object.fromEntries(timers.map((n) => [n, envOf(api)[n].value])) });
  const dir = mkdtempSync(join(tmpdir(), "ollama-drain-"));
  // Stand-ins: `sleep` records its seconds and takes $NAP (a connection is opened or closed meanwhile); `date +%s` is a
  // clock one second on at each read.
  writeFileSync(join(dir, "sleep"), '#!/bin/sh\necho "$1" >> "$DIR/slept"\nexec /bin/sleep "$NAP"\n', { mode: 0o755 });
  writeFileSync(
    join(dir, "date"),
    '#!/bin/sh\nn=$(cat "$DIR/clock" 2>/dev/null || echo 1000)\necho $((n + 1)) > "$DIR/clock"\necho "$n"\n',
    {
      mode: 0o755,
    },
  );
  // Go listens on both families for 0.0.0.0, its connections in /proc/net/tcp6; without IPv6, in /proc/net/tcp. Each
  // on a port whose hex has a letter: /proc/net/tcp writes it in capitals.
  const listen = async (host: string): Promise<{ server: Server; port: number }> => {
    const server = createServer(() => {});
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const { port } = server.address() as AddressInfo;
    if (/[a-f]/.test(port.toString(16))) return { server, port };
    server.close();
    return listen(host);
  };
  const dualStack = await listen("::");
  const listeners = [dualStack, await listen("0.0.0.0")];
  const run = async (port: number, connected: (done: Promise<number>) => Promise<void>, nap = "0.02") => {
    rmSync(join(dir, "slept"), { force: true });
    rmSync(join(dir, "clock"), { force: true });
    const env = { ...envOf(server), OLLAMA_HOST: { value: `0.0.0.0:${port}` } };
    const child = spawn(drain[0]!, drain.slice(1), {
      env: {
        ...Object.fromEntries(Object.entries(env).map(([n, v]) => [n, String(v.value)])),
        DIR: dir,
        NAP: nap,
        PATH: `${dir}:/usr/bin:/bin`,
      },
    });
    const done = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? -1)));
    await connected(done);
    assert.equal(await done, 0);
    return readFileSync(join(dir, "slept"), "utf8").trim().split("\n").map(Number);
  };
  const connection = async (port: number) => {
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    return socket;
  };
  const { port } = dualStack;
  try {
    // First the API replicas' next pod count, each as late as ANSWER_SHARE_REFRESH_MS, through a 5 s DNS TTL.
    const [leave, ...idle] = await run(port, async () => {});
    assert.ok(leave! * 1000 >= config.ANSWER_SHARE_REFRESH_MS + 5_000, `waits ${leave} s`);
    assert.deepEqual(idle, [], "no connection: nothing more to wait for");
    // A call in flight: waited for until its connection ends. Opened before the hook starts, as a call in flight is:
    // opened after, a loaded machine ran the hook's first look before the connection was there (it ended at once).
    for (const listener of listeners) {
      const socket = await connection(listener.port);
      const [, ...whileOpen] = await run(listener.port, async (done) => {
        const early = await Promise.race([done.then(() => "ended"), sleep(200).then(() => "waiting")]);
        socket.destroy();
        assert.equal(early, "waiting", `on ${JSON.stringify(listener.server.address())}`);
      });
      assert.ok(whileOpen.length > 0 && whileOpen.length < 60, `${whileOpen.length} waits`);
    }
    // A connection that never ends: waited for as long as the API's longest request, then Ollama stops in the grace.
    const held = await connection(port);
    const [, ...capped] = await run(port, async () => {}, "0");
    held.destroy();
    const waited = capped.reduce((a, b) => a + b, 0);
    assert.ok(waited >= config.REQUEST_TIMEOUT_MS / 1000 - 1, `waited ${waited} s`);
    assert.ok(graceSeconds >= leave! + waited + 5, `grace ${graceSeconds} s after ${leave} + ${waited} s`);
  } finally {
    for (const listener of listeners) listener.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the NVIDIA device plugin runs on the GPU nodes, pinned and tolerating their taint", () => {
  const release = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "workloads-addons-nvidia-device-plugin"));
  assert.equal(release.chart, "nvidia-device-plugin");
  assert.equal(release.repositoryOpts.repo, "https://nvidia.github.io/k8s-device-plugin");
  assert.match(release.version, /^\d+\.\d+\.\d+$/);
  assert.ok(release.values.tolerations.some((t: any) => t.key === "nvidia.com/gpu" && t.effect === "NoSchedule"));
  const term = release.values.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0];
  assert.deepEqual(term.matchExpressions, [{ key: "role", operator: "In", values: ["gpu"] }]);
});

test("Qdrant: three clustered replicas on the vector nodes, one per node, 500 GiB each", () => {
  const spec = inputs(qdrant).spec;
  assert.equal(spec.replicas, 3);
  assert.equal(spec.serviceName, "qdrant-headless");
  assert.deepEqual(pod(qdrant).nodeSelector, { role: "vector" });
  const antiAffinity = pod(qdrant).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
  assert.equal(antiAffinity[0].topologyKey, "kubernetes.io/hostname");
  assert.equal(spec.volumeClaimTemplates[0].spec.resources.requests.storage, "500Gi");
  const server = container(qdrant, "qdrant");
  const env = envOf(server);
  assert.equal(env.QDRANT__CLUSTER__ENABLED.value, "true");
  assert.equal(env.QDRANT__CLUSTER__P2P__PORT.value, "6335");
  const start = (server.command as string[]).join(" ");
  assert.match(start, /--bootstrap "http:\/\/qdrant-0\.qdrant-headless:6335"/);
  assert.match(start, /--uri "\$uri"/);
  assert.deepEqual(env.QDRANT__SERVICE__API_KEY.valueFrom, { secretKeyRef: { name: "qdrant-api-key", key: "api-key" } });
  assert.equal((server.readinessProbe as any).httpGet.path, "/readyz");
  assert.equal((server.livenessProbe as any).httpGet.path, "/livez");
  // It answers only once every collection is loaded: start-up has 30 minutes for the volume.
  const startup = server.startupProbe as { periodSeconds: number; failureThreshold: number };
  assert.ok(startup.periodSeconds * startup.failureThreshold >= 30 * 60, JSON.stringify(startup));
  assert.equal(inputs(one(plan, "kubernetes:policy/v1:PodDisruptionBudget", "qdrant")).spec.maxUnavailable, 1);
  // An unready peer serves nothing: draining its node is not held up by it (Kubernetes 1.31 GA).
  for (const budget of ofType(plan, "kubernetes:policy/v1:PodDisruptionBudget"))
    assert.equal(inputs(budget).spec.unhealthyPodEvictionPolicy, "AlwaysAllow", budget.name);
});

test("Qdrant Services: qdrant (http 6333, grpc 6334) and a headless one publishing peers before they are ready", () => {
  const service = inputs(one(plan, "kubernetes:core/v1:Service", "qdrant")).spec;
  assert.deepEqual(
    service.ports.map((p: any) => [p.name, p.port]),
    [
      ["http", 6333],
      ["grpc", 6334],
    ],
  );
  const headless = inputs(one(plan, "kubernetes:core/v1:Service", "qdrant-headless")).spec;
  assert.equal(headless.clusterIP, "None");
  assert.equal(headless.publishNotReadyAddresses, true);
  assert.ok(headless.ports.some((p: any) => p.name === "p2p" && p.port === 6335));
  assert.deepEqual(headless.selector, { "app.kubernetes.io/name": "qdrant" });
});

test("network policies: deny by default; only the API reaches Ollama and Qdrant; the ALB and Prometheus reach the API", () => {
  assert.deepEqual(policy("default-deny-ingress"), { podSelector: {}, policyTypes: ["Ingress"], ingress: [] });
  const fromApi = { podSelector: { matchLabels: { "app.kubernetes.io/name": "agent-api" } } };
  const ports = (rule: any) => rule.ports.map((p: any) => p.port);

  const toOllama = policy("ollama-ingress").ingress;
  assert.deepEqual(toOllama, [{ from: [fromApi], ports: [{ protocol: "TCP", port: 11434 }] }]);

  const toQdrant = policy("qdrant-ingress").ingress;
  const clients = toQdrant.find((r: any) => ports(r).includes(6333) && r.from.some((f: any) => f.podSelector));
  assert.ok(clients.from.some((f: any) => JSON.stringify(f) === JSON.stringify(fromApi)));
  assert.ok(
    clients.from.every((f: any) => !f.ipBlock && !f.namespaceSelector),
    "Qdrant must not be open beyond its clients",
  );
  assert.deepEqual(ports(clients), [6333], "REST only: nothing speaks Qdrant's gRPC");
  // Peers: p2p, and REST, from which a snapshot shard transfer downloads.
  const peers = toQdrant.find((r: any) => ports(r).includes(6335));
  assert.deepEqual(peers.from, [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "qdrant" } } }]);
  assert.deepEqual(ports(peers).sort(), [6333, 6335]);
  // Prometheus alone of the monitoring namespace: one peer with both selectors (two peers would admit either).
  const prometheus = {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
    podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
  };
  const scrape = toQdrant.find((r: any) => r.from.some((f: any) => f.namespaceSelector));
  assert.deepEqual(scrape.from, [prometheus]);
  assert.deepEqual(ports(scrape), [6333]);

  // The ALB's subnets (public, one per zone) reach the serving port; monitoring reaches only the metrics port.
  const toApi = policy("agent-api-ingress").ingress;
  assert.deepEqual(toApi, [
    {
      from: ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"].map((cidr) => ({ ipBlock: { cidr } })),
      ports: [{ protocol: "TCP", port: 8080 }],
    },
    { from: [prometheus], ports: [{ protocol: "TCP", port: 9464 }] },
  ]);
});

test("the monitoring namespace's APIs (Prometheus, Alertmanager, Grafana, Loki and its gateway) admit only their clients, on their ports", () => {
  const policies = ofType(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    .map(inputs)
    .filter((p) => p.metadata.namespace === "monitoring");
  const name = (labels: Record<string, string>) =>
    [labels["app.kubernetes.io/name"], labels["app.kubernetes.io/component"]].filter(Boolean).join("/");
  const admitted = Object.fromEntries(
    policies.map((p) => {
      assert.deepEqual(p.spec.policyTypes, ["Ingress"], p.metadata.name);
      for (const r of p.spec.ingress)
        for (const f of r.from) assert.deepEqual(Object.keys(f), ["podSelector"], `${p.metadata.name}: this namespace only`);
      const rules = p.spec.ingress.map((r: any) => [
        r.from.map((f: any) => name(f.podSelector.matchLabels)).join(),
        r.ports.map((p: any) => `${p.protocol}/${p.port}`).join(),
      ]);
      return [`${p.metadata.name} ${name(p.spec.podSelector.matchLabels)}`, rules];
    }),
  );
  assert.deepEqual(admitted, {
    "prometheus-ingress prometheus": [
      ["prometheus", "TCP/9090,TCP/8080"],
      ["grafana", "TCP/9090"],
    ],
    "alertmanager-ingress alertmanager": [
      ["prometheus", "TCP/9093,TCP/8080"],
      ["grafana", "TCP/9093"],
      ["alertmanager", "TCP/9094,UDP/9094"],
    ],
    "grafana-ingress grafana": [["prometheus", "TCP/3000"]],
    "loki-gateway-ingress loki/gateway": [["grafana,alloy", "TCP/8080"]],
    "loki-ingress loki/single-binary": [
      ["loki/gateway", "TCP/3100"],
      ["loki/single-binary", "TCP/3100,TCP/9095,TCP/7946"],
    ],
  });
  // Only this mode's pods carry the component the Loki policy selects: in another, it would select none and leave them open.
  const loki = ofType(plan, "kubernetes:helm.sh/v3:Release").find((r) => inputs(r).chart === "loki")!;
  assert.equal(inputs(loki).values.deploymentMode, "SingleBinary");
});

test("every workload container has CPU and memory requests and a memory limit", () => {
  assert.deepEqual(k8sWorkloads.map((r) => r.name).sort(), ["agent-api", "db-roles", "ollama", "qdrant"]);
  for (const r of k8sWorkloads) {
    for (const c of containersOf(pod(r))) {
      const label = `${r.name}/${c.name}`;
      assert.ok(c.resources?.requests?.cpu, `${label} has no CPU request`);
      assert.ok(c.resources?.requests?.memory, `${label} has no memory request`);
      assert.ok(c.resources?.limits?.memory, `${label} has no memory limit`);
    }
  }
});

test("every workload container runs non-root, unprivileged, read-only, from a pinned image", () => {
  for (const r of k8sWorkloads) {
    assert.equal(pod(r).securityContext.runAsNonRoot, true, r.name);
    for (const c of containersOf(pod(r))) {
      const label = `${r.name}/${c.name}`;
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, label);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, label);
      assert.deepEqual(c.securityContext?.capabilities, { drop: ["ALL"] }, label);
      const { tag, digest } = parseImage(c.image!);
      assert.ok(digest || (tag && tag !== "latest"), `${label} image ${c.image} is not pinned`);
    }
  }
});

test("ALB Ingress: internet-facing, IP targets, /health checks, 300 s idle timeout; prod's file names a domain: HTTPS only", () => {
  const ingress = inputs(one(plan, "kubernetes:networking.k8s.io/v1:Ingress", "agent-api"));
  const a = ingress.metadata.annotations;
  assert.equal(ingress.spec.ingressClassName, "alb");
  assert.equal(a["alb.ingress.kubernetes.io/scheme"], "internet-facing");
  assert.equal(a["alb.ingress.kubernetes.io/target-type"], "ip");
  assert.equal(a["alb.ingress.kubernetes.io/healthcheck-path"], "/health");
  assert.match(a["alb.ingress.kubernetes.io/load-balancer-attributes"], /(^|,)idle_timeout\.timeout_seconds=300(,|$)/);
  // AWS: the target's keep-alive must outlast the ALB's idle timeout, or a request sent as the target closes is a 502.
  const albIdleMs =
    1000 * Number(/idle_timeout\.timeout_seconds=(\d+)/.exec(a["alb.ingress.kubernetes.io/load-balancer-attributes"])![1]);
  assert.ok(
    Number(envOf(api).HTTP_KEEP_ALIVE_TIMEOUT_MS.value) > albIdleMs,
    "the API keeps idle connections longer than the ALB",
  );
  // A draining target's requests are dropped at the deregistration delay, which starts as the pod's preStop does:
  // it must cover the pod's whole stop, preStop and the app's drain, at whose end a stream still running gets its
  // `error` event (a stream is not bounded by REQUEST_TIMEOUT_MS).
  const delay = /deregistration_delay\.timeout_seconds=(\d+)/.exec(a["alb.ingress.kubernetes.io/target-group-attributes"]);
  const stopMs = 1000 * (api.lifecycle as any).preStop.sleep.seconds + Number(envOf(api).SHUTDOWN_TIMEOUT_MS.value);
  assert.ok(Number(delay?.[1]) * 1000 >= stopMs, `deregistration delay ${delay?.[1]} s against the pod's stop, ${stopMs} ms`);
  assert.ok(stopMs >= Number(envOf(api).REQUEST_TIMEOUT_MS.value));
  // The guides' least_conn: answers run from milliseconds to a minute, and round robin (the default) ignores that.
  assert.match(
    a["alb.ingress.kubernetes.io/target-group-attributes"],
    /(^|,)load_balancing\.algorithm\.type=least_outstanding_requests(,|$)/,
  );
  assert.deepEqual(JSON.parse(a["alb.ingress.kubernetes.io/listen-ports"]), [{ HTTP: 80 }, { HTTPS: 443 }]);
  assert.equal(a["alb.ingress.kubernetes.io/ssl-redirect"], "443");
  assert.ok(a["alb.ingress.kubernetes.io/certificate-arn"]);
  assert.deepEqual(ingress.spec.rules[0].http.paths[0].backend, { service: { name: "agent-api", port: { name: "http" } } });
  assert.equal(ofType(plan, "aws:acm/certificateValidation:CertificateValidation").length, 1);
  assert.equal(plan.outputs.apiUrl, "https://agents.example.com");
});

test("an AWS WAF web ACL fronts the ALB: 600 requests a minute per client IP (guide 000's nginx 10r/s), then WAF's own JSON 429 with Retry-After", () => {
  const acl = one(plan, "aws:wafv2/webAcl:WebAcl");
  const ingress = one(plan, "kubernetes:networking.k8s.io/v1:Ingress", "agent-api");
  const arn = inputs(ingress).metadata.annotations["alb.ingress.kubernetes.io/wafv2-acl-arn"];
  assert.match(arn, new RegExp(`^arn:aws:mock:us-east-1:\\d{12}:WebAcl/${acl.name}$`), "the stack's web ACL, by its ARN");
  assert.ok(ingress.propertyDependencies?.metadata?.includes(acl.urn), "so the Ingress (and its ALB) goes first on destroy");
  const { scope, defaultAction, rules, customResponseBodies, visibilityConfig } = inputs(acl);
  // The Edge dashboard's web ACL picker lists this name: one per stack.
  assert.equal(visibilityConfig.metricName, "agent-api-prod");
  assert.equal(scope, "REGIONAL", "an ALB takes a regional web ACL");
  assert.deepEqual(defaultAction, { allow: {} });
  assert.equal(rules.length, 1);
  assert.deepEqual(rules[0].statement, {
    rateBasedStatement: { aggregateKeyType: "IP", limit: 600, evaluationWindowSec: 60 },
  });
  const block = rules[0].action.block.customResponse;
  assert.equal(block.responseCode, 429);
  // The window and WAF's usual 30 s to notice a rate fall. No CORS header: prod lists no corsOrigins.
  assert.deepEqual(block.responseHeaders, [{ name: "Retry-After", value: "90" }]);
  const body = customResponseBodies.find((b: { key: string }) => b.key === block.customResponseBodyKey);
  assert.equal(body.contentType, "APPLICATION_JSON");
  assert.match(JSON.parse(body.content).error, /at most 600 per minute/);
  assert.equal(JSON.parse(body.content).code, "rate_limited", "the code the API's own rate limit answers with");
});

test("the ALB controller is a pinned chart whose service account assumes an IRSA role with the controller policy", () => {
  const release = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "workloads-addons-alb-controller"));
  assert.equal(release.chart, "aws-load-balancer-controller");
  assert.equal(release.repositoryOpts.repo, "https://aws.github.io/eks-charts");
  assert.match(release.version, /^\d+\.\d+\.\d+$/);
  assert.equal(release.namespace, "kube-system");
  assert.equal(release.values.clusterName, "agent-stack-prod");
  // Its two replicas keep one through a drain (chart 1.14.0 pdb.yaml renders only when given a budget).
  assert.deepEqual([release.values.replicaCount, release.values.podDisruptionBudget], [2, { maxUnavailable: 1 }]);
  const role = one(plan, "aws:iam/role:Role", "workloads-addons-alb-controller");
  assert.equal(
    release.values.serviceAccount.annotations["eks.amazonaws.com/role-arn"],
    `arn:aws:mock:us-east-1:123456789012:Role/${role.name}`,
  );
  const trust = JSON.parse(inputs(role).assumeRolePolicy).Statement[0].Condition.StringEquals;
  assert.ok(Object.values(trust).includes("system:serviceaccount:kube-system:aws-load-balancer-controller"));
  const policyDoc = JSON.parse(
    inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", "workloads-addons-alb-controller-inline")).policy,
  );
  const actions = policyDoc.Statement.flatMap((s: any) => s.Action);
  for (const action of [
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:RegisterTargets",
    "ec2:CreateSecurityGroup",
  ]) {
    assert.ok(actions.includes(action), `controller policy lacks ${action}`);
  }
});

test("storage: encrypted gp3 classes bound where the pod lands, keeping volumes in prod; one is the default", () => {
  // The snapshot job's scratch class deletes its volumes on purpose (day-two.prod-plan.ts).
  const classes = ofType(plan, "kubernetes:storage.k8s.io/v1:StorageClass")
    .map(inputs)
    .filter((sc) => sc.metadata.name !== "gp3-scratch");
  const isDefault = (sc: any) => sc.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"] === "true";
  assert.deepEqual(
    classes.filter(isDefault).map((sc) => sc.metadata.name),
    ["gp3-encrypted"],
  );
  for (const sc of classes) {
    assert.equal(sc.provisioner, "ebs.csi.aws.com");
    assert.equal(sc.parameters.type, "gp3");
    assert.equal(sc.parameters.encrypted, "true");
    assert.equal(sc.volumeBindingMode, "WaitForFirstConsumer");
    assert.equal(sc.reclaimPolicy, "Retain");
  }
});

test("Qdrant's volumes carry the tag the AWS Backup plan selects; the re-downloadable models have no volume", () => {
  const selection = inputs(one(plan, "aws:backup/selection:Selection")).selectionTags[0];
  const classOf = (r: PlannedResource) => inputs(r).spec.volumeClaimTemplates[0].spec.storageClassName;
  const tags = (className: string) =>
    inputs(one(plan, "kubernetes:storage.k8s.io/v1:StorageClass", className)).parameters.tagSpecification_1;
  assert.equal(tags(classOf(qdrant)), `${selection.key}=${selection.value}`);
  assert.equal(inputs(ollama).spec.volumeClaimTemplates, undefined);
});

test("namespaces agent, monitoring and monitoring-host, all through one server-side-apply provider from the cluster's kubeconfig", () => {
  const names = ofType(plan, "kubernetes:core/v1:Namespace")
    .map((n) => inputs(n).metadata.name)
    .sort();
  assert.deepEqual(names, ["agent", "monitoring", "monitoring-host"]);
  const provider = inputs(one(plan, "pulumi:providers:kubernetes"));
  assert.equal(provider.enableServerSideApply, "true");
  assert.equal(provider.kubeconfig, SECRET_PLACEHOLDER);
  for (const r of workloads.filter((w) => w.type.startsWith("kubernetes:") && !w.type.startsWith("kubernetes:helm"))) {
    if (r.type.endsWith(":Namespace") || r.type.endsWith(":StorageClass")) continue;
    if (inputs(r).metadata.name === "rds-ca-bundle" && inputs(r).metadata.namespace === "monitoring") continue; // the exporter's copy
    assert.equal(inputs(r).metadata.namespace, "agent", `${r.type} ${r.name}`);
  }
});

test("the cluster autoscaler grows node groups within their max, and may resize only this cluster's ASGs", () => {
  const release = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "workloads-addons-cluster-autoscaler"));
  assert.equal(release.values.autoDiscovery.clusterName, "agent-stack-prod");
  assert.equal(release.values.image.tag, "v1.35.0");
  const [resize] = JSON.parse(
    inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", "workloads-addons-cluster-autoscaler-inline")).policy,
  ).Statement;
  assert.deepEqual(resize.Action.sort(), ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]);
  assert.deepEqual(resize.Condition.StringEquals, { "aws:ResourceTag/k8s.io/cluster-autoscaler/agent-stack-prod": "owned" });
});

test("a Deployment on the general group whose pods mount an emptyDir lets the cluster autoscaler evict them", () => {
  // skip-nodes-with-local-storage (default true) kept every general node holding an API pod (its /tmp emptyDir).
  const onGeneral = ofType(plan, "kubernetes:apps/v1:Deployment").filter(
    (d) => inputs(d).spec.template.spec.nodeSelector?.role === "general",
  );
  const names = onGeneral.map((d) => inputs(d).metadata.name);
  assert.ok(names.includes("agent-api"), names.join(" "));
  for (const d of onGeneral) {
    const { metadata, spec } = inputs(d).spec.template;
    if (!spec.volumes?.some((v: { emptyDir?: unknown }) => v.emptyDir)) continue;
    assert.equal(metadata.annotations?.["cluster-autoscaler.kubernetes.io/safe-to-evict"], "true", d.name);
  }
});

test("every object that names a StorageClass of the stack waits for it: its claims are not made before the class", () => {
  const classes = new Map(
    ofType(plan, "kubernetes:storage.k8s.io/v1:StorageClass").map((c) => [inputs(c).metadata.name as string, c.urn]),
  );
  // Each place an object's inputs (a Helm release's values too) name a StorageClass, by Kubernetes' or a chart's key.
  const named = (value: unknown, found: string[] = []): string[] => {
    if (Array.isArray(value)) for (const v of value) named(v, found);
    else if (value && typeof value === "object")
      for (const [key, v] of Object.entries(value)) {
        if ((key === "storageClassName" || key === "storageClass") && typeof v === "string") found.push(v);
        else named(v, found);
      }
    return found;
  };
  const uses = plan.resources
    .filter((r) => r.type.startsWith("kubernetes:"))
    .flatMap((r) => named(r.inputs).map((name) => ({ r, name })));
  assert.ok(uses.length >= 5, uses.map((u) => `${u.r.name} ${u.name}`).join(", "));
  const waitsFor = (r: PlannedResource, urn: string) =>
    (r.dependsOn ?? []).includes(urn) || Object.values(r.propertyDependencies ?? {}).some((urns) => urns.includes(urn));
  assert.deepEqual(
    uses
      .filter(({ r, name }) => !classes.has(name) || !waitsFor(r, classes.get(name)!))
      .map(({ r, name }) => `${r.name}: ${name}`),
    [],
  );
  // Nor used before its driver runs: every Kubernetes object's provider waits for the EBS CSI add-on.
  const driver = one(plan, "aws:eks/addon:Addon", "cluster-aws-ebs-csi-driver").urn;
  const providers = ofType(plan, "pulumi:providers:kubernetes");
  assert.ok(providers.length > 0 && providers.every((p) => p.dependsOn?.includes(driver)), "the provider waits for the driver");
});
