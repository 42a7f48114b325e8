// Per-month platform charges: the EKS control plane (standard or extended support by version), KMS keys,
// Secrets Manager secrets, CloudWatch logs, alarms and dashboards, Route 53 zones.
import type { PlannedResource } from "../../plan/types.ts";
import { optionalNumber, optionalString } from "../inputs.ts";
import { steady, usd, type Pricing, type PricingContext } from "../model.ts";
import { byLogicalName } from "../usage.ts";

/**
 * End of EKS standard support per Kubernetes minor version (docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html;
 * best knowledge, check when adding a version). After it the control plane bills at the extended-support rate.
 * Compared with the price table's date, so an estimate does not change with the day it runs.
 */
export const EKS_STANDARD_SUPPORT_ENDS: Record<string, string> = {
  "1.28": "2024-11-26",
  "1.29": "2025-03-23",
  "1.30": "2025-07-23",
  "1.31": "2025-11-26",
  "1.32": "2026-03-23",
  "1.33": "2026-07-29",
  "1.34": "2026-12-02",
  "1.35": "2027-03-27",
};

export function eksCluster(r: PlannedResource, ctx: PricingContext): Pricing {
  const version = optionalString(r.inputs, "version");
  const ends = version === undefined ? undefined : EKS_STANDARD_SUPPORT_ENDS[version];
  const extended = ends !== undefined && ends < ctx.prices.date;
  const key = extended ? "eks:cluster-extended-support" : "eks:cluster";
  const detail = extended
    ? `Kubernetes ${version} left standard support on ${ends}: extended support ${usd(ctx.prices.usd(key))}/h`
    : `control plane ${usd(ctx.prices.usd(key))}/h${ends === undefined ? ` (version ${version ?? "unknown"}: support calendar unknown, standard rate)` : `, standard support until ${ends}`}`;
  return steady(ctx.prices.usd(key) * ctx.hoursPerMonth, detail);
}

export function kmsKey(_r: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.prices.usd("kms:key"), "customer managed key (requests not counted)");
}

export function secret(_r: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.prices.usd("secretsmanager:secret"), "secret (API calls not counted)");
}

export function logGroup(r: PlannedResource, ctx: PricingContext): Pricing {
  const ingestGb = byLogicalName(ctx.usage.logGbPerMonth, r.name);
  const retentionDays = optionalNumber(r.inputs, "retentionInDays");
  // Steady state: a month's ingest is kept retention/30 months; "never expire" is counted as a year.
  const keptMonths = retentionDays ? retentionDays / 30 : 12;
  const monthly =
    ingestGb * ctx.prices.usd("cloudwatch:logs-ingest") + ingestGb * keptMonths * ctx.prices.usd("cloudwatch:logs-storage");
  return steady(
    monthly,
    `usage: ${ingestGb} GB/month ingested, kept ${retentionDays ? `${retentionDays} d` : "forever (counted as 12 months)"}`,
  );
}

export function metricAlarm(_r: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.prices.usd("cloudwatch:alarm"), "standard-resolution alarm");
}

export function dashboard(_r: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.prices.usd("cloudwatch:dashboard"), "dashboard (the account's first 3 are free; not counted)");
}

export function hostedZone(_r: PlannedResource, ctx: PricingContext): Pricing {
  return steady(ctx.prices.usd("route53:hosted-zone"), "hosted zone (queries not counted)");
}
