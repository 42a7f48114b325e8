// Durability and registry policies, each called with a compliant and a violating resource.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  elasticacheSnapshotRetention,
  rdsBackupRetention,
  rdsDeletionProtection,
  rdsInBackupPlan,
  rdsMultiAz,
} from "../../policy/policies/durability.ts";
import { ecrImmutableTags, ecrScanOnPush } from "../../policy/policies/registry.ts";
import { check, messagesFor, resource } from "./support.ts";

const db = (inputs: Record<string, unknown>, name = "db") =>
  resource("aws:rds/instance:Instance", name, { engine: "postgres", identifier: `agent-${name}`, ...inputs });

test("rds-backup-retention: at least 7 days by default, configurable; replicas are skipped", () => {
  assert.deepEqual(check(rdsBackupRetention, [db({ backupRetentionPeriod: 7 })]), []);
  assert.match(check(rdsBackupRetention, [db({ backupRetentionPeriod: 3 })])[0].message, /3 days; at least 7/);
  assert.match(check(rdsBackupRetention, [db({})])[0].message, /not set/);
  assert.equal(check(rdsBackupRetention, [db({ backupRetentionPeriod: 7 })], { config: { minRetentionDays: 14 } }).length, 1);
  assert.deepEqual(check(rdsBackupRetention, [db({ replicateSourceDb: "agent-db" })]), []);
  // The minimum is a floor: a day short of it fails (6 of 7 passed when the comparison was off by one).
  assert.match(check(rdsBackupRetention, [db({ backupRetentionPeriod: 6 })])[0].message, /6 days; at least 7/);
  assert.equal(check(rdsBackupRetention, [db({ backupRetentionPeriod: 13 })], { config: { minRetentionDays: 14 } }).length, 1);
});

test("rds-deletion-protection: required outside dev, read from the provider's tier tag", () => {
  const unprotected = db({ deletionProtection: false, skipFinalSnapshot: true });
  assert.deepEqual(
    check(rdsDeletionProtection, [db({ deletionProtection: true, skipFinalSnapshot: false })], { tier: "medium" }),
    [],
  );
  const messages = check(rdsDeletionProtection, [unprotected], { tier: "medium" }).map((v) => v.message);
  assert.deepEqual(
    messages.map((m) => /deletion protection|skipFinalSnapshot/.exec(m)?.[0]),
    ["deletion protection", "skipFinalSnapshot"],
  );
  assert.deepEqual(check(rdsDeletionProtection, [unprotected], { tier: "dev" }), []);
  assert.equal(
    check(rdsDeletionProtection, [unprotected], { tier: "dev", config: { tier: "small" } }).length,
    2,
    "policy config tier wins",
  );
  assert.equal(
    check(rdsDeletionProtection, [unprotected], { tier: "small", config: { relaxedTiers: ["dev", "small"] } }).length,
    0,
  );
});

test("rds-multi-az: required outside dev; replicas are exempt", () => {
  assert.deepEqual(check(rdsMultiAz, [db({ multiAz: true })], { tier: "medium" }), []);
  assert.match(check(rdsMultiAz, [db({ multiAz: false })], { tier: "large" })[0].message, /tier large: single-AZ/);
  assert.deepEqual(check(rdsMultiAz, [db({ multiAz: false })], { tier: "dev" }), []);
  assert.deepEqual(check(rdsMultiAz, [db({ replicateSourceDb: "agent-db" })], { tier: "medium" }), []);
});

