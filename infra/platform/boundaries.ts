// Permissions boundaries: the most a role can ever do, whatever policies it is given (IAM User Guide, "Permissions
// boundaries for IAM entities"). A stack has two, both declared from here and ci-roles.ts:
// - the workload boundary (this file, `<project>-<stack>-workload-boundary`): every role the program creates carries
//   it (node, control plane, IRSA, backup, scheduler, flow-log roles, and the CI preview role); the CI deploy role
//   may create or change a role only under it (ci-roles.ts), so a role it makes cannot reach further than this;
// - the deploy boundary (ci-roles.ts): the CI deploy role's own.
// Service-linked roles (AWSServiceRoleFor*, made by EKS, Auto Scaling, ELB, RDS, ElastiCache, Backup on first use, or
// by iam:CreateServiceLinkedRole) carry none: IAM refuses a boundary on them ("You cannot set the boundary for a
// service-linked role", PutRolePermissionsBoundary), their policies are AWS's and unmodifiable, and only their
// service can assume them. The program declares none, so the plan has none to check.
import * as aws from "@pulumi/aws";
import type * as pulumi from "@pulumi/pulumi";
import { stackBucketName, stackPrefix } from "../config.ts";

/**
 * KMS keys no role may disable, delete or re-police, found by this tag: the vault's key, and the data key, which RDS
 * recovery points and the Qdrant snapshots in S3 are also encrypted with (AWS Backup Developer Guide, "Encryption for
 * backups in AWS Backup": a resource type AWS Backup does not fully manage, as RDS, keeps its source's key). Disabled,
 * either made every backup of it unrestorable, under a vault lock too.
 */
export const KEPT_KEY_TAG = "purpose";
export const KEPT_KEYS = { vault: "backup-vault", data: "data" } as const;
const KEPT_KEY_VALUES = Object.values(KEPT_KEYS);

/** `<project>-<stack>-workload-boundary`: policy/policies/security.ts finds the boundary by this suffix. */
const WORKLOAD_BOUNDARY_SUFFIX = "-workload-boundary";
export const workloadBoundaryName = (prefix: string): string => `${prefix}${WORKLOAD_BOUNDARY_SUFFIX}`;

/**
 * Every IAM action that changes something: all of IAM but Get*, List*, Generate* (reports) and Simulate*, by the verbs
 * of the Service Authorization Reference's IAM table (Write, Permissions management and Tagging access levels). Create*
 * has a statement of its own (service-linked roles).
 */
export const IAM_CHANGES = [
  "iam:Accept*",
  "iam:Add*",
  "iam:Associate*",
  "iam:Attach*",
  "iam:Change*",
  "iam:Deactivate*",
  "iam:Delete*",
  "iam:Detach*",
  "iam:Disable*",
  "iam:Enable*",
  // Passing a role hands its permissions to a service: a bounded role could pass one without a boundary. No role of
  // this program passes one (the backup role's AWS policies pass roles only to EC2/EKS restores and GuardDuty scans,
  // neither used here; RDS and EBS restores pass none).
  "iam:PassRole",
  "iam:Put*",
  "iam:Reject*",
  "iam:Remove*",
  "iam:Reset*",
  "iam:Resync*",
  "iam:Send*",
  "iam:Set*",
  "iam:Tag*",
  "iam:Untag*",
  "iam:Update*",
  "iam:Upload*",
];

/**
 * Every stack's backups bucket of the project (config.ts stackBucketName). The account id as twelve `?` (one character
 * each): with `*`, the logs bucket of a stack named like `x-backups-y` matched too.
 */
const BACKUP_BUCKET = `arn:aws:s3:::${stackBucketName(stackPrefix("*"), "backups", "?".repeat(12))}`;

/**
 * Denied by both boundaries: recovery points, the vault and its lock, the Qdrant snapshots in the backups bucket, and
 * the keys of the data and its backups outlive any role.
 */
