// Day-two replacements on the prod plan: inputs a later `pulumi up` can change that AWS cannot change in place
// (ForceNew in terraform-provider-aws, which @pulumi/aws bridges), on resources Pulumi would otherwise create anew before
// deleting the old one. The mocks accept any replacement; these checks hold the program to what AWS does not.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration";

test("the Backup Vault Lock is replaced delete-first: created first, the old lock's delete would remove the new one", async () => {
  // internal/service/backup/vault_lock_configuration.go: no Update, every argument ForceNew, id = the vault's name;
  // Create is PutBackupVaultLockConfiguration (overwrites), Delete DeleteBackupVaultLockConfiguration (of the vault).
  const lock = one(plan, LOCK);
  const compliance = await runPlan({ stack: "prod", config: { "agent-stack:backupVaultLock": "compliance" } });
  const retention = await runPlan({
    stack: "prod",
    config: { "agent-stack:overrides": JSON.stringify({ backups: { monthly: { keepMonths: 24 } } }) },
  });
  // What a user changes: the mode (changeable_for_days) and the retention (min/max_retention_days), all ForceNew.
  assert.equal(inputs(lock).changeableForDays, undefined);
  assert.equal(inputs(one(compliance, LOCK)).changeableForDays, 3);
  assert.notEqual(inputs(one(retention, LOCK)).maxRetentionDays, inputs(lock).maxRetentionDays);
  for (const p of [plan, compliance, retention]) {
    const { options } = one(p, LOCK);
    assert.equal(options.deleteBeforeReplace, true);
    assert.equal(options.protect, true, "outside dev: pulumi up refuses the replacement until the lock is unprotected");
  }
});
