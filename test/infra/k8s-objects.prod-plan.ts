// Every Kubernetes object of both stacks (Helm releases aside: their charts are checked on their own) against what the
// API server checks and Pulumi's mocks do not, and against what it accepts but leaves broken at run time. Sources,
// Kubernetes 1.35: apimachinery v0.35.0 pkg/util/validation/validation.go (IsDNS1123Label, IsDNS1123Subdomain,
// IsDNS1035Label, IsValidPortName) and pkg/api/validate/content/kube.go (IsLabelKey = IsQualifiedName, IsLabelValue);
// kubernetes pkg/apis/core/validation (Namespace and Service names, container, volume and Service port names, requests
// within limits), apps/validation (StatefulSet name, selector matching the template) and batch/validation
// (ValidateCronJobCreate: a CronJob's name at most 52 characters). A probe, a Service's targetPort or an Ingress
// backend naming a port nothing declares, and a selector that selects no pod, are accepted and fail only later.
import assert from "node:assert/strict";
import { test } from "node:test";
import { isDeepStrictEqual } from "node:util";
import type { Plan, PlannedResource } from "../../infra/plan/types.ts";
import { MONITORING_PODS } from "../../infra/workloads/network-policies.ts";
import { containersOf, podTemplateOf } from "../../policy/lib/k8s.ts";
import { inputs } from "../support/plan.ts";
import { stackPlan } from "../support/stack-plan.ts";

type Labels = Record<string, string>;
const LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const dnsLabel = (s: string) => s.length <= 63 && new RegExp(`^${LABEL}$`).test(s);
const dns1035Label = (s: string) => dnsLabel(s) && /^[a-z]/.test(s);
const subdomain = (s: string) => s.length <= 253 && new RegExp(`^${LABEL}(\\.${LABEL})*$`).test(s);
const portName = (s: string) => s.length <= 15 && /^[-a-z0-9]*[a-z][-a-z0-9]*$/.test(s) && !/^-|--|-$/.test(s);
const NAME_PART = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const labelValue = (s: string) => s.length <= 63 && NAME_PART.test(s);
const qualifiedName = (s: string) => {
  const [name, prefix] = s.split("/").reverse();
  return s.split("/").length <= 2 && (prefix === undefined || subdomain(prefix)) && name !== "" && labelValue(name);
};
/** metadata.name by kind; an object without one gets Pulumi's name, a hyphen and 8 random hex digits. */
const NAME_RULES: Record<string, (s: string) => boolean> = {
  Namespace: dnsLabel,
  Service: dns1035Label,
  StatefulSet: dnsLabel,
  CronJob: (s) => subdomain(s) && s.length <= 52,
};

const kindOf = (r: PlannedResource) => r.type.split(":").at(-1)!;
const objects = (plan: Plan) =>
  plan.resources.filter((r) => r.type.startsWith("kubernetes:") && !r.type.startsWith("kubernetes:helm.sh/"));
const matches = (selector: Labels, labels: Labels = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

interface PodTemplate {
  metadata: { labels?: Labels; annotations?: Labels };
  spec: Record<string, any>;
}
const templateOf = (r: PlannedResource) => podTemplateOf(r.type, inputs(r)) as PodTemplate | undefined;

/** "500m" -> 0.5, "2Gi" -> 2^31: enough of resource.Quantity for comparing a request with its limit. */
function quantity(q: string | number): number {
  const [, n, unit] = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(q))!;
  const si: Record<string, number> = { "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(n) * (si[unit] ?? 1024 ** (["Ki", "Mi", "Gi", "Ti"].indexOf(unit) + 1));
}

function metadataViolations(r: PlannedResource): string[] {
  const m = inputs(r).metadata ?? {};
  const name = m.name ?? `${r.name}-abcd1234`;
  const out = (NAME_RULES[kindOf(r)] ?? subdomain)(name) ? [] : [`metadata.name ${name}`];
  const template = templateOf(r);
  const selector = inputs(r).spec?.selector;
  const labelSets = [m.labels, template?.metadata.labels, kindOf(r) === "Service" ? selector : selector?.matchLabels];
  for (const labels of labelSets.filter(Boolean) as Labels[])
    for (const [k, v] of Object.entries(labels)) if (!qualifiedName(k) || !labelValue(v)) out.push(`label ${k}=${v}`);
  for (const annotations of [m.annotations, template?.metadata.annotations].filter(Boolean) as Labels[])
    for (const k of Object.keys(annotations)) if (!qualifiedName(k)) out.push(`annotation ${k}`);
  return out;
}

function podViolations(r: PlannedResource, t: PodTemplate): string[] {
  const out: string[] = [];
  const volumes = [
    ...(t.spec.volumes ?? []).map((v: any) => v.name),
    ...(inputs(r).spec.volumeClaimTemplates ?? []).map((c: any) => c.metadata.name),
  ];
  const containers: any[] = containersOf(t.spec);
  for (const [what, names] of [
    ["container", containers.map((c) => c.name)],
    ["volume", volumes],
  ] as const)
    for (const [i, n] of names.entries())
      if (!dnsLabel(n) || names.indexOf(n) !== i) out.push(`${what} name ${n} (a DNS-1123 label, once per pod)`);
  for (const c of containers) {
    const ports = (c.ports ?? []).map((p: any) => p.name).filter(Boolean);
    for (const p of ports) if (!portName(p)) out.push(`${c.name}: port name ${p} (IANA_SVC_NAME, at most 15)`);
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const port = (c[probe]?.httpGet ?? c[probe]?.tcpSocket ?? c[probe]?.grpc)?.port;
      if (typeof port === "string" && !ports.includes(port)) out.push(`${c.name}: ${probe} port ${port} undeclared`);
    }
    for (const m of c.volumeMounts ?? []) if (!volumes.includes(m.name)) out.push(`${c.name}: mount of no volume ${m.name}`);
    for (const [resource, limit] of Object.entries(c.resources?.limits ?? {}) as [string, string][]) {
      const request = c.resources?.requests?.[resource];
      if (request !== undefined && quantity(request) > quantity(limit)) out.push(`${c.name}: ${resource} request over limit`);
    }
  }
  const selector = inputs(r).spec.selector?.matchLabels;
  if (selector && !matches(selector, t.metadata.labels)) out.push("selector does not match the template's labels");
  return out.map((v) => `${r.type} ${r.name}: ${v}`);
}