export const BACKUP_DENIES = [
  {
    Sid: "RecoveryPointsStay",
    Effect: "Deny",
    Action: [
      "backup:DeleteBackupVaultLockConfiguration",
      "backup:DeleteRecoveryPoint",
      "backup:UpdateRecoveryPointLifecycle",
      "backup:DeleteBackupVault",
      // The point-in-time history RDS keeps after its instance is deleted (database.ts deleteAutomatedBackups).
      "rds:DeleteDBInstanceAutomatedBackup",
    ],
    Resource: "*",
  },
  // The snapshots leave only by the bucket's lifecycle, which S3 applies itself: a delete by a role (a delete marker
  // too: the version behind it expires after the daily rule's days), versioning suspended, a lifecycle rewritten to
  // expire them (DeleteBucketLifecycle is PutLifecycleConfiguration's too) or a policy granting another account the
  // deletes would take them early. The snapshot job only puts; changing the bucket's versioning, lifecycle or policy,
  // or deleting it, is an administrator's `pulumi up` (README): IAM has no condition key for what they are set to.
  {
    Sid: "BackupObjectsStay",
    Effect: "Deny",
    Action: [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:DeleteBucket",
      "s3:PutBucketVersioning",
      "s3:PutLifecycleConfiguration",
      "s3:PutBucketPolicy",
    ],
    Resource: [BACKUP_BUCKET, `${BACKUP_BUCKET}/*`],
  },
  {
    Sid: "KeptKeysStay",
    Effect: "Deny",
    Action: ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy"],
    Resource: "*",
    Condition: { StringEquals: { [`aws:ResourceTag/${KEPT_KEY_TAG}`]: KEPT_KEY_VALUES } },
  },
  // The deny above finds a key by its tag: untagged, or tagged otherwise, it would be deleted like any key (review
  // of this change). A key's other tags (the provider's default tags) may still change.
  {
    Sid: "KeptKeysKeepTheirTag",
    Effect: "Deny",
    Action: ["kms:TagResource", "kms:UntagResource"],
    Resource: "*",
    Condition: {
      StringEquals: { [`aws:ResourceTag/${KEPT_KEY_TAG}`]: KEPT_KEY_VALUES },
      "ForAnyValue:StringEquals": { "aws:TagKeys": [KEPT_KEY_TAG] },
    },
  },
];

/**
 * The workload boundary's document: a deny-list, so it takes nothing the roles' own policies legitimately grant (a
 * boundary grants nothing by itself; what a role may do is what both allow). It denies every change to IAM (the CI
 * roles and both boundaries included: no role under it can make itself or another role more), but
 * iam:CreateServiceLinkedRole, which the ALB controller's policy and AmazonEKSClusterPolicy use (for ELB's); accounts
 * and organizations; and deleting backups or disabling their key.
 *
 * AWS, not the mocks, checks it: a managed policy is at most 6,144 characters, white space not counted (IAM User Guide,
 * "IAM and AWS STS quotas"; this one is about 1,200). `Null: true` on iam:AWSServiceName matches a request without that
 * key: every Create* but CreateServiceLinkedRole, the one IAM action that has it (Service Authorization Reference, IAM).
 */
export function workloadBoundaryDocument() {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "WhatTheRolesOwnPoliciesGrant", Effect: "Allow", Action: "*", Resource: "*" },
      { Sid: "NoIamChanges", Effect: "Deny", Action: IAM_CHANGES, Resource: "*" },
      {
        Sid: "NoIamCreatesButServiceLinkedRoles",
        Effect: "Deny",
        Action: "iam:Create*",
        Resource: "*",
        Condition: { Null: { "iam:AWSServiceName": "true" } },
      },
      { Sid: "NoAccountOrOrganizationChanges", Effect: "Deny", Action: ["organizations:*", "account:*"], Resource: "*" },
      ...BACKUP_DENIES,
    ],
  };
}

/**
 * The workload boundary of the stack. Roles name it through its `arn` output, never a name-built ARN: Pulumi then
 * creates it before them (IAM refuses a boundary that does not exist) and deletes it after them.
 */
export function workloadBoundary(prefix: string, opts: pulumi.CustomResourceOptions): aws.iam.Policy {
  return new aws.iam.Policy(
    "workload-boundary",
    {
      name: workloadBoundaryName(prefix),
      description: `Ceiling of every role of ${prefix} but the CI deploy role: no IAM changes, backups stay`,
      policy: JSON.stringify(workloadBoundaryDocument()),
    },
    opts,
  );
}
