// The names the operators' documents hand to commands (README.md, docs/operations-runbook.md, docs/restore-runbook.md,
// scripts/wait-api-ready.sh, scripts/watch-after-deploy.sh): every stack output `pulumi stack output` reads, every
// namespace, object, pod label, container and port-forwarded port `kubectl` names, every `<project>-<stack>-...` AWS
// name and every URN a `grep -o` picks for `pulumi state unprotect` are ones the prod plan makes (Helm's generated names
// by the pinned charts' rules).
// The mocks accept any name, so a command naming what the program does not create, or spells otherwise, fails only when
// an operator runs it in an incident.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { PROJECT } from "../../infra/config.ts";
import { KPS_RELEASE } from "../../infra/workloads/monitoring.ts";
import { inputs, ofType } from "../support/plan.ts";
import { stackPlan, WITH_CI_AND_FLOW_LOGS } from "../support/stack-plan.ts";

const DOCS = ["README.md", "docs/operations-runbook.md", "docs/restore-runbook.md"];
/** Scripts an operator or the deploy job runs: every line is a command. */
const SCRIPTS = ["scripts/wait-api-ready.sh", "scripts/watch-after-deploy.sh"];
const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), "utf8");
const plan = await stackPlan("prod", WITH_CI_AND_FLOW_LOGS);

