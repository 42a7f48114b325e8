// Every pin lives in infra/versions.ts and names a release that exists upstream (issue 12: two charts were
// pinned to versions never released, and the autoscaler chart's RBAC was older than its image).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { CHARTS, CLUSTER_AUTOSCALER, IMAGES, kubectlImage, parseImageRef } from "../../infra/versions.ts";
import { containersOf, podSpecOf } from "../../policy/lib/k8s.ts";
import { inputs, ofType } from "../support/plan.ts";

const upstream = JSON.parse(readFileSync(new URL("../fixtures/upstream-chart-releases.json", import.meta.url), "utf8")) as {
  charts: Record<string, { versions: { version: string; appVersion?: string }[] }>;
};
const releasesOf = (pin: { repo: string; chart: string }) =>
  upstream.charts[`${pin.repo.replace(/\/$/, "")} ${pin.chart}`]?.versions ?? [];
const plan = await stackPlan("prod");

test("every chart pin is a released version of its chart repository", () => {
  for (const [key, pin] of Object.entries(CHARTS)) {
    assert.ok(
      releasesOf(pin).some((r) => r.version === pin.version),
      `${key}: ${pin.chart} ${pin.version} was never released`,
    );
  }
});

test("the cluster autoscaler's chart defaults to the pinned image, so its RBAC is the image's", () => {
  const release = releasesOf(CHARTS.clusterAutoscaler).find((r) => r.version === CHARTS.clusterAutoscaler.version);
  assert.equal(`v${release?.appVersion}`, parseImageRef(CLUSTER_AUTOSCALER.image).tag);
  const values = inputs(ofType(plan, "kubernetes:helm.sh/v3:Release").find((r) => r.name.endsWith("cluster-autoscaler"))!).values;
  assert.equal(`${values.image.repository}:${values.image.tag}`, CLUSTER_AUTOSCALER.image);
});

test("every Helm release of the plan installs a pinned chart from infra/versions.ts", () => {
  const pins = Object.values(CHARTS).map((c) => `${c.chart} ${c.version} ${c.repo}`);
  const releases = ofType(plan, "kubernetes:helm.sh/v3:Release");
  assert.ok(releases.length >= 9);
  for (const r of releases) {
    const i = inputs(r);
    assert.ok(pins.includes(`${i.chart} ${i.version} ${i.repositoryOpts.repo}`), `${r.name}: ${i.chart} ${i.version}`);
  }
});

test("every container image of the plan is a pin from infra/versions.ts or the stack's own ECR image", () => {
  const allowed = new Set<string>([...Object.values(IMAGES), kubectlImage("1.35")]);
  let seen = 0;
  for (const r of plan.resources) {
    const spec = podSpecOf(r.type, r.inputs);
    for (const c of spec ? containersOf(spec) : []) {
      seen++;
      const image = String(c.image);
      if (/\.dkr\.ecr\./.test(image)) continue;
      assert.ok(allowed.has(image), `${r.type} ${r.name}: ${image}`);
    }
  }
  assert.ok(seen >= 5, `only ${seen} containers found`);
});

test("image references parse into registry, repository and tag", () => {
  assert.deepEqual(parseImageRef("ollama/ollama:0.12.10"), {
    registry: "docker.io",
    repository: "ollama/ollama",
    tag: "0.12.10",
  });
  assert.deepEqual(parseImageRef("busybox"), { registry: "docker.io", repository: "library/busybox", tag: "latest" });
  assert.deepEqual(parseImageRef("registry.k8s.io/kubectl:v1.35.0@sha256:ab"), {
    registry: "registry.k8s.io",
    repository: "kubectl",
    tag: "v1.35.0",
    digest: "sha256:ab",
  });
  assert.deepEqual(parseImageRef("localhost:5000/a/b:1"), { registry: "localhost:5000", repository: "a/b", tag: "1" });
});
