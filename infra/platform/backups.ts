// Backups (guide 000 "Backup and Disaster Recovery", guide 002 "Retention: 7 daily, 4 weekly, 12 monthly"):
// an AWS Backup vault and plan over everything carrying the backup tag (the RDS instance, the Qdrant EBS
// volumes), and the S3 bucket the Qdrant snapshot CronJob uploads to. RDS point-in-time recovery is the
// instance's own automated backups (database.ts); ElastiCache keeps its own snapshots (cache.ts).
// The vault has its own protected KMS key and, outside dev, a Backup Vault Lock so no deployer can delete recovery
// points early. A recovery point of a type AWS Backup does not fully manage keeps its source's key (AWS Backup Developer
// Guide, "Encryption for backups in AWS Backup"): RDS's stay under the data key, which is why it is kept from every
// role as the vault's is (boundaries.ts KEPT_KEYS), and the Qdrant volumes' under the AWS-managed EBS key.
// A backup job of the vault that fails, is aborted or expires is sent to the stack's SNS topic
// (jobFailures, wired in notifications.ts): nothing else watches AWS Backup.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { privateBucket, stackBucket } from "./private-bucket.ts";
import { DAYS, type Day, type Tier } from "../tiers.ts";
import { KEPT_KEY_TAG, KEPT_KEYS } from "./boundaries.ts";
import { attachManagedPolicies, serviceTrustPolicy } from "./iam.ts";
import type { EventAlert } from "./notifications.ts";
import { endDays, eventBridgeCron as schedulerCron, hhmmOf, midpoint, minutesOf, utcWindow } from "../time.ts";
import { RDS_BACKUP_AFTER_WORK_START, RDS_BACKUP_START } from "../tier-schema.ts";

export interface BackupsArgs {
  /** Names the vault, plan and bucket (`<prefix>-backups-<account>`). */
  prefix: string;
  /** Makes the bucket name unique across accounts. */
  accountId: pulumi.Input<string>;
  /** Encrypts the Qdrant snapshot bucket (the data key); the vault gets a key of its own. */
  kmsKeyArn: pulumi.Input<string>;
  sizes: Tier["backups"];
  /**
   * Backup Vault Lock. governance: recovery points stay for the shortest retention unless someone with
   * backup:DeleteBackupVaultLockConfiguration removes the lock; compliance: after VAULT_LOCK_COOLING_OFF_DAYS
   * nobody can (not even the root user); off: no lock (dev).
   */
  vaultLock: "governance" | "compliance" | "off";
  schedule: Tier["schedule"];
  /** The stack's IANA time zone: the rules run in it. */
  timeZone: string;
  /** Dev: bucket and vault are deleted with the stack; elsewhere they are protected. */
  disposable: boolean;
  /** Resources tagged `key=value` are backed up by the plan. */
  selectionTag: { key: string; value: string };
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
}

/** Key prefix of the Qdrant snapshots in the bucket: qdrant/<YYYY-MM-DD>/<node>/<collection>/<snapshot>. */
export const QDRANT_SNAPSHOT_PREFIX = "qdrant/";

const BACKUP_ROLE_POLICIES = [
  "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
  "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
];

/** EventBridge cron numbers its days from Sunday = 1. */
const EVENTBRIDGE_DAY: Record<Day, number> = { SUN: 1, MON: 2, TUE: 3, WED: 4, THU: 5, FRI: 6, SAT: 7 };

/** Off-peak start of every rule for always-on tiers: inside the guide's 00:00-06:00, before RDS's 03:00 window. */
const OFF_PEAK_BACKUP = "01:00";

/** Compliance mode: days to undo the lock before it becomes immutable (AWS minimum: 3). */
export const VAULT_LOCK_COOLING_OFF_DAYS = 3;

/** The backup job states the vault's alert fires on. */
const FAILED_JOB_STATES = ["FAILED", "ABORTED", "EXPIRED"] as const;

export interface BackupRule {
  ruleName: "daily" | "weekly" | "monthly";
  schedule: string;
  scheduleExpressionTimezone: string;
  deleteAfterDays: number;
}

export class Backups extends pulumi.ComponentResource {
  readonly bucketName: pulumi.Output<string>;
  readonly bucketArn: pulumi.Output<string>;
  readonly vaultName: pulumi.Output<string>;
  readonly planId: pulumi.Output<string>;
  /** The EventBridge rule of this vault's failed, aborted and expired backup jobs, and the text the topic sends. */
  readonly jobFailures: EventAlert;

