// Durability: RDS backups, deletion protection and Multi-AZ outside dev, every database in an AWS Backup
// selection, ElastiCache snapshots.
import * as aws from "@pulumi/aws";
import {
  validateResourceOfType,
  type PolicyResource,
  type ResourceValidationPolicy,
  type StackValidationPolicy,
} from "@pulumi/policy";
import { effectiveTags, isRelaxed, tierOf, TIER_CONFIG_SCHEMA, type TierConfig } from "../lib/tier.ts";
import { ofTypes, refersTo, validateResourceOfTypes } from "../lib/validate.ts";
import { asArray, asNumber, isTrue } from "../lib/values.ts";

const RDS_TYPES = ["aws:rds/instance:Instance", "aws:rds/cluster:Cluster"] as const;

/**
 * Read replicas (recreated from their source) and Aurora cluster members: retention, protection, Multi-AZ and
 * backups belong to the source or the cluster, so the durability policies skip them.
 */
function isReplicaOrClusterMember(props: Record<string, any>): boolean {
  return Boolean(props.replicateSourceDb) || Boolean(props.clusterIdentifier);
}

export const rdsBackupRetention: ResourceValidationPolicy = {
  name: "rds-backup-retention",
  description: "RDS databases keep automated backups (point-in-time recovery) for at least the configured number of days.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      minRetentionDays: {
        type: "integer",
        minimum: 1,
        maximum: 35,
        default: 7,
        description: "Shortest allowed backupRetentionPeriod.",
      },
    },
  },
  validateResource: validateResourceOfTypes(RDS_TYPES, (db, args, report) => {
    if (isReplicaOrClusterMember(db)) return;
    const { minRetentionDays } = args.getConfig<{ minRetentionDays: number }>();
    const days = asNumber(db.backupRetentionPeriod);
    if (days === undefined)
      report(`backupRetentionPeriod is not set (AWS default 1 day); at least ${minRetentionDays} required.`);
    else if (days < minRetentionDays) report(`backups are kept ${days} days; at least ${minRetentionDays} required.`);
  }),
};

export const rdsDeletionProtection: ResourceValidationPolicy = {
  name: "rds-deletion-protection",
  description: "Outside dev, RDS databases have deletion protection and take a final snapshot when deleted.",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateResource: validateResourceOfTypes(RDS_TYPES, (db, args, report) => {
    if (isReplicaOrClusterMember(db)) return;
    const config = args.getConfig<TierConfig>();
    const tier = tierOf(config, args.provider, db);
    if (isRelaxed(config, tier)) return;
    if (!isTrue(db.deletionProtection))
      report(`tier ${tier ?? "(unknown)"}: deletion protection is off: set deletionProtection: true.`);
    if (isTrue(db.skipFinalSnapshot))
      report(`tier ${tier ?? "(unknown)"}: skipFinalSnapshot is true: deleting the database would lose its data.`);
  }),
};

export const rdsMultiAz: ResourceValidationPolicy = {
  name: "rds-multi-az",
  description: "Outside dev, RDS primaries run Multi-AZ (a standby in a second zone).",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateResource: validateResourceOfType(aws.rds.Instance, (db, args, report) => {
    if (isReplicaOrClusterMember(db)) return;
    const config = args.getConfig<TierConfig>();
    const tier = tierOf(config, args.provider, db);
    if (isRelaxed(config, tier)) return;
    if (!isTrue(db.multiAz)) report(`tier ${tier ?? "(unknown)"}: single-AZ: set multiAz: true.`);
  }),
};

/** AWS Backup's StringLike: `*` matches any run of characters. */
function likeMatches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(value);
}

const RESOURCE_TAG = "aws:ResourceTag/";

function tagValue(tags: Record<string, string>, conditionKey: string): string | undefined {
  return conditionKey.startsWith(RESOURCE_TAG) ? tags[conditionKey.slice(RESOURCE_TAG.length)] : undefined;
}

/** A selection's resource ARN ("*", "arn:aws:rds:<region>:<account>:db:<identifier or wildcard>") names the database. */
function arnPatternPicks(pattern: string, db: PolicyResource): boolean {
  if (pattern === "*") return true;
  const m = /^arn:aws:rds:[^:]*:[^:]*:(db|cluster):(.+)$/.exec(pattern);
  if (!m) return false;
  const kind = db.type === "aws:rds/cluster:Cluster" ? "cluster" : "db";
  const identifier = db.type === "aws:rds/cluster:Cluster" ? db.props.clusterIdentifier : db.props.identifier;
  return m[1] === kind && (m[2] === "*" || likeMatches(m[2], identifier));
}

/** Whether a backup selection picks the database: by resource (reference or wildcard) or by tag, and all conditions hold. */
function selects(selection: PolicyResource, db: PolicyResource): boolean {
  const tags = effectiveTags(db);
  const byResource =
    refersTo(selection, "resources", db) ||
    asArray<string>(selection.props.resources).some((pattern) => arnPatternPicks(pattern, db));
  const byTag = asArray<any>(selection.props.selectionTags).some((t) => t.type === "STRINGEQUALS" && tags[t.key] === t.value);
  if (!byResource && !byTag) return false;
  if (refersTo(selection, "notResources", db)) return false;
  return asArray<any>(selection.props.conditions).every(
    (c) =>
      asArray<any>(c.stringEquals).every((e) => tagValue(tags, e.key) === e.value) &&
      asArray<any>(c.stringLikes).every((e) => likeMatches(e.value, tagValue(tags, e.key))) &&
      asArray<any>(c.stringNotEquals).every((e) => tagValue(tags, e.key) !== e.value) &&
      asArray<any>(c.stringNotLikes).every((e) => !likeMatches(e.value, tagValue(tags, e.key))),
  );
}

export const rdsInBackupPlan: StackValidationPolicy = {
  name: "rds-in-backup-plan",
  description:
    "Every RDS primary is picked by an AWS Backup selection (by tag or resource), so it has long-term backups beyond automated snapshots.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const selections = ofTypes(args.resources, ["aws:backup/selection:Selection"]);
    for (const db of ofTypes(args.resources, RDS_TYPES)) {
      if (isReplicaOrClusterMember(db.props)) continue;
      if (!selections.some((s) => selects(s, db))) {
        const tags = Object.entries(effectiveTags(db))
          .map(([k, v]) => `${k}=${v}`)
          .join(", ");
        report(
          `database ${db.name} is in no AWS Backup selection (its tags: ${tags || "none"}): add an aws.backup.Selection that picks it.`,
          db.urn,
        );
      }
    }
  },
};

export const elasticacheSnapshotRetention: ResourceValidationPolicy = {
  name: "elasticache-snapshot-retention",
  description: "ElastiCache replication groups keep automatic snapshots.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      minRetentionDays: {
        type: "integer",
        minimum: 1,
        maximum: 35,
        default: 1,
        description: "Shortest allowed snapshotRetentionLimit.",
      },
    },
  },
  validateResource: validateResourceOfType(aws.elasticache.ReplicationGroup, (group, args, report) => {
    const { minRetentionDays } = args.getConfig<{ minRetentionDays: number }>();
    const days = asNumber(group.snapshotRetentionLimit) ?? 0;
    if (days < minRetentionDays) report(`snapshotRetentionLimit is ${days}; at least ${minRetentionDays} day(s) required.`);
  }),
};

export const durabilityPolicies = [
  rdsBackupRetention,
  rdsDeletionProtection,
  rdsMultiAz,
  rdsInBackupPlan,
  elasticacheSnapshotRetention,
];
