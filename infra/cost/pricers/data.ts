// Managed data stores: RDS (instance class × AZ mode × hours, stop/start schedules, storage billed always,
// read replicas as their own instances) and ElastiCache (node type × nodes, Valkey or Redis OSS rates).
import type { PlannedResource } from "../../plan/types.ts";
import { isKnown, needNumber, needString, optionalNumber, optionalString, Unpriceable } from "../inputs.ts";
import { free, usd, type Pricing, type PricingContext } from "../model.ts";
import { unlimitedCredits } from "./burstable.ts";

/** The RDS instance a replica reads from (`replicateSourceDb`: the source's identifier or ARN). */
function replicaSource(replica: PlannedResource, ctx: PricingContext): PlannedResource | undefined {
  const source = replica.inputs.replicateSourceDb;
  if (typeof source !== "string" || !isKnown(source)) return undefined;
  return ctx
    .ofType("aws:rds/instance:Instance")
    .find(
      (r) =>
        r !== replica &&
        !r.inputs.replicateSourceDb &&
        (r.inputs.identifier === source || r.name === source || source.endsWith(`:db:${String(r.inputs.identifier)}`)),
    );
}

export function rdsInstance(db: PlannedResource, ctx: PricingContext): Pricing {
  const isReplica = db.inputs.replicateSourceDb !== undefined && db.inputs.replicateSourceDb !== null;
  const source = isReplica ? replicaSource(db, ctx) : undefined;
  const engine = optionalString(db.inputs, "engine") ?? optionalString(source?.inputs ?? {}, "engine") ?? "postgres";
  const instanceClass = needString(db.inputs, "instanceClass");
  const multiAz = db.inputs.multiAz === true;
  const az = multiAz ? "multi-az" : "single-az";
  const hourly = ctx.prices.usd(`rds:${engine}:${instanceClass}:${az}`);

  const storageGb =
    optionalNumber(db.inputs, "allocatedStorage") ?? (source ? optionalNumber(source.inputs, "allocatedStorage") : undefined);
  if (storageGb === undefined) {
    throw new Unpriceable(
      isReplica ? "replica: allocatedStorage of its source instance not found in the plan" : "allocatedStorage is not set",
    );
  }
  const storageType = optionalString(db.inputs, "storageType") ?? optionalString(source?.inputs ?? {}, "storageType") ?? "gp2";
  const storageMonthly = storageGb * ctx.prices.usd(`rds:storage:${storageType}:${az}`);

  const exports = db.inputs.enabledCloudwatchLogsExports;
  const logsMonthly =
    Array.isArray(exports) && exports.length > 0 ? ctx.usage.rdsLogGbPerMonth * ctx.prices.usd("cloudwatch:logs-ingest") : 0;

  const run = ctx.schedules.rdsInstance(db);
  // RDS db.t3/db.t4g always run in unlimited mode: surplus credits are billed on top of the hourly price.
  const credits = unlimitedCredits(instanceClass, "rds", () => ctx.usage, ctx.prices);
  const instanceMonthly = (hourly + (credits?.expectedHourly ?? 0)) * ctx.hoursPerMonth;
  const notes = [
    `${instanceClass} ${multiAz ? "Multi-AZ" : "single-AZ"}${isReplica ? " read replica" : ""} ${usd(hourly)}/h`,
    `${storageGb} GB ${storageType} ${usd(storageMonthly)}/month (billed while stopped)`,
  ];
  if (logsMonthly > 0) notes.push(`${ctx.usage.rdsLogGbPerMonth} GB/month of exported logs`);
  if (credits) notes.push(credits.note);
  if (run.runningFraction < 1) notes.push(`runs ${(run.runningFraction * 100).toFixed(1)} % of hours (stop/start schedule)`);
  return {
    monthlyUsd: instanceMonthly * run.runningFraction + storageMonthly + logsMonthly,
    onDemandMonthlyUsd: instanceMonthly + storageMonthly + logsMonthly,
    maxMonthlyUsd: (hourly + (credits?.worstHourly ?? 0)) * ctx.hoursPerMonth + storageMonthly + logsMonthly,
    detail: notes.join("; "),
  };
}

/** ElastiCache engines as they appear in price keys; Valkey nodes are ~20 % cheaper than Redis OSS. */
function engineKey(r: PlannedResource): string {
  const engine = optionalString(r.inputs, "engine") ?? "redis";
  if (engine !== "valkey" && engine !== "redis")
    throw new Unpriceable(`ElastiCache engine "${engine}" has no prices in the table`);
  return engine;
}

function cacheSnapshots(r: PlannedResource, ctx: PricingContext): number {
  const retention = optionalNumber(r.inputs, "snapshotRetentionLimit") ?? 0;
  return retention > 1 ? ctx.usage.snapshotGb * ctx.prices.usd("elasticache:backup-storage") : 0;
}

export function cacheReplicationGroup(r: PlannedResource, ctx: PricingContext): Pricing {
  const engine = engineKey(r);
  const nodeType = needString(r.inputs, "nodeType");
  const nodes =
    optionalNumber(r.inputs, "numCacheClusters") ??
    (optionalNumber(r.inputs, "numNodeGroups") ?? 1) * ((optionalNumber(r.inputs, "replicasPerNodeGroup") ?? 0) + 1);
  const hourly = ctx.prices.usd(`elasticache:${engine}:${nodeType}`);
  const snapshots = cacheSnapshots(r, ctx);
  const monthly = nodes * hourly * ctx.hoursPerMonth + snapshots;
  const detail = `${nodes} × ${nodeType} ${engine} ${usd(hourly)}/h${snapshots ? ` + ${ctx.usage.snapshotGb} GB snapshots` : ""}`;
  return { monthlyUsd: monthly, onDemandMonthlyUsd: monthly, detail };
}

export function cacheCluster(r: PlannedResource, ctx: PricingContext): Pricing {
  if (isKnown(r.inputs.replicationGroupId)) return free("a member of a replication group, priced there");
  const engine = optionalString(r.inputs, "engine") === "memcached" ? "memcached" : engineKey(r);
  const nodeType = needString(r.inputs, "nodeType");
  const nodes = needNumber(r.inputs, "numCacheNodes");
  const hourly = ctx.prices.usd(`elasticache:${engine}:${nodeType}`);
  const monthly = nodes * hourly * ctx.hoursPerMonth + cacheSnapshots(r, ctx);
  return { monthlyUsd: monthly, onDemandMonthlyUsd: monthly, detail: `${nodes} × ${nodeType} ${engine} ${usd(hourly)}/h` };
}
