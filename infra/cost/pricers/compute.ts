// EC2 capacity: EKS managed node groups (instance-hours from the schedule simulation, plus each node's root
// volume) and plain EC2 instances.
import type { PlannedResource } from "../../plan/types.ts";
import { at, needString, optionalNumber, optionalString } from "../inputs.ts";
import { cents, steady, usd, type Charge, type PricingContext } from "../model.ts";

interface RootVolume {
  gb: number;
  type: string;
  source: string;
}

/**
 * The launch template a node group uses: the one its `launchTemplate` input comes from (the plan's recorded
 * property dependencies), else by the real id of an existing one (a preview's outputs), else by name.
 */
function launchTemplateOf(ng: PlannedResource, ctx: PricingContext): PlannedResource | undefined {
  const templates = ctx.ofType("aws:ec2/launchTemplate:LaunchTemplate");
  const from = ng.propertyDependencies?.launchTemplate ?? [];
  const id = optionalString(ng.inputs, "launchTemplate.id");
  const name = optionalString(ng.inputs, "launchTemplate.name");
  return (
    templates.find((lt) => from.includes(lt.urn)) ??
    templates.find((lt) => id !== undefined && (lt as { outputs?: { id?: unknown } }).outputs?.id === id) ??
    templates.find((lt) => name !== undefined && lt.inputs.name === name)
  );
}

function rootVolume(ng: PlannedResource, ctx: PricingContext): RootVolume {
  const diskSize = optionalNumber(ng.inputs, "diskSize");
  if (diskSize !== undefined) return { gb: diskSize, type: "gp3", source: "diskSize" };
  const lt = launchTemplateOf(ng, ctx);
  const ebs = at(lt?.inputs, "blockDeviceMappings.0.ebs") as Record<string, unknown> | undefined;
  const gb = ebs ? optionalNumber(ebs, "volumeSize") : undefined;
  if (lt && gb !== undefined) return { gb, type: optionalString(ebs!, "volumeType") ?? "gp2", source: `launch template ${lt.name}` };
  return { gb: 20, type: "gp2", source: "EKS default (no disk size found)" };
}

export function nodeGroup(ng: PlannedResource, ctx: PricingContext): Charge {
  const types = ng.inputs.instanceTypes;
  const instanceType = Array.isArray(types) ? String(types[0]) : needString(ng.inputs, "instanceTypes");
  const hourly = ctx.prices.usd(`ec2:${instanceType}`);
  const disk = rootVolume(ng, ctx);
  const diskHourly = (disk.gb * ctx.prices.usd(`ebs:${disk.type}`)) / ctx.hoursPerMonth;
  const profile = ctx.schedules.nodeGroup(ng);
  const perNodeMonth = (hourly + diskHourly) * ctx.hoursPerMonth;
  const notes = [`${instanceType} ${usd(hourly)}/h + ${disk.gb} GB ${disk.type} root (${disk.source})`];
  if (Array.isArray(types) && types.length > 1) notes.push(`priced as the first of ${types.join(", ")}`);
  if (ng.inputs.capacityType === "SPOT") notes.push("SPOT priced at on-demand (upper bound)");
  const sizes = profile.schedules.length
    ? `${cents(profile.averageNodes)} nodes on average (full size ${profile.fullNodes})`
    : `${profile.fullNodes} node${profile.fullNodes === 1 ? "" : "s"}`;
  return {
    monthlyUsd: profile.averageNodes * perNodeMonth,
    onDemandMonthlyUsd: profile.fullNodes * perNodeMonth,
    detail: `${sizes} × ${notes.join("; ")}`,
  };
}

export function ec2Instance(r: PlannedResource, ctx: PricingContext): Charge {
  const instanceType = needString(r.inputs, "instanceType");
  const hourly = ctx.prices.usd(`ec2:${instanceType}`);
  const gb = optionalNumber(r.inputs, "rootBlockDevice.volumeSize") ?? 8;
  const type = optionalString(r.inputs, "rootBlockDevice.volumeType") ?? "gp3";
  const monthly = hourly * ctx.hoursPerMonth + gb * ctx.prices.usd(`ebs:${type}`);
  return steady(monthly, `${instanceType} ${usd(hourly)}/h + ${gb} GB ${type} root`);
}