/** Each document's commands: fenced blocks line by line (a trailing `\` joins the next), and inline code spans. */
function commands(doc: string): string[] {
  const found: string[] = [];
  // Indented too: a list item's block.
  const prose = doc.replace(/^[ \t]*```[^\n]*\n([\s\S]*?)^[ \t]*```/gm, (_, block: string) => {
    found.push(...block.replace(/\\\n/g, " ").split("\n"));
    return "";
  });
  for (const m of prose.matchAll(/`([^`]+)`/g)) found.push(m[1].replace(/\s+/g, " "));
  return found;
}
const docCommands = [
  ...DOCS.flatMap((file) => commands(read(file)).map((command) => ({ file, command }))),
  ...SCRIPTS.flatMap((file) =>
    read(file)
      .split("\n")
      .map((command) => ({ file, command })),
  ),
];
/** A placeholder or a shell expansion: not a name to look up. */
const isPlaceholder = (name: string) => /[<>$"'{}]/.test(name);

test("every stack output the documents read is one the program exports", () => {
  const asked = new Set<string>();
  for (const { file, command } of docCommands)
    for (const m of command.matchAll(/pulumi stack output ([^|;&)]*)/g)) {
      // The first word that is neither a flag nor --stack's value.
      const words = m[1].split(/\s+/).filter(Boolean);
      const name = words.find((w, i) => !w.startsWith("-") && words[i - 1] !== "--stack");
      if (name) asked.add(`${file}: ${name}`);
    }
  // In prose too: "stack output `apiUrl`", "`capacity` stack output", "output `ciDeployRoleArn`".
  for (const file of DOCS) {
    const doc = read(file).replace(/\s+/g, " ");
    for (const m of doc.matchAll(/output `(\w+)`|`(\w+)` stack output/g)) asked.add(`${file}: ${m[1] ?? m[2]}`);
  }
  assert.ok(asked.size >= 10, `only ${[...asked].join(", ")}`);
  const missing = [...asked].filter((r) => !(r.split(": ")[1] in plan.outputs));
  assert.deepEqual(missing, [], `not a stack output (${Object.keys(plan.outputs).join(", ")})`);
});

/** kubectl's short kind names as the documents use them, to the Kubernetes kinds. */
const KINDS: Record<string, string> = {
  svc: "Service",
  service: "Service",
  deploy: "Deployment",
  deployment: "Deployment",
  statefulset: "StatefulSet",
  sts: "StatefulSet",
  cronjob: "CronJob",
  secret: "Secret",
  sa: "ServiceAccount",
  serviceaccount: "ServiceAccount",
  pvc: "PersistentVolumeClaim",
};

/**
 * What exists in each namespace: `<ns> <Kind> <name>`, `<ns> label <k>=<v>` (a pod's), `<ns> container <name>`,
 * `<ns> port <Kind> <name> <port>`.
 */
function clusterNames(): { names: Set<string>; patterns: RegExp[]; namespaces: Set<string> } {
  const names = new Set<string>();
  const patterns: RegExp[] = [];
  const namespaces = new Set(ofType(plan, "kubernetes:core/v1:Namespace").map((n) => inputs(n).metadata.name as string));
  const pod = (ns: string, template: any) => {
    for (const [k, v] of Object.entries(template?.metadata?.labels ?? {})) names.add(`${ns} label ${k}=${v}`);
    for (const c of [...(template?.spec?.containers ?? []), ...(template?.spec?.initContainers ?? [])])
      names.add(`${ns} container ${c.name}`);
  };
  for (const r of plan.resources) {
    const m = /^kubernetes:[\w.]+\/v\d\w*:(\w+)$/.exec(r.type);
    const meta = inputs(r).metadata;
    if (!m || typeof meta?.name !== "string" || typeof meta?.namespace !== "string") continue;
    const [kind, ns, spec] = [m[1], meta.namespace, inputs(r).spec];
    names.add(`${ns} ${kind} ${meta.name}`);
    if (kind === "Service") for (const p of spec.ports ?? []) names.add(`${ns} port Service ${meta.name} ${p.port}`);
    for (const c of kind === "Deployment" ? spec.template.spec.containers : [])
      for (const p of c.ports ?? []) names.add(`${ns} port Deployment ${meta.name} ${p.containerPort}`);
    if (kind === "Deployment" || kind === "StatefulSet") pod(ns, spec.template);
    if (kind === "CronJob") pod(ns, spec.jobTemplate.spec.template);
    // A StatefulSet's claims: <template>-<set>-<ordinal> (Kubernetes StatefulSet "Stable Storage").
    for (const claim of kind === "StatefulSet" ? (spec.volumeClaimTemplates ?? []) : [])
      patterns.push(new RegExp(`^${ns} PersistentVolumeClaim ${claim.metadata.name}-${meta.name}-\\d+$`));
  }
  for (const r of ofType(plan, "kubernetes:helm.sh/v3:Release")) {
    const { name: release, chart, namespace: ns, values } = inputs(r);
    // `<release>` when it contains the chart's name, else `<release>-<chart>` (the charts' _helpers.tpl fullname).
    const fullname = (chartName: string, max = 63) =>
      (release.includes(chartName) ? release : `${release}-${chartName}`).slice(0, max).replace(/-$/, "");
    // prometheus-postgres-exporter 7.3.0 and prometheus-redis-exporter 6.20.0 selectorLabels: the chart's name.
    names.add(`${ns} label app.kubernetes.io/name=${values?.nameOverride ?? chart}`);
    // alloy 0.12.5 templates/controllers/deployment.yaml: a Deployment named alloy.fullname for controller.type deployment.
    if (chart === "alloy" && values.controller?.type === "deployment") names.add(`${ns} Deployment ${fullname(chart)}`);
    if (release !== KPS_RELEASE) continue;
    // kube-prometheus-stack 81.4.3: fullname cut to 26, templates/alertmanager/service.yaml `<fullname>-alertmanager` on
    // values alertmanager.service.port 9093; its grafana 10.5.15 subchart's grafana.fullname `<release>-grafana` on
    // values service.port 80; the service accounts named in the values.
    const alertmanager = `${fullname("kube-prometheus-stack", 26)}-alertmanager`;
    names.add(`${ns} Service ${alertmanager}`).add(`${ns} port Service ${alertmanager} 9093`);
    // templates/prometheus/service.yaml `<fullname>-prometheus` on values prometheus.service.port 9090.
    const prometheus = `${fullname("kube-prometheus-stack", 26)}-prometheus`;
    names.add(`${ns} Service ${prometheus}`).add(`${ns} port Service ${prometheus} 9090`);
    names.add(`${ns} Service ${fullname("grafana")}`).add(`${ns} port Service ${fullname("grafana")} 80`);
    for (const sa of [values.alertmanager?.serviceAccount?.name, values.grafana?.serviceAccount?.name])
      if (sa) names.add(`${ns} ServiceAccount ${sa}`);
  }
  return { names, patterns, namespaces };
}

/** What one kubectl command names: `<ns> <Kind> <name>`, `<ns> label ...`, `<ns> container ...`. */
function kubectlNames(command: string): { namespace?: string; refs: string[] } {
  const words = command.replace(/[()]/g, " ").split(/\s+/).filter(Boolean);
  const at = words.indexOf("kubectl");
  if (at < 0) return { refs: [] };
  const rest = words.slice(at + 1);
  const flag = (f: string) => {
    const i = rest.indexOf(f);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  const ns = flag("-n") ?? flag("--namespace");
  if (!ns) return { refs: [] };
  const refs: string[] = [];
  for (const [i, word] of rest.entries()) {
    const slash = /^(?:--from=)?(\w+)\/([^/\s]+)$/.exec(word);
    if (slash && KINDS[slash[1]]) refs.push(`${KINDS[slash[1]]} ${slash[2]}`);
    // `get secret <name>`, `get sa <name>`, `patch pvc <name>`
    if ((rest[i - 1] === "get" || rest[i - 1] === "patch") && KINDS[word] && rest[i + 1] && !rest[i + 1].startsWith("-"))
      refs.push(`${KINDS[word]} ${rest[i + 1]}`);
  }
  // `port-forward svc/<name> [<local>:]<remote>`: the remote port is the Service's (a Deployment's: its container's).
  const forward = rest.indexOf("port-forward");
  const target = forward >= 0 ? /^(svc|deploy)\/(\S+)$/.exec(rest[forward + 1] ?? "") : null;
  const port = forward >= 0 ? /^(?:\d+:)?(\d+)$/.exec(rest[forward + 2] ?? "") : null;
  if (target && port) refs.push(`port ${KINDS[target[1]]} ${target[2]} ${port[1]}`);
  const label = flag("-l");
  if (label) refs.push(`label ${label}`);
  const container = flag("-c");
  if (container) refs.push(`container ${container}`);
  return { namespace: ns, refs };
}

test("every namespace, object, pod label and container a kubectl command of the documents names exists in prod", () => {
  const { names, patterns, namespaces } = clusterNames();
  const checked: string[] = [];
  const missing: string[] = [];
  for (const { file, command } of docCommands) {
    const { namespace, refs } = kubectlNames(command);
    if (!namespace || isPlaceholder(namespace)) continue;
    if (!namespaces.has(namespace)) missing.push(`${file}: namespace ${namespace} in \`${command}\``);
    for (const ref of refs) {
      // A placeholder ordinal (`data-qdrant-<i>`) stands for a number.
      const name = `${namespace} ${ref.replace(/<\w+>$/, "0")}`;
      if (isPlaceholder(name)) continue;
      checked.push(name);
      if (!names.has(name) && !patterns.some((p) => p.test(name))) missing.push(`${file}: ${name} in \`${command}\``);
    }
  }
  for (const expected of [
    "agent Deployment agent-api",
    "agent Secret qdrant-api-key",
    "agent CronJob qdrant-snapshot",
    "monitoring Service kube-prometheus-stack-grafana",
    "monitoring port Service kube-prometheus-stack-grafana 80",
    "monitoring port Service kube-prometheus-stack-prometheus 9090",
    "agent port Deployment agent-api 9464",
  ])
    assert.ok(checked.includes(expected), `the parse found no ${expected} (checked: ${[...new Set(checked)].join(", ")})`);
  assert.deepEqual(missing, []);
});

