// Restore path as code: config restore.rdsSnapshotId creates the database from that snapshot.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, one } from "../support/plan.ts";

const SNAPSHOT = "awsbackup:job-0123456789abcdef";
const plan = await runPlan({ stack: "prod", config: { "agent-stack:restore": JSON.stringify({ rdsSnapshotId: SNAPSHOT }) } });
const db = inputs(one(plan, "aws:rds/instance:Instance", "database"));

test("the database is created from the snapshot, which brings its own name and master user", () => {
  assert.equal(db.snapshotIdentifier, SNAPSHOT);
  assert.equal(db.dbName, undefined);
  assert.equal(db.username, undefined);
});

test("the restored database keeps its identifier, encryption and protection, and stays in the backup plan", () => {
  assert.equal(db.identifier, "agent-stack-prod");
  assert.equal(db.storageEncrypted, true);
  assert.equal(db.kmsKeyId, "arn:aws:mock:us-east-1:123456789012:Key/data");
  assert.equal(db.deletionProtection, true);
  assert.equal(one(plan, "aws:rds/instance:Instance", "database").options.protect, true);
  const [tag] = inputs(one(plan, "aws:backup/selection:Selection")).selectionTags;
  assert.equal(db.tags[tag.key], tag.value);
  assert.ok(db.backupRetentionPeriod > 0, "point-in-time recovery stays on");
});
