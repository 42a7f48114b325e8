// Storage: persistent volumes (PVCs, StatefulSet volumeClaimTemplates, persistence found in Helm values) at
// their EBS volume type's GB-month price, plus S3, AWS Backup, ECR and EBS volumes from the usage file.
import type { PlannedResource } from "../../plan/types.ts";
import { at, atKeys, needNumber, optionalNumber, optionalString, quantityToGib, Unpriceable } from "../inputs.ts";
import { cents, free, steady, usd, type Pricing, type PricingContext } from "../model.ts";
import { byLogicalName } from "../usage.ts";

const EBS_PROVISIONERS = new Set(["ebs.csi.aws.com", "kubernetes.io/aws-ebs"]);

/** The EBS volume type behind a storage class name, read from the plan's StorageClass resources. */
function volumeType(storageClassName: string | undefined, ctx: PricingContext): { type: string; note?: string } {
  const classes = ctx.ofType("kubernetes:storage.k8s.io/v1:StorageClass");
  const named =
    storageClassName === undefined
      ? classes.find(
          (c) => atKeys(c.inputs, ["metadata", "annotations", "storageclass.kubernetes.io/is-default-class"]) === "true",
        )
      : classes.find((c) => at(c.inputs, "metadata.name") === storageClassName);
  if (named) {
    const provisioner = optionalString(named.inputs, "provisioner") ?? "ebs.csi.aws.com";
    if (!EBS_PROVISIONERS.has(provisioner))
      throw new Unpriceable(`storage class ${String(at(named.inputs, "metadata.name"))} uses ${provisioner}, which has no price`);
    // The EBS CSI driver defaults to gp3, the in-tree provisioner to gp2.
    return { type: optionalString(named.inputs, "parameters.type") ?? (provisioner === "ebs.csi.aws.com" ? "gp3" : "gp2") };
  }
  if (storageClassName === "gp2" || storageClassName === "gp3") return { type: storageClassName };
  return { type: "gp3", note: `storage class ${storageClassName ?? "(default)"} not in the plan, assumed gp3` };
}

interface Volume {
  gib: number;
  count: number;
  storageClass?: string;
  where: string;
}

function priceVolumes(volumes: Volume[], ctx: PricingContext): Pricing {
  let monthly = 0;
  const parts: string[] = [];
  for (const v of volumes) {
    const { type, note } = volumeType(v.storageClass, ctx);
    monthly += v.count * v.gib * ctx.prices.usd(`ebs:${type}`);
    parts.push(`${v.count > 1 ? `${v.count} × ` : ""}${cents(v.gib)} GiB ${type} (${v.where}${note ? `; ${note}` : ""})`);
  }
  return steady(monthly, parts.join(" + "));
}

function claimVolume(spec: unknown, count: number, where: string): Volume {
  return {
    gib: quantityToGib(at(spec, "resources.requests.storage")),
    count,
    storageClass: optionalString((spec as Record<string, unknown>) ?? {}, "storageClassName"),
    where,
  };
}

export function persistentVolumeClaim(r: PlannedResource, ctx: PricingContext): Pricing {
  return priceVolumes([claimVolume(at(r.inputs, "spec"), 1, "PVC")], ctx);
}

export function statefulSet(r: PlannedResource, ctx: PricingContext): Pricing {
  const templates = (at(r.inputs, "spec.volumeClaimTemplates") as unknown[] | undefined) ?? [];
  if (templates.length === 0) return free("no volumeClaimTemplates: its pods run on the node groups (priced there)");
  const replicas = optionalNumber(r.inputs, "spec.replicas") ?? 1;
  // Claims outlive scale-downs, so the full replica count is billed all month.
  return priceVolumes(
    templates.map((t) =>
      claimVolume(at(t, "spec"), replicas, `volumeClaimTemplate ${String(at(t, "metadata.name") ?? "")}`.trim()),
    ),
    ctx,
  );
}

/** Persistent volumes a chart's values ask for: `persistence` / `persistentVolume` blocks and `volumeClaimTemplate`s. */
function helmValueVolumes(values: unknown, path = "values", replicas = 1): Volume[] {
  if (values === null || typeof values !== "object") return [];
  const obj = values as Record<string, unknown>;
  const here = optionalNumber(obj, "replicas") ?? optionalNumber(obj, "replicaCount") ?? replicas;
  const found: Volume[] = [];
  for (const [key, value] of Object.entries(obj)) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) continue;
    const v = value as Record<string, unknown>;
    if ((key === "persistence" || key === "persistentVolume") && v.size !== undefined && v.enabled !== false) {
      found.push({
        gib: quantityToGib(v.size),
        count: here,
        storageClass: optionalString(v, "storageClass") ?? optionalString(v, "storageClassName"),
        where: `${path}.${key}`,
      });
    } else if (key === "volumeClaimTemplate" && at(v, "spec.resources.requests.storage") !== undefined) {
      found.push(claimVolume(v.spec, here, `${path}.${key}`));
    } else {
      found.push(...helmValueVolumes(v, `${path}.${key}`, here));
    }
  }
  return found;
}

export function helmRelease(r: PlannedResource, ctx: PricingContext): Pricing {
  const volumes = helmValueVolumes(r.inputs.values);
  if (volumes.length === 0)
    return free(
      "no persistent volumes in its values; its pods run on the node groups (chart templates are not expanded offline)",
    );
  const priced = priceVolumes(volumes, ctx);
  return "free" in priced ? priced : { ...priced, detail: `chart ${String(r.inputs.chart ?? r.name)}: ${priced.detail}` };
}

