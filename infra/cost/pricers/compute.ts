// EC2 capacity: EKS managed node groups (instance-hours from the schedule simulation, plus each node's root
// volume) and plain EC2 instances. Spot nodes are priced at the table's expected Spot discount in the
// with-schedules column and at list price in the on-demand and at-maximum columns; T-family nodes in unlimited
// mode add their surplus CPU credits (burstable.ts).
import type { PlannedResource } from "../../plan/types.ts";
import { at, needString, optionalNumber, optionalString } from "../inputs.ts";
import { cents, steady, usd, type Charge, type PricingContext } from "../model.ts";
import { unlimitedCredits } from "./burstable.ts";

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
  if (lt && gb !== undefined)
    return { gb, type: optionalString(ebs!, "volumeType") ?? "gp2", source: `launch template ${lt.name}` };
  return { gb: 20, type: "gp2", source: "EKS default (no disk size found)" };
}

/** The credit mode a launch template sets for T instances; EC2 launches T3/T3a/T4g as unlimited by default. */
function creditMode(lt: PlannedResource | undefined): "standard" | "unlimited" {
  return optionalString(lt?.inputs ?? {}, "creditSpecification.cpuCredits") === "standard" ? "standard" : "unlimited";
}

export function nodeGroup(ng: PlannedResource, ctx: PricingContext): Charge {
  const types = ng.inputs.instanceTypes;
  const instanceType = Array.isArray(types) ? String(types[0]) : needString(ng.inputs, "instanceTypes");
  const hourly = ctx.prices.usd(`ec2:${instanceType}`);
  const disk = rootVolume(ng, ctx);
  const diskHourly = (disk.gb * ctx.prices.usd(`ebs:${disk.type}`)) / ctx.hoursPerMonth;
  const profile = ctx.schedules.nodeGroup(ng);
  const notes = [`${instanceType} ${usd(hourly)}/h + ${disk.gb} GB ${disk.type} root (${disk.source})`];
  if (Array.isArray(types) && types.length > 1) notes.push(`priced as the first of ${types.join(", ")}`);

  let expectedHourly = hourly;
  if (ng.inputs.capacityType === "SPOT") {
    const spot = ctx.prices.assumption("spot-discount");
    expectedHourly = hourly * (1 - spot.value);
    notes.push(
      `SPOT: expected ${usd(expectedHourly)}/h, ${Math.round(spot.value * 100)} % below list (assumption of ${spot.date}); on-demand and maximum at list price`,
    );
  }
  let creditHourly = 0;
  let worstCreditHourly = 0;
  const lt = launchTemplateOf(ng, ctx);
  const credits = creditMode(lt) === "unlimited" ? unlimitedCredits(instanceType, "ec2", () => ctx.usage, ctx.prices) : undefined;
  if (credits) {
    creditHourly = credits.expectedHourly;
    worstCreditHourly = credits.worstHourly;
    notes.push(credits.note);
  }
  const perNode = (instanceHourly: number, credit: number) => (instanceHourly + credit + diskHourly) * ctx.hoursPerMonth;
  const maxNodes = Math.max(profile.fullNodes, optionalNumber(ng.inputs, "scalingConfig.maxSize") ?? 0);
  const sizes = profile.schedules.length
    ? `${cents(profile.averageNodes)} nodes on average (full size ${profile.fullNodes}, max ${maxNodes})`
    : `${profile.fullNodes} node${profile.fullNodes === 1 ? "" : "s"} (max ${maxNodes})`;
  return {
    monthlyUsd: profile.averageNodes * perNode(expectedHourly, creditHourly),
    onDemandMonthlyUsd: profile.fullNodes * perNode(hourly, creditHourly),
    maxMonthlyUsd: maxNodes * perNode(hourly, worstCreditHourly),
    detail: `${sizes} × ${notes.join("; ")}`,
  };
}

export function ec2Instance(r: PlannedResource, ctx: PricingContext): Charge {
  const instanceType = needString(r.inputs, "instanceType");
  const hourly = ctx.prices.usd(`ec2:${instanceType}`);
  const gb = optionalNumber(r.inputs, "rootBlockDevice.volumeSize") ?? 8;
  const type = optionalString(r.inputs, "rootBlockDevice.volumeType") ?? "gp3";
  const disk = gb * ctx.prices.usd(`ebs:${type}`);
  const unlimited = optionalString(r.inputs, "creditSpecification.cpuCredits") !== "standard";
  const credits = unlimited ? unlimitedCredits(instanceType, "ec2", () => ctx.usage, ctx.prices) : undefined;
  const monthly = (hourly + (credits?.expectedHourly ?? 0)) * ctx.hoursPerMonth + disk;
  const detail = [`${instanceType} ${usd(hourly)}/h + ${gb} GB ${type} root`, ...(credits ? [credits.note] : [])].join("; ");
  return { ...steady(monthly, detail), maxMonthlyUsd: (hourly + (credits?.worstHourly ?? 0)) * ctx.hoursPerMonth + disk };
}