  constructor(name: string, args: BackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Backups", name, {}, opts);
    const o = { parent: this };
    const keep = { ...o, protect: !args.disposable };

    const vaultKey = new aws.kms.Key(
      `${name}-vault-key`,
      {
        description: `${args.prefix} AWS Backup vault`,
        enableKeyRotation: true,
        deletionWindowInDays: args.disposable ? 7 : 30,
        tags: { [KEPT_KEY_TAG]: KEPT_KEYS.vault },
      },
      keep,
    );
    new aws.kms.Alias(`${name}-vault-key`, { name: `alias/${args.prefix}-backup-vault`, targetKeyId: vaultKey.keyId }, o);
    const vault = new aws.backup.Vault(
      `${name}-vault`,
      {
        name: args.prefix,
        kmsKeyArn: vaultKey.arn,
        forceDestroy: args.disposable,
      },
      keep,
    );
    this.vaultName = vault.name;
    const rules = backupRules(args.sizes, args.schedule, args.timeZone);
    if (args.vaultLock !== "off") {
      const retention = rules.map((r) => r.deleteAfterDays);
      new aws.backup.VaultLockConfiguration(
        `${name}-vault-lock`,
        {
          backupVaultName: vault.name,
          minRetentionDays: Math.min(...retention),
          maxRetentionDays: Math.max(...retention),
          // Omitted: governance mode; set: compliance mode once the cooling-off days have passed.
          changeableForDays: args.vaultLock === "compliance" ? VAULT_LOCK_COOLING_OFF_DAYS : undefined,
        },
        // Every argument is ForceNew and the lock is the vault's, not a resource of its own (terraform-provider-aws
        // internal/service/backup/vault_lock_configuration.go: no Update; Create is PutBackupVaultLockConfiguration, Delete
        // DeleteBackupVaultLockConfiguration, both by vault name). A new mode (backupVaultLock) or retention
        // (overrides.backups.*) replaces it; created first, the new lock would overwrite the old one and the old one's
        // delete would then remove it: no lock left, while the state holds one. Delete-first puts the new lock last. Protected
        // outside dev, so there `pulumi up` refuses the replacement until the lock is unprotected (README, "Backup
        // Vault Lock"); the deploy role may not delete a lock at all (boundaries.ts), an administrator does.
        { ...keep, deleteBeforeReplace: true },
      );
    }

    const plan = new aws.backup.Plan(
      `${name}-plan`,
      {
        name: args.prefix,
        rules: rules.map((r) => ({
          ruleName: r.ruleName,
          targetVaultName: vault.name,
          schedule: r.schedule,
          scheduleExpressionTimezone: r.scheduleExpressionTimezone,
          startWindow: 60,
          // Generous: a first EBS snapshot of a large Qdrant volume takes hours; later ones are incremental.
          completionWindow: 8 * 60,
          lifecycle: { deleteAfter: r.deleteAfterDays },
          recoveryPointTags: { rule: r.ruleName },
        })),
      },
      o,
    );
    this.planId = plan.id;

    const role = new aws.iam.Role(
      `${name}-backup`,
      {
        description: "AWS Backup: snapshot and restore the tagged RDS instance and Qdrant volumes",
        // No source condition: the AWS Backup guide's "IAM service roles" trusts backup.amazonaws.com without one, and its
        // "Cross-service confused deputy prevention" names the keys for SNS topic and KMS key policies only.
        assumeRolePolicy: serviceTrustPolicy("backup.amazonaws.com"),
        permissionsBoundary: args.permissionsBoundary,
      },
      o,
    );
    const attachments = attachManagedPolicies(`${name}-backup`, role, BACKUP_ROLE_POLICIES, o);
    new aws.backup.Selection(
      `${name}-selection`,
      {
        name: `${args.prefix}-tagged`,
        planId: plan.id,
        iamRoleArn: role.arn,
        selectionTags: [{ type: "STRINGEQUALS", key: args.selectionTag.key, value: args.selectionTag.value }],
      },
      { ...o, dependsOn: attachments },
    );

    this.jobFailures = this.jobFailureAlert(name, args.prefix, vault.name);

    const bucket = this.bucket(name, args);
    this.bucketName = bucket.bucket;
    this.bucketArn = bucket.arn;
    this.registerOutputs({ bucketName: this.bucketName, vaultName: this.vaultName, planId: this.planId });
  }

  private jobFailureAlert(name: string, prefix: string, vaultName: pulumi.Output<string>): EventAlert {
    // Event shape: AWS Backup Developer Guide, "Monitoring AWS Backup events using Amazon EventBridge"
    // (https://docs.aws.amazon.com/aws-backup/latest/devguide/eventbridge.html, its example events). Backup jobs carry
    // `state` and the vault's name. Copy jobs name only vault ARNs, and the plan has no copy rule; restore jobs report
    // `status` and no vault, and are run by hand: neither is matched.
    const rule = new aws.cloudwatch.EventRule(
      `${name}-job-failures`,
      {
        name: `${prefix}-backup-job-failures`,
        description: `AWS Backup jobs of vault ${prefix} that failed, were aborted or expired`,
        eventPattern: pulumi.jsonStringify({
          source: ["aws.backup"],
          "detail-type": ["Backup Job State Change"],
          detail: { state: [...FAILED_JOB_STATES], backupVaultName: [vaultName] },
        }),
      },
      { parent: this },
    );
    return {
      rule,
      message: {
        inputPaths: {
          state: "$.detail.state",
          type: "$.detail.resourceType",
          resource: "$.detail.resourceArn",
          vault: "$.detail.backupVaultName",
          job: "$.detail.backupJobId",
          time: "$.time",
          region: "$.region",
        },
        // Not the job's statusMessage: EventBridge puts extracted values into the template unescaped, and AWS Backup's
        // messages carry quotes (EventBridge User Guide, "Amazon EventBridge input transformation", common issues).
        inputTemplate: JSON.stringify(
          "AWS Backup job <state>: <type> <resource>, vault <vault>, at <time>. " +
            "Reason: aws backup describe-backup-job --region <region> --backup-job-id <job> (StatusMessage).",
        ),
      },
    };
  }

