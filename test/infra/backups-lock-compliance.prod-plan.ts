// agent-stack:backupVaultLock=compliance: the lock becomes immutable after its cooling-off days.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { VAULT_LOCK_COOLING_OFF_DAYS } from "../../infra/platform/backups.ts";
import { configFailure } from "../support/config.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await runPlan({ stack: "prod", config: { "agent-stack:backupVaultLock": "compliance" } });

test("compliance mode sets changeableForDays (3, the AWS minimum)", () => {
  assert.equal(VAULT_LOCK_COOLING_OFF_DAYS, 3);
  assert.equal(inputs(one(plan, "aws:backup/vaultLockConfiguration:VaultLockConfiguration")).changeableForDays, 3);
});

test("an unknown lock mode names the key and the allowed values", () => {
  assert.equal(
    configFailure({ "aws:region": "us-east-1", "agent-stack:tier": "medium", "agent-stack:backupVaultLock": "strict" }),
    'agent-stack:backupVaultLock: "strict" is not allowed; allowed: governance, compliance, off',
  );
});
