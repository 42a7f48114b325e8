// Kubernetes workload policies, each called with a compliant and a violating workload of every kind.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  helmChartVersionPinned,
  k8sImagePinned,
  k8sNoPrivileged,
  k8sResourcesSet,
  k8sRunAsNonRoot,
} from "../../policy/policies/kubernetes.ts";
import { parseImage } from "../../policy/lib/k8s.ts";
import { check, checkOnPreview, resource, unknownStringValue } from "./support.ts";

const goodContainer = {
  name: "app",
  image: "ghcr.io/acme/app:1.4.2",
  resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } },
  securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false },
};

const podSpec = (containers: unknown[], extra: Record<string, unknown> = {}) => ({ containers, ...extra });

/** The same pod spec wrapped as each workload kind. */
const KINDS: Record<string, (pod: unknown) => Record<string, unknown>> = {
  "kubernetes:apps/v1:Deployment": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:apps/v1:StatefulSet": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:apps/v1:DaemonSet": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:batch/v1:Job": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:batch/v1:CronJob": (pod) => ({
    spec: { schedule: "0 3 * * *", jobTemplate: { spec: { template: { spec: pod } } } },
  }),
};

const workloads = (pod: unknown) => Object.entries(KINDS).map(([type, wrap]) => resource(type, "w", wrap(pod)));

test("k8s-resources-set: every workload kind needs cpu/memory requests and a memory limit", () => {
  assert.deepEqual(check(k8sResourcesSet, workloads(podSpec([goodContainer]))), []);
  const noLimits = { ...goodContainer, resources: { requests: { cpu: "1" } } };
  const violations = check(k8sResourcesSet, workloads(podSpec([noLimits])));
  assert.equal(violations.length, Object.keys(KINDS).length);
  for (const v of violations) assert.equal(v.message, 'container "app" has no requests.memory, limits.memory.');
  assert.equal(
    check(k8sResourcesSet, workloads(podSpec([goodContainer])), { config: { requireCpuLimit: true } }).length,
    Object.keys(KINDS).length,
  );
});

test("k8s-resources-set: init containers count", () => {
  const pod = podSpec([goodContainer], { initContainers: [{ name: "migrate", image: "app:1" }] });
  const [v] = check(k8sResourcesSet, [
    resource("kubernetes:apps/v1:Deployment", "api", KINDS["kubernetes:apps/v1:Deployment"](pod)),
  ]);
  assert.match(v.message, /container "migrate" has no requests\.cpu, requests\.memory, limits\.memory/);
});

test("k8s-run-as-non-root: pod or container level non-root passes; root or unspecified fails", () => {
  const bare = { ...goodContainer, securityContext: {} };
  assert.deepEqual(check(k8sRunAsNonRoot, workloads(podSpec([bare], { securityContext: { runAsNonRoot: true } }))), []);
  assert.deepEqual(check(k8sRunAsNonRoot, workloads(podSpec([bare], { securityContext: { runAsUser: 1000 } }))), []);
  assert.equal(check(k8sRunAsNonRoot, workloads(podSpec([bare]))).length, Object.keys(KINDS).length);
  const root = { ...goodContainer, securityContext: { runAsNonRoot: true, runAsUser: 0 } };
  assert.match(check(k8sRunAsNonRoot, workloads(podSpec([root])))[0].message, /runs as root \(runAsUser: 0\)/);
  // A reviewed exemption, by Pulumi resource name.
  assert.deepEqual(check(k8sRunAsNonRoot, workloads(podSpec([bare])), { config: { exemptWorkloads: ["w"] } }), []);
});

test("k8s-no-privileged: privileged, privilege escalation and host capabilities fail", () => {
  assert.deepEqual(check(k8sNoPrivileged, workloads(podSpec([goodContainer]))), []);
  const privileged = { ...goodContainer, securityContext: { privileged: true } };
  assert.match(check(k8sNoPrivileged, workloads(podSpec([privileged])))[0].message, /is privileged/);
  const escalating = { ...goodContainer, securityContext: { allowPrivilegeEscalation: true } };
  assert.match(check(k8sNoPrivileged, workloads(podSpec([escalating])))[0].message, /privilege escalation/);
  const sysAdmin = { ...goodContainer, securityContext: { capabilities: { add: ["NET_BIND_SERVICE", "CAP_SYS_ADMIN"] } } };
  assert.match(check(k8sNoPrivileged, workloads(podSpec([sysAdmin])))[0].message, /adds capabilities CAP_SYS_ADMIN/);
});

test("k8s-image-pinned: tags and digests pin; no tag, latest and malformed digests do not", () => {
  const withImage = (image: string) => workloads(podSpec([{ ...goodContainer, image }]));
  const digest = `sha256:${"a".repeat(64)}`;
  assert.deepEqual(check(k8sImagePinned, withImage("ollama/ollama:0.12.10")), []);
  assert.deepEqual(check(k8sImagePinned, withImage(`123456789012.dkr.ecr.us-east-1.amazonaws.com/api@${digest}`)), []);
  assert.deepEqual(check(k8sImagePinned, withImage(`registry:5000/team/app:1.2@${digest}`)), []);
  assert.match(check(k8sImagePinned, withImage("qdrant/qdrant"))[0].message, /no tag, so it means :latest/);
  assert.match(check(k8sImagePinned, withImage("registry:5000/app"))[0].message, /no tag/, "a registry port is not a tag");
  assert.match(check(k8sImagePinned, withImage("qdrant/qdrant:latest"))[0].message, /moving tag "latest"/);
  assert.match(check(k8sImagePinned, withImage("app@sha256:123"))[0].message, /malformed digest/);
  assert.equal(
    check(k8sImagePinned, withImage("ollama/ollama:0.12.10"), { config: { requireDigest: true } }).length,
    Object.keys(KINDS).length,
  );
});

test("k8s-image-pinned: on a first preview, an image not known yet (the app's build) is no verdict; the others are judged", () => {
  // Read plainly, the unknown image threw and the pack skipped the workload, its ":latest" sidecar unseen.
  const pod = podSpec([
    { ...goodContainer, image: unknownStringValue },
    { ...goodContainer, name: "sidecar", image: "busybox:latest" },
  ]);
  const reports = checkOnPreview(
    k8sImagePinned,
    [resource("kubernetes:apps/v1:Deployment", "api", KINDS["kubernetes:apps/v1:Deployment"](pod))],
    {},
  );
  assert.deepEqual(reports, ['container "sidecar" image busybox:latest uses the moving tag "latest": pin a version or digest.']);
});

test("parseImage splits registry ports, tags and digests", () => {
  assert.deepEqual(parseImage("registry:5000/team/app:1.2@sha256:abc"), {
    repository: "registry:5000/team/app",
    tag: "1.2",
    digest: "sha256:abc",
  });
  assert.deepEqual(parseImage("busybox"), { repository: "busybox", tag: undefined, digest: undefined });
});

test("helm-chart-version-pinned: exact versions pass, ranges and missing versions are advised against", () => {
  const release = (version: unknown) =>
    resource("kubernetes:helm.sh/v3:Release", "metrics-server", { chart: "metrics-server", version });
  assert.deepEqual(check(helmChartVersionPinned, [release("3.12.2")]), []);
  const [missing] = check(helmChartVersionPinned, [release(undefined)]);
  assert.equal(missing.level, "advisory");
  const [range] = check(helmChartVersionPinned, [release("^3.12")]);
  assert.match(range.message, /is a range/);
  assert.equal(range.level, "advisory");
});
