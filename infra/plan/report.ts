// Renders the plan's inventory: table (terminal), markdown (PR comment). JSON is the Plan object itself.
import { type Plan, type PlannedResource, UNKNOWN_VALUE } from "./types.ts";

type Summary = (inputs: Record<string, any>) => string | undefined;

// The sizes that matter per type, so a reviewer sees what changes the bill or the blast radius.
const SUMMARIES: Record<string, Summary> = {
  "aws:eks/cluster:Cluster": (i) => `k8s ${i.version}`,
  "aws:eks/nodeGroup:NodeGroup": (i) =>
    `${(i.instanceTypes ?? []).join(",")} ${i.scalingConfig?.minSize}/${i.scalingConfig?.desiredSize}/${i.scalingConfig?.maxSize} (min/desired/max)${i.taints?.length ? " tainted" : ""}`,
  "aws:ec2/launchTemplate:LaunchTemplate": (i) =>
    `IMDS ${i.metadataOptions?.httpTokens}, ${i.blockDeviceMappings?.[0]?.ebs?.volumeSize} GB ${i.blockDeviceMappings?.[0]?.ebs?.volumeType}`,
  "aws:rds/instance:Instance": (i) =>
    i.replicateSourceDb
      ? `${i.instanceClass} read replica`
      : `${i.instanceClass} ${i.multiAz ? "Multi-AZ" : "single-AZ"} ${i.allocatedStorage}-${i.maxAllocatedStorage} GB ${i.storageType}, backups ${i.backupRetentionPeriod} d`,
  "aws:elasticache/replicationGroup:ReplicationGroup": (i) =>
    `${i.engine} ${i.nodeType} x${i.numCacheClusters}${i.multiAzEnabled ? " Multi-AZ" : ""}`,
  "aws:ec2/natGateway:NatGateway": () => "NAT gateway",
  "aws:ecr/repository:Repository": (i) => `${i.name} scan=${i.imageScanningConfiguration?.scanOnPush} ${i.imageTagMutability}`,
  "aws:autoscaling/schedule:Schedule": (i) =>
    `${i.recurrence} ${i.timeZone ?? "UTC"} -> desired ${i.desiredCapacity} (min ${i.minSize}, max ${i.maxSize})`,
  "aws:scheduler/schedule:Schedule": (i) => `${i.scheduleExpression} ${i.scheduleExpressionTimezone ?? ""}`.trim(),
  "aws:budgets/budget:Budget": (i) => `${i.limitAmount} ${i.limitUnit}/${i.timeUnit}`,
  "kubernetes:helm.sh/v3:Release": (i) => `${i.chart} ${i.version}`,
  "kubernetes:apps/v1:Deployment": (i) => containers(i.spec?.template?.spec, i.spec?.replicas),
  "kubernetes:apps/v1:StatefulSet": (i) => containers(i.spec?.template?.spec, i.spec?.replicas),
  "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": (i) => `${i.spec?.minReplicas}-${i.spec?.maxReplicas} replicas`,
  "kubernetes:batch/v1:CronJob": (i) => `${i.spec?.schedule}${i.spec?.timeZone ? ` ${i.spec.timeZone}` : ""}`,
};

function containers(podSpec: any, replicas: unknown): string | undefined {
  if (!podSpec) return undefined;
  const images = (podSpec.containers ?? []).map((c: any) => c.image).join(", ");
  return replicas === undefined ? images : `${images} x${replicas}`;
}

function summarize(r: PlannedResource): string {
  return (SUMMARIES[r.type]?.(r.inputs as Record<string, any>) ?? "").replaceAll(UNKNOWN_VALUE, "[unknown]");
}

/** What the plan shows: a first preview says so, as its unknown values and unjudged policies follow from it. */
const seenAs = (plan: Plan) => (plan.firstPreview ? " · as its first preview sees it" : "");

/** Resources grouped by top-level component, components in first-seen order; component resources omitted. */
function byComponent(plan: Plan): Map<string, PlannedResource[]> {
  const groups = new Map<string, PlannedResource[]>();
  for (const r of plan.resources) {
    if (!r.custom) continue;
    groups.set(r.component, [...(groups.get(r.component) ?? []), r]);
  }
  return groups;
}

function shortType(type: string): string {
  const [pkg, mod, name] = type.split(":");
  return pkg === "kubernetes" ? `k8s:${name}` : `${pkg}:${(mod ?? "").split("/")[0]}:${name}`;
}

function policyLines(plan: Plan): string[] {
  if (!plan.policies) return ["policies: not evaluated"];
  const v = plan.policies.violations;
  const blind = (plan.policies.blindOnFirstPreview ?? []).map(
    (b) =>
      `  [unjudged] ${b.policy}: read ${b.resources.length} Kubernetes object(s), which have no outputs before their cluster exists; what it judges of them waits for the end of \`up\``,
  );
  const verdict = v.length === 0 ? ["policies: no violations"] : [`policies: ${v.length} violation(s)`];
  return [...verdict, ...v.map((x) => `  [${x.level}] ${x.policy} ${x.resource}: ${x.message}`), ...blind];
}

/** The `capacity` stack output (infra/capacity.ts): memory and GPU budgets, one line each. */
function capacityLines(plan: Plan): string[] {
  const capacity = plan.outputs?.capacity;
  return Array.isArray(capacity) && capacity.length ? ["capacity", ...capacity.map((l) => `  ${l}`), ""] : [];
}

export function renderTable(plan: Plan, costSection?: string): string {
  const lines = [
    `stack ${plan.stack} · tier ${plan.tier} · ${plan.region} · ${plan.resources.filter((r) => r.custom).length} resources${seenAs(plan)}`,
    "",
  ];
  for (const [component, resources] of byComponent(plan)) {
    lines.push(`${component} (${resources.length})`);
    const rows = resources.map((r) => [shortType(r.type), r.name, summarize(r)]);
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    for (const [t, n, s] of rows) lines.push(`  ${t.padEnd(w0)}  ${n.padEnd(w1)}  ${s}`.trimEnd());
    lines.push("");
  }
  if (costSection) lines.push(costSection, "");
  lines.push(...capacityLines(plan));
  lines.push(...policyLines(plan));
  return lines.join("\n");
}

export function renderMarkdown(plan: Plan, costSection?: string): string {
  const lines = [`### Plan: \`${plan.stack}\` (tier ${plan.tier}, ${plan.region}${seenAs(plan)})`, ""];
  lines.push("| component | resources | key sizes |", "|---|---:|---|");
  for (const [component, resources] of byComponent(plan)) {
    const sizes = resources.map(summarize).filter(Boolean);
    lines.push(`| ${component} | ${resources.length} | ${[...new Set(sizes)].slice(0, 6).join("<br>")} |`);
  }
  lines.push("");
  if (costSection) lines.push(costSection, "");
  lines.push(...policyLines(plan).map((l) => (l.startsWith("  ") ? `- ${l.trim()}` : `**${l}**`)));
  return lines.join("\n");
}