/**
 * Services, Ingresses, PodDisruptionBudgets and NetworkPolicies that select no pod, or name a port no one declares, and
 * NetworkPolicy peers that select no pod.
 */
function referenceViolations(plan: Plan): string[] {
  const out: string[] = [];
  const namespace = (r: PlannedResource) => inputs(r).metadata.namespace;
  const podsIn = (ns: string, selector: Labels) =>
    objects(plan).flatMap((w) => {
      const t = templateOf(w);
      return t && namespace(w) === ns && matches(selector, t.metadata.labels) ? [t] : [];
    });
  const services = objects(plan).filter((r) => kindOf(r) === "Service");
  for (const s of services) {
    const { ports, selector } = inputs(s).spec;
    if (!selector) continue; // its endpoints are someone else's
    const pods = podsIn(namespace(s), selector);
    if (pods.length === 0) out.push(`Service ${s.name} selects no pod`);
    const declared = pods.flatMap((t) => (containersOf(t.spec) as any[]).flatMap((c) => (c.ports ?? []).map((p: any) => p.name)));
    for (const p of ports) {
      if ((ports.length > 1 || p.name) && !dnsLabel(p.name ?? "")) out.push(`Service ${s.name}: port name ${p.name}`);
      if (typeof p.targetPort === "string" && !declared.includes(p.targetPort))
        out.push(`Service ${s.name}: targetPort ${p.targetPort} undeclared by its pods`);
    }
  }
  for (const i of objects(plan).filter((r) => kindOf(r) === "Ingress"))
    for (const path of inputs(i).spec.rules.flatMap((rule: any) => rule.http.paths)) {
      const { name, port } = path.backend.service;
      const service = services.find((s) => inputs(s).metadata.name === name && namespace(s) === namespace(i));
      const ports: any[] = service ? inputs(service).spec.ports : [];
      if (!ports.some((p) => p.name === port.name || p.port === port.number))
        out.push(`Ingress ${i.name}: backend ${name}:${port.name ?? port.number} is no Service port`);
    }
  // The monitoring charts' pods are not in the plan (Helm renders them at up): a selector of theirs is checked where
  // it is made (network-policies.ts MONITORING_PODS), against the labels their charts give them at the pinned versions.
  // Compared whole, whatever their keys' order (the plan's inputs come back with their keys sorted).
  const chartPod = (selector: Labels) => Object.values(MONITORING_PODS).some((labels) => isDeepStrictEqual(labels, selector));
  for (const r of objects(plan).filter((r) => ["PodDisruptionBudget", "NetworkPolicy"].includes(kindOf(r)))) {
    const selector = (inputs(r).spec.selector ?? inputs(r).spec.podSelector).matchLabels;
    if (!selector || podsIn(namespace(r), selector).length > 0 || chartPod(selector)) continue;
    out.push(`${kindOf(r)} ${r.name} selects no pod`);
  }
  // A NetworkPolicy's peer that selects no pod admits nothing: its client is cut off, silently.
  for (const r of objects(plan).filter((r) => kindOf(r) === "NetworkPolicy"))
    for (const peer of inputs(r).spec.ingress.flatMap((rule: any) => rule.from ?? [])) {
      const selector = peer.podSelector?.matchLabels;
      if (!selector) continue;
      const ns = peer.namespaceSelector ? peer.namespaceSelector.matchLabels["kubernetes.io/metadata.name"] : namespace(r);
      if (podsIn(ns, selector).length > 0 || chartPod(selector)) continue;
      out.push(`NetworkPolicy ${r.name} admits ${JSON.stringify(selector)} in ${ns}, no pod`);
    }
  return out;
}

for (const stack of ["dev", "prod"] as const) {
  const plan = await stackPlan(stack);

  test(`${stack}: names, labels and annotations of every Kubernetes object are what the API server accepts`, () => {
    assert.deepEqual(
      objects(plan).flatMap((r) => metadataViolations(r).map((v) => `${r.type} ${r.name}: ${v}`)),
      [],
    );
  });

  test(`${stack}: pod templates name their containers, volumes and ports validly, and mount, probe and select what they declare`, () => {
    assert.deepEqual(
      objects(plan).flatMap((r) => {
        const t = templateOf(r);
        return t ? podViolations(r, t) : [];
      }),
      [],
    );
  });

  test(`${stack}: Services, the Ingress, PodDisruptionBudgets and NetworkPolicies (and their peers) select pods and ports that exist`, () => {
    assert.deepEqual(referenceViolations(plan), []);
  });
}
