// Backups of the dev stack: the same retention, taken while dev is up (it is off at night and at weekends),
// and everything removable with the stack.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { TIERS } from "../../infra/tiers.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("dev");
const tier = TIERS.dev;

test("AWS Backup runs mid-way through work hours on work days, keeping 7 days / 4 weeks / 12 months", () => {
  const rules = inputs(one(plan, "aws:backup/plan:Plan")).rules;
  assert.deepEqual(
    rules.map((r: any) => [r.ruleName, r.schedule, r.scheduleExpressionTimezone, r.lifecycle.deleteAfter]),
    [
      ["daily", "cron(0 14 ? * MON-FRI *)", "America/New_York", 7],
      ["weekly", "cron(0 14 ? * MON *)", "America/New_York", 28],
      ["monthly", "cron(0 14 ? * 2#1 *)", "America/New_York", 365],
    ],
  );
});

test("the Qdrant snapshot runs weekly, inside work hours", () => {
  const job = inputs(one(plan, "kubernetes:batch/v1:CronJob", "qdrant-snapshot"));
  assert.equal(job.spec.schedule, tier.backups.qdrantSnapshotCron);
  const [minute, hour, dom, month, dow] = job.spec.schedule.split(" ");
  assert.deepEqual([dom, month], ["*", "*"]);
  assert.match(dow, /^[1-5]$/, "one work day a week");
  assert.ok(Number(hour) >= 8 && Number(hour) < 20 && Number(minute) < 60);
  const env = job.spec.jobTemplate.spec.template.spec.containers[0].env;
  assert.equal(env.find((e: any) => e.name === "QDRANT_NODES").value.split(" ").length, tier.qdrant.replicas);
});

test("bucket and vault go with the stack", () => {
  const bucket = one(plan, "aws:s3/bucket:Bucket", "backups-bucket");
  assert.equal(inputs(bucket).forceDestroy, true);
  assert.equal(bucket.options.protect, undefined);
  const vault = one(plan, "aws:backup/vault:Vault");
  assert.equal(inputs(vault).forceDestroy, true);
  assert.equal(vault.options.protect, undefined);
  assert.equal(ofType(plan, "aws:backup/vaultLockConfiguration:VaultLockConfiguration").length, 0, "dev: no vault lock");
  const [rule] = inputs(one(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "backups-bucket")).rules;
  assert.deepEqual(
    [rule.transitions[0].days, rule.expiration.days],
    [tier.backups.glacierAfterDays, tier.backups.expireAfterDays],
  );
});

test("the database is in the backup selection even though it is stopped at night", () => {
  const [tag] = inputs(one(plan, "aws:backup/selection:Selection")).selectionTags;
  assert.equal(inputs(one(plan, "aws:rds/instance:Instance")).tags[tag.key], tag.value);
});
