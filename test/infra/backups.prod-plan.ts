// Backups of the prod stack under mocks: AWS Backup vault, plan and tag selection; the S3 backup bucket;
// the Qdrant snapshot CronJob and its IRSA role; RDS and ElastiCache's own backups.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { TIERS } from "../../infra/tiers.ts";
import { hhmmOf, localTime, minutesOf } from "../../infra/time.ts";
import { namesAction, namesResource, type Statement } from "../support/iam.ts";
import { inputs, irsaSubject, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const tier = TIERS.medium;
const dataKeyArn = "arn:aws:mock:us-east-1:123456789012:Key/data";
const bucketArn = `arn:aws:mock:us-east-1:123456789012:Bucket/${one(plan, "aws:s3/bucket:Bucket", "backups-bucket").name}`;

test("the vault has its own protected, rotated KMS key, not the data key, and is protected itself", () => {
  const vault = one(plan, "aws:backup/vault:Vault");
  const key = one(plan, "aws:kms/key:Key", "backups-vault-key");
  assert.equal(inputs(vault).kmsKeyArn, `arn:aws:mock:us-east-1:123456789012:Key/${key.name}`);
  assert.notEqual(inputs(vault).kmsKeyArn, dataKeyArn);
  assert.deepEqual([key.options.protect, inputs(key).enableKeyRotation, inputs(key).deletionWindowInDays], [true, true, 30]);
  assert.equal(inputs(key).tags.purpose, "backup-vault");
  assert.equal(inputs(vault).forceDestroy, false);
  assert.equal(vault.options.protect, true);
});

test("the data key, which RDS recovery points and the Qdrant snapshots keep, is protected and kept from every role", () => {
  // AWS Backup keeps an RDS recovery point under its source's key: the vault's own key does not cover it.
  const key = one(plan, "aws:kms/key:Key", "data");
  assert.equal(inputs(one(plan, "aws:rds/instance:Instance", "database")).kmsKeyId, dataKeyArn);
  assert.equal(key.options.protect, true);
  const stays = (policy: string) =>
    (JSON.parse(policy).Statement as { Sid: string; Condition?: any }[]).find((st) => st.Sid === "KeptKeysStay");
  for (const name of ["workload-boundary", "ci-deploy-boundary"]) {
    const boundary = ofType(plan, "aws:iam/policy:Policy").find((p) => p.name.endsWith(name));
    if (!boundary) continue; // the CI roles are made only with agent-stack:ci (ci-roles.prod-plan.ts)
    const kept = [stays(inputs(boundary).policy)?.Condition.StringEquals["aws:ResourceTag/purpose"]].flat();
    assert.ok(kept.includes(inputs(key).tags.purpose) && kept.includes("backup-vault"), `${name}: ${kept}`);
  }
});

test("no role may delete the Qdrant snapshots or RDS's retained backups; the snapshots leave by the bucket's lifecycle alone", () => {
  const boundary = JSON.parse(inputs(one(plan, "aws:iam/policy:Policy", "workload-boundary")).policy).Statement as Statement[];
  const denied = (action: string, arn: string) =>
    boundary.some((st) => st.Effect === "Deny" && namesAction(st, action) && namesResource(st, arn));
  const bucket = `arn:aws:s3:::${inputs(one(plan, "aws:s3/bucket:Bucket", "backups-bucket")).bucket}`;
  // Nor through the bucket: a lifecycle rewritten to expire them, or a policy granting another account the deletes.
  const bucketActions = ["s3:PutBucketVersioning", "s3:DeleteBucket", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy"];
  for (const action of bucketActions) assert.ok(denied(action, bucket), action);
  for (const action of ["s3:DeleteObject", "s3:DeleteObjectVersion"]) assert.ok(denied(action, `${bucket}/qdrant/x`), action);
  // The point-in-time history RDS keeps after the instance (deleteAutomatedBackups: false) stays too.
  assert.ok(denied("rds:DeleteDBInstanceAutomatedBackup", "arn:aws:rds:us-east-1:123456789012:auto-backup:ab-x"));
  assert.ok(!denied("s3:PutObject", `${bucket}/qdrant/2026-01-01/x`), "the snapshot job still puts");
  // Not Loki's bucket, whose compactor deletes: here, nor a stack named x-backups-y's.
  const logs = `arn:aws:s3:::${inputs(one(plan, "aws:s3/bucket:Bucket", "observability-logs")).bucket}`;
  assert.ok(!denied("s3:DeleteObject", `${logs}/chunks/x`), logs);
  assert.ok(!denied("s3:DeleteObject", "arn:aws:s3:::agent-stack-x-backups-y-logs-123456789012/chunks/x"));
});

test("Backup Vault Lock in governance mode keeps recovery points for the shortest rule's retention", () => {
  const lock = one(plan, "aws:backup/vaultLockConfiguration:VaultLockConfiguration");
  assert.equal(inputs(lock).backupVaultName, inputs(one(plan, "aws:backup/vault:Vault")).name);
  assert.equal(inputs(lock).changeableForDays, undefined, "governance mode: no changeableForDays");
  assert.deepEqual([inputs(lock).minRetentionDays, inputs(lock).maxRetentionDays], [7, 365]);
  assert.equal(lock.options.protect, true);
});

test("the plan keeps 7 daily, 4 weekly and 12 monthly recovery points, started off-peak (01:00 in the stack's zone, New York)", () => {
  const plan_ = inputs(one(plan, "aws:backup/plan:Plan"));
  const vaultName = inputs(one(plan, "aws:backup/vault:Vault")).name;
  assert.deepEqual(
    plan_.rules.map((r: any) => [
      r.ruleName,
      r.schedule,
      r.scheduleExpressionTimezone,
      r.lifecycle.deleteAfter,
      r.targetVaultName,
    ]),
    [
      ["daily", "cron(0 1 * * ? *)", "America/New_York", 7, vaultName],
      ["weekly", "cron(0 1 ? * SUN *)", "America/New_York", 28, vaultName],
      ["monthly", "cron(0 1 1 * ? *)", "America/New_York", 365, vaultName],
    ],
  );
  for (const r of plan_.rules) assert.ok(r.completionWindow > r.startWindow, "a job must be able to finish after it starts");
});

test("the selection takes every resource carrying the database's backup tag, with AWS Backup's role", () => {
  const selection = inputs(one(plan, "aws:backup/selection:Selection"));
  const dbTags = inputs(one(plan, "aws:rds/instance:Instance", "database")).tags;
  assert.equal(selection.selectionTags.length, 1);
  const [tag] = selection.selectionTags;
  assert.equal(tag.type, "STRINGEQUALS");
  assert.equal(dbTags[tag.key], tag.value, "the RDS instance is not in the backup selection");

  const roleName = (selection.iamRoleArn as string).split("/").pop()!;
  const trust = JSON.parse(inputs(one(plan, "aws:iam/role:Role", roleName)).assumeRolePolicy);
  assert.equal(trust.Statement[0].Principal.Service, "backup.amazonaws.com");
  const attached = ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    .filter((a) => inputs(a).role === roleName)
    .map((a) => inputs(a).policyArn);
  assert.deepEqual(attached.sort(), [
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
  ]);
  // Made before the role's policies are attached, AWS Backup could start a job with a role that may not back up yet.
  const waitsFor = one(plan, "aws:backup/selection:Selection").dependsOn ?? [];
  for (const a of ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").filter((x) => inputs(x).role === roleName))
    assert.ok(waitsFor.includes(a.urn), `the selection waits for ${a.name}`);
});

test("the Qdrant volumes carry the backup tag too", () => {
  const [tag] = inputs(one(plan, "aws:backup/selection:Selection")).selectionTags;
  const qdrant = inputs(one(plan, "kubernetes:apps/v1:StatefulSet", "qdrant"));
  const className = qdrant.spec.volumeClaimTemplates[0].spec.storageClassName;
  const storageClass = inputs(one(plan, "kubernetes:storage.k8s.io/v1:StorageClass", className));
  const tags = Object.entries(storageClass.parameters ?? {})
    .filter(([k]) => k.startsWith("tagSpecification_"))
    .map(([, v]) => v);
  assert.ok(tags.includes(`${tag.key}=${tag.value}`), `StorageClass ${className} does not tag volumes ${tag.key}=${tag.value}`);
});

test("RDS keeps point-in-time recovery on its own; ElastiCache keeps daily snapshots off-peak", () => {
  const db = inputs(one(plan, "aws:rds/instance:Instance", "database"));
  assert.equal(db.backupRetentionPeriod, tier.database.backupRetentionDays);
  assert.equal(db.copyTagsToSnapshot, true);
  // Its point-in-time history outlives the instance (the provider's default deletes it with it).
  assert.equal(db.deleteAutomatedBackups, false);
  const cache = inputs(one(plan, "aws:elasticache/replicationGroup:ReplicationGroup"));
  assert.equal(cache.snapshotRetentionLimit, tier.cache.snapshotRetentionDays);
  // 02:00-03:00 and Sunday 00:30-01:30 (the database: 04:00-05:00) in New York (standard time, UTC-5), printed in UTC
  // as AWS reads them.
  assert.equal(cache.snapshotWindow, "07:00-08:00");
  assert.equal(cache.maintenanceWindow, "sun:05:30-sun:06:30");
  assert.equal(db.maintenanceWindow, "sun:09:00-sun:10:00");
  // In winter and in summer (daylight time, an hour later), each maintenance ends by off-peak's end: from 04:30 and
  // 05:00 they ran into the first peak hour from March to November.
  const offPeakEnd = minutesOf(tier.schedule.offPeak!.end);
  for (const sunday of ["2026-01-04", "2026-07-05"]) {
    for (const window of [cache.maintenanceWindow, db.maintenanceWindow]) {
      const end = /-sun:(\d\d:\d\d)$/.exec(window)![1];
      const { hour, minute } = localTime("America/New_York", new Date(`${sunday}T${end}:00Z`));
      assert.ok(hour * 60 + minute <= offPeakEnd, `${window} ends at ${hhmmOf(hour * 60 + minute)} New York time on ${sunday}`);
    }
  }
});

test("the bucket is protected, versioned, KMS-encrypted, private and TLS-only", () => {
  const bucket = one(plan, "aws:s3/bucket:Bucket", "backups-bucket");
  assert.equal(bucket.options.protect, true);
  assert.equal(inputs(bucket).forceDestroy, false);
  assert.equal(inputs(bucket).bucket, "agent-stack-prod-backups-123456789012");
  const forBucket = (type: string) => inputs(one(plan, type, bucket.name));
  assert.equal(forBucket("aws:s3/bucketVersioning:BucketVersioning").versioningConfiguration.status, "Enabled");
  const sse = forBucket("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").rules[0];
  assert.deepEqual(sse.applyServerSideEncryptionByDefault, { sseAlgorithm: "aws:kms", kmsMasterKeyId: dataKeyArn });
  assert.equal(sse.bucketKeyEnabled, true, "one KMS data key per bucket, not a KMS request per object");
  const block = forBucket("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock");
  for (const key of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"])
    assert.equal(block[key], true, key);
  assert.equal(forBucket("aws:s3/bucketOwnershipControls:BucketOwnershipControls").rule.objectOwnership, "BucketOwnerEnforced");
  const [deny] = JSON.parse(forBucket("aws:s3/bucketPolicy:BucketPolicy").policy).Statement;
  assert.deepEqual([deny.Effect, deny.Action, deny.Condition], ["Deny", "s3:*", { Bool: { "aws:SecureTransport": "false" } }]);
  assert.deepEqual(deny.Resource, [bucketArn, `${bucketArn}/*`]);
  // One after the other: S3 may answer a policy put while the bucket's public access block is changing with 409
  // OperationAborted (a conflicting conditional operation).
  const policy = one(plan, "aws:s3/bucketPolicy:BucketPolicy", bucket.name);
  assert.ok(policy.dependsOn?.includes(one(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket.name).urn));
});

test("bucket objects move to Glacier and expire after the tier's days", () => {
  const [rule] = inputs(one(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "backups-bucket")).rules;
  assert.equal(rule.status, "Enabled");
  assert.deepEqual(rule.transitions, [{ days: tier.backups.glacierAfterDays, storageClass: "GLACIER" }]);
  assert.deepEqual(rule.expiration, { days: tier.backups.expireAfterDays });
  // Overwritten and deleted objects go after the shortest retention the plan promises (7 daily points), not later.
  assert.equal(rule.noncurrentVersionExpiration.noncurrentDays, tier.backups.daily.keepDays);
  // The parts of an upload cut off are billed until aborted: within the daily retention.
  assert.ok(rule.abortIncompleteMultipartUpload.daysAfterInitiation <= tier.backups.daily.keepDays);
  // Nor the delete markers the expiration leaves behind them (a rule of its own: S3 refuses it beside `days`).
  const markers = inputs(one(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "backups-bucket"))
    .rules[1];
  assert.deepEqual([markers.status, markers.expiration], ["Enabled", { expiredObjectDeleteMarker: true }]);
});

const snapshotJob = inputs(one(plan, "kubernetes:batch/v1:CronJob", "qdrant-snapshot"));
const snapshotPod = snapshotJob.spec.jobTemplate.spec.template.spec;
const env = Object.fromEntries(snapshotPod.containers[0].env.map((e: any) => [e.name, e.value ?? e.valueFrom]));

test("the Qdrant snapshot CronJob runs on the tier's schedule, one run at a time, with a pinned image", () => {
  assert.equal(snapshotJob.metadata.name, "qdrant-snapshot"); // the backup-freshness alert matches this name
  assert.equal(snapshotJob.metadata.namespace, "agent");
  assert.deepEqual([snapshotJob.spec.schedule, snapshotJob.spec.timeZone], [tier.backups.qdrantSnapshotCron, "America/New_York"]);
  assert.equal(snapshotJob.spec.concurrencyPolicy, "Forbid");
  assert.equal(snapshotPod.restartPolicy, "Never");
  assert.match(snapshotPod.containers[0].image, /^amazon\/aws-cli:\d+\.\d+\.\d+$/);
});

test("it snapshots every Qdrant node through the headless Service, with the API key from its Secret", () => {
  assert.equal(
    env.QDRANT_NODES,
    [0, 1, 2].map((i) => `qdrant-${i}=http://qdrant-${i}.qdrant-headless.agent.svc.cluster.local:6333`).join(" "),
  );
  assert.deepEqual(env.QDRANT_API_KEY, { secretKeyRef: { name: "qdrant-api-key", key: "api-key" } });
  assert.equal(env.S3_URI, "s3://agent-stack-prod-backups-123456789012/qdrant");
  assert.equal(snapshotJob.spec.jobTemplate.spec.template.metadata.labels["agent-stack/qdrant-client"], "true");
  const script = inputs(one(plan, "kubernetes:core/v1:ConfigMap", "qdrant-snapshot-script")).data["qdrant-snapshot.sh"];
  assert.match(script, /^#!\/bin\/bash/);
});

test("its ServiceAccount assumes an IRSA role that may only put objects under qdrant/", () => {
  assert.equal(snapshotPod.serviceAccountName, "qdrant-snapshot");
  const account = inputs(one(plan, "kubernetes:core/v1:ServiceAccount", "qdrant-snapshot"));
  const roleArn = account.metadata.annotations["eks.amazonaws.com/role-arn"] as string;
  const roleName = roleArn.split("/").pop()!;
  assert.equal(irsaSubject(one(plan, "aws:iam/role:Role", roleName)), "system:serviceaccount:agent:qdrant-snapshot");

  const policy = JSON.parse(inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", `${roleName}-inline`)).policy);
  const s3 = policy.Statement.filter((s: any) => [s.Action].flat().some((a: string) => a.startsWith("s3:")));
  assert.deepEqual(s3, [
    { Effect: "Allow", Action: ["s3:PutObject", "s3:AbortMultipartUpload"], Resource: `${bucketArn}/qdrant/*` },
  ]);
  const kms = policy.Statement.find((s: any) => [s.Action].flat().some((a: string) => a.startsWith("kms:")));
  assert.equal(kms.Resource, dataKeyArn);
  assert.deepEqual(kms.Condition, { StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" } });
  assert.equal(policy.Statement.length, 2);
});

test("restore handles are stack outputs", () => {
  assert.equal(plan.outputs.backupBucket, "agent-stack-prod-backups-123456789012");
  assert.equal(plan.outputs.backupVault, "agent-stack-prod");
  assert.equal(plan.outputs.dbInstanceId, "agent-stack-prod");
  assert.equal(plan.outputs.cacheReplicationGroupId, "agent-stack-prod");
});

test("Loki's log bucket in prod is private, KMS-encrypted and expires what Loki leaves behind", () => {
  const name = "observability-logs";
  const of = (type: string) => inputs(one(plan, type, name));
  assert.equal(of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").restrictPublicBuckets, true);
  assert.equal(
    of("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").rules[0]
      .applyServerSideEncryptionByDefault.sseAlgorithm,
    "aws:kms",
  );
  assert.equal(of("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").rules[0].expiration.days, 30 + 7);
  const role = inputs(one(plan, "aws:iam/role:Role", "observability-loki"));
  assert.match(role.assumeRolePolicy, /system:serviceaccount:monitoring:loki/);
  // The data key, which also encrypts the database, the cache and the secrets, only through S3.
  const kms = JSON.parse(inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", "observability-loki-inline")).policy).Statement.filter(
    (s: { Action: string[] }) => s.Action.some((a) => a.startsWith("kms:")),
  );
  assert.deepEqual(
    kms.map((s: any) => s.Condition),
    [{ StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" } }],
  );
});