export function ebsVolume(r: PlannedResource, ctx: PricingContext): Pricing {
  const gb = needNumber(r.inputs, "size");
  const type = optionalString(r.inputs, "type") ?? "gp3";
  return steady(gb * ctx.prices.usd(`ebs:${type}`), `${gb} GB ${type}`);
}

export function s3Bucket(r: PlannedResource, ctx: PricingContext): Pricing {
  const u = byLogicalName(ctx.usage.s3, r.name);
  const monthly = u.standardGb * ctx.prices.usd("s3:standard") + u.glacierGb * ctx.prices.usd("s3:glacier-flexible");
  return steady(monthly, `usage: ${u.standardGb} GB Standard + ${u.glacierGb} GB Glacier Flexible Retrieval`);
}

/** The `key=value` tags AWS Backup selections pick resources by. */
function selectionTags(ctx: PricingContext): Set<string> {
  const tags = new Set<string>();
  for (const sel of ctx.ofType("aws:backup/selection:Selection")) {
    for (const t of (sel.inputs.selectionTags as unknown[] | undefined) ?? []) {
      const key = optionalString((t as Record<string, unknown>) ?? {}, "key");
      const value = optionalString((t as Record<string, unknown>) ?? {}, "value");
      if (key !== undefined && value !== undefined) tags.add(`${key}=${value}`);
    }
  }
  return tags;
}

/** Storage classes whose volumes the EBS CSI driver tags with a selected tag (`tagSpecification_N: key=value`). */
function backedUpClasses(tags: Set<string>, ctx: PricingContext): Set<string> {
  const names = new Set<string>();
  for (const sc of ctx.ofType("kubernetes:storage.k8s.io/v1:StorageClass")) {
    const params = (at(sc.inputs, "parameters") as Record<string, unknown> | undefined) ?? {};
    const tagged = Object.entries(params).some(
      ([k, v]) => k.startsWith("tagSpecification_") && typeof v === "string" && tags.has(v.replace(/\s/g, "")),
    );
    const name = at(sc.inputs, "metadata.name");
    if (tagged && typeof name === "string") names.add(name);
  }
  return names;
}

/** GiB of EBS volumes the plan's backup selections cover: claims of tagged storage classes, tagged EBS volumes. */
function backedUpVolumeGib(ctx: PricingContext): { gib: number; parts: string[] } {
  const tags = selectionTags(ctx);
  if (tags.size === 0) return { gib: 0, parts: [] };
  const classes = backedUpClasses(tags, ctx);
  let gib = 0;
  const parts: string[] = [];
  const add = (v: Volume, owner: string) => {
    if (v.storageClass === undefined || !classes.has(v.storageClass)) return;
    gib += v.count * v.gib;
    parts.push(`${owner} ${v.count > 1 ? `${v.count} × ` : ""}${cents(v.gib)} GiB`);
  };
  for (const ss of ctx.ofType("kubernetes:apps/v1:StatefulSet")) {
    const replicas = optionalNumber(ss.inputs, "spec.replicas") ?? 1;
    for (const t of (at(ss.inputs, "spec.volumeClaimTemplates") as unknown[] | undefined) ?? [])
      add(claimVolume(at(t, "spec"), replicas, ""), ss.name);
  }
  for (const pvc of ctx.ofType("kubernetes:core/v1:PersistentVolumeClaim"))
    add(claimVolume(at(pvc.inputs, "spec"), 1, ""), pvc.name);
  for (const vol of ctx.ofType("aws:ebs/volume:Volume")) {
    const t = (vol.inputs.tags as Record<string, unknown> | undefined) ?? {};
    if (Object.entries(t).some(([k, v]) => tags.has(`${k}=${String(v)}`))) {
      const size = optionalNumber(vol.inputs, "size") ?? 0;
      gib += size;
      parts.push(`${vol.name} ${size} GiB`);
    }
  }
  return { gib, parts };
}

export function backupVault(_r: PlannedResource, ctx: PricingContext): Pricing {
  const vaults = ctx.ofType("aws:backup/vault:Vault").length;
  const rdsGb = ctx.usage.backupGb;
  const rdsRate = ctx.prices.usd("backup:rds-snapshot");
  const notes = [`usage: ${rdsGb} GB of RDS recovery points at ${usd(rdsRate)}/GB-month`];
  let monthly = rdsGb * rdsRate;
  const ebs = backedUpVolumeGib(ctx);
  if (ebs.gib > 0) {
    const gb = (ebs.gib * ctx.usage.ebsBackupGbPerVolumeGb) / vaults;
    const rate = ctx.prices.usd("backup:ebs-snapshot");
    monthly += gb * rate;
    notes.push(
      `${cents(gb)} GB of EBS recovery points at ${usd(rate)}/GB-month (${ctx.usage.ebsBackupGbPerVolumeGb} GB per GB of the selected volumes: ${ebs.parts.join(", ")}${vaults > 1 ? `; split over ${vaults} vaults` : ""})`,
    );
  }
  return steady(monthly, notes.join(" + "));
}

export function ecrRepository(_r: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.usage.ecrGb * ctx.prices.usd("ecr:storage"), `usage: ${ctx.usage.ecrGb} GB of images`);
}