test("every <project>-<stack>-... name the documents give is one the plan declares", () => {
  const declared = JSON.stringify(plan.resources.map((r) => r.inputs));
  const prefix = `${PROJECT}-${plan.stack}`;
  const named = new Set<string>();
  for (const file of DOCS) {
    for (const m of read(file).matchAll(/<project>-<stack>-([a-z][a-z0-9-]*?)(-<account>)?(?![a-z0-9-])/g))
      named.add(`${m[1]}${m[2] ? "-<account>" : ""}`);
  }
  assert.ok(named.has("backup-job-failures") && named.has("ci-deploy"), [...named].join(", "));
  const missing = [...named].filter(
    (suffix) => !new RegExp(`"${prefix}-${suffix.replace("-<account>", "-\\d{12}")}"`).test(declared),
  );
  assert.deepEqual(missing, [], `no resource input is ${prefix}-<one of these>`);
});

test("every URN a document's `grep -o` picks from `pulumi stack --show-urns` matches exactly one resource", () => {
  const urns = plan.resources.map((r) => r.urn);
  const patterns = new Set<string>();
  for (const { command } of docCommands) for (const m of command.matchAll(/grep -o '(urn:pulumi:[^']+)'/g)) patterns.add(m[1]);
  assert.ok(patterns.size >= 1, [...patterns].join(", "));
  for (const pattern of patterns) {
    // A basic regular expression as grep reads it; these use only `[^ ]*` and `$`, which JavaScript reads alike.
    const matched = urns.filter((urn) => new RegExp(pattern).test(urn));
    assert.equal(matched.length, 1, `${pattern} picks ${matched.length}: ${matched.join(", ")}`);
  }
});

test("the restore runbook's EBS path: the backup plan, the selection's tag and the database share $DB's name, and the PersistentVolume it writes is of Qdrant's class", () => {
  const doc = read("docs/restore-runbook.md");
  assert.match(doc, /BackupPlanName=='\$DB'/);
  assert.match(doc, /Key=backup,Value="\$DB"/);
  const db = plan.outputs.dbInstanceId;
  assert.deepEqual(
    ofType(plan, "aws:backup/plan:Plan").map((p) => inputs(p).name),
    [db],
  );
  assert.deepEqual(
    ofType(plan, "aws:backup/selection:Selection").flatMap((s) => inputs(s).selectionTags),
    [{ type: "STRINGEQUALS", key: "backup", value: db }],
  );
  // Its class and file system are the ones the claim template asks for and the class formats with.
  const qdrant = ofType(plan, "kubernetes:apps/v1:StatefulSet").find((s) => inputs(s).metadata.name === "qdrant")!;
  const className = inputs(qdrant).spec.volumeClaimTemplates[0].spec.storageClassName;
  const storageClass = ofType(plan, "kubernetes:storage.k8s.io/v1:StorageClass").find(
    (c) => inputs(c).metadata.name === className,
  )!;
  assert.match(doc, new RegExp(`storageClassName: ${className}\\n`));
  assert.match(doc, new RegExp(`fsType: ${inputs(storageClass).parameters["csi.storage.k8s.io/fstype"]},`));
  assert.equal(inputs(storageClass).parameters.tagSpecification_1, `backup=${db}`);
});