test("rds-in-backup-plan: a selection by tag (provider default tags included), condition or resource covers the database", () => {
  const primary = db({ tags: { backup: "agent-stack-prod" } });
  const replica = db({ replicateSourceDb: "agent-db" }, "replica");
  const selection = (inputs: Record<string, unknown>) =>
    resource("aws:backup/selection:Selection", "sel", { planId: "plan-id", iamRoleArn: "role", ...inputs });
  const byTag = selection({ selectionTags: [{ type: "STRINGEQUALS", key: "backup", value: "agent-stack-prod" }] });
  assert.deepEqual(check(rdsInBackupPlan, [primary, replica, byTag]), []);
  // The provider's defaultTags count: tier=medium comes from the AWS provider, not the instance.
  const byDefaultTag = selection({
    resources: ["*"],
    conditions: [{ stringEquals: [{ key: "aws:ResourceTag/tier", value: "medium" }] }],
  });
  assert.deepEqual(check(rdsInBackupPlan, [primary, byDefaultTag]), []);
  const byArn = selection({ resources: ["arn:aws:rds:us-east-1:123456789012:db:agent-*"] });
  assert.deepEqual(check(rdsInBackupPlan, [primary, byArn]), []);

  const wrongTag = selection({ selectionTags: [{ type: "STRINGEQUALS", key: "backup", value: "other" }] });
  const violations = check(rdsInBackupPlan, [primary, replica, wrongTag]);
  assert.equal(violations.length, 1);
  assert.match(messagesFor(violations, primary)[0], /in no AWS Backup selection \(its tags: .*backup=agent-stack-prod/);
  const failedCondition = selection({
    resources: ["*"],
    conditions: [{ stringEquals: [{ key: "aws:ResourceTag/tier", value: "large" }] }],
  });
  assert.equal(check(rdsInBackupPlan, [primary, failedCondition]).length, 1);
  assert.equal(check(rdsInBackupPlan, [primary]).length, 1, "no selection at all");
});

test("rds-in-backup-plan: a selection's exclusions (notResources, StringNotLike conditions) leave the database out", () => {
  // AWS Backup assigns what resources/selectionTags pick, minus notResources, and only where every condition holds
  // (AWS Backup API, BackupSelection: NotResources, Conditions.StringNotLike).
  const primary = db({ tags: { backup: "agent-stack-prod", env: "prod" } });
  const selection = (inputs: Record<string, unknown>) =>
    resource("aws:backup/selection:Selection", "sel", { planId: "plan-id", iamRoleArn: "role", resources: ["*"], ...inputs });
  assert.equal(check(rdsInBackupPlan, [primary, selection({ notResources: ["agent-db"] })]).length, 1, "excluded by name");
  const notLike = (value: string) => selection({ conditions: [{ stringNotLikes: [{ key: "aws:ResourceTag/env", value }] }] });
  assert.equal(check(rdsInBackupPlan, [primary, notLike("pro*")]).length, 1, "its env tag is excluded");
  assert.deepEqual(check(rdsInBackupPlan, [primary, notLike("dev*")]), [], "another env is excluded, not this one");
});

test("elasticache-snapshot-retention: snapshots kept at least a day", () => {
  const cache = (snapshotRetentionLimit: unknown) =>
    resource("aws:elasticache/replicationGroup:ReplicationGroup", "c", { snapshotRetentionLimit });
  assert.deepEqual(check(elasticacheSnapshotRetention, [cache(1)]), []);
  assert.match(check(elasticacheSnapshotRetention, [cache(0)])[0].message, /is 0; at least 1/);
  assert.equal(check(elasticacheSnapshotRetention, [cache(undefined)]).length, 1);
  assert.equal(check(elasticacheSnapshotRetention, [cache(3)], { config: { minRetentionDays: 7 } }).length, 1);
});

test("ecr-scan-on-push (mandatory) and ecr-immutable-tags (advisory)", () => {
  const repo = (inputs: Record<string, unknown>) => resource("aws:ecr/repository:Repository", "api", { name: "api", ...inputs });
  assert.deepEqual(check(ecrScanOnPush, [repo({ imageScanningConfiguration: { scanOnPush: true } })]), []);
  assert.equal(check(ecrScanOnPush, [repo({})])[0].level, "mandatory");
  assert.deepEqual(check(ecrImmutableTags, [repo({ imageTagMutability: "IMMUTABLE" })]), []);
  const [mutable] = check(ecrImmutableTags, [repo({})]);
  assert.equal(mutable.level, "advisory");
  assert.match(mutable.message, /IMMUTABLE/);
});