  /** Versioned, KMS-encrypted, private, TLS-only; objects go to Glacier, then expire. */
  private bucket(name: string, args: BackupsArgs): aws.s3.Bucket {
    return privateBucket(
      `${name}-bucket`,
      {
        bucketName: stackBucket(args.prefix, "backups", args.accountId),
        kmsKeyArn: args.kmsKeyArn,
        versioned: true,
        disposable: args.disposable,
        lifecycleRules: [
          {
            id: "glacier-then-expire",
            status: "Enabled",
            filter: { prefix: "" },
            transitions: [{ days: args.sizes.glacierAfterDays, storageClass: "GLACIER" }],
            expiration: { days: args.sizes.expireAfterDays },
            // Versioning keeps overwritten and deleted objects; they go after the shortest retention we promise.
            noncurrentVersionExpiration: { noncurrentDays: args.sizes.daily.keepDays },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 2 },
          },
          // The delete markers the expiration leaves on versioned objects, once their old versions are gone. A rule of
          // its own: S3 takes expiredObjectDeleteMarker only without `days`.
          {
            id: "expired-delete-markers",
            status: "Enabled",
            filter: { prefix: "" },
            expiration: { expiredObjectDeleteMarker: true },
          },
        ],
      },
      { parent: this },
    );
  }
}

/**
 * RDS's own daily backup window (UTC, one hour), hours away from the Backup plan's run: always on, 03:00 local,
 * inside the off-peak window, two hours after the plan's 01:00 run; a work-hours-only database, stopped at night,
 * RDS_BACKUP_AFTER_WORK_START into the work hours (it has started by then), while the plan runs mid-way through them
 * (the tier schema refuses work hours too short for both, or a window on the maintenance one). Both at the midpoint
 * put dev's AWS Backup job inside the RDS window every day (14:00 New York in winter). Printed at the zone's standard
 * time (utcWindow), as the maintenance window is: it stays put all year and moves one local hour later in summer.
 */
export function rdsBackupWindow(schedule: Tier["schedule"], timeZone: string): string {
  const w = schedule.workHoursOnly;
  return utcWindow(w ? hhmmOf(minutesOf(w.start) + RDS_BACKUP_AFTER_WORK_START) : RDS_BACKUP_START, 60, timeZone);
}

/**
 * The plan's three rules, all starting at the same time: when they coincide (a Sunday, the 1st) AWS Backup
 * keeps one recovery point with the longest retention. Always-on tiers back up off-peak at 01:00; a
 * work-hours-only tier mid-way through its work hours, in its own time zone, while the database runs.
 */
export function backupRules(sizes: Tier["backups"], schedule: Tier["schedule"], timeZone: string): BackupRule[] {
  const retention = {
    daily: sizes.daily.keepDays,
    weekly: sizes.weekly.keepWeeks * 7,
    monthly: Math.ceil((sizes.monthly.keepMonths * 365) / 12),
  };
  const w = schedule.workHoursOnly;
  const at = w ? midpoint(w.start, w.end) : OFF_PEAK_BACKUP;
  const days = !w ? [...DAYS] : at < w.start ? endDays(w) : w.days;
  const weeklyDay: Day = w ? DAYS.find((d) => days.includes(d))! : "SUN";
  const [h, m] = at.split(":").map(Number);
  const rule = (ruleName: BackupRule["ruleName"], cron: string, deleteAfterDays: number): BackupRule => ({
    ruleName,
    schedule: cron,
    scheduleExpressionTimezone: timeZone,
    deleteAfterDays,
  });
  return [
    rule("daily", schedulerCron(at, days), retention.daily),
    rule("weekly", schedulerCron(at, [weeklyDay]), retention.weekly),
    // Work-hours-only: the first <work day> of the month ("2#1" = first Monday), never a day the environment is off.
    rule("monthly", w ? `cron(${m} ${h} ? * ${EVENTBRIDGE_DAY[weeklyDay]}#1 *)` : `cron(${m} ${h} 1 * ? *)`, retention.monthly),
  ];
}
