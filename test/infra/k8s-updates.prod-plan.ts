// Fields the Kubernetes API server refuses to change on an existing object, where the program's value depends on the
// tier, so that `pulumi config set agent-stack:tier <t>` (or an override) on a running stack changes them. The provider
// replaces an object only for the fields its diff.go lists (pulumi-kubernetes provider/pkg/provider/diff.go `forceNew`):
// any other immutable field goes out as an update, which the API server refuses; a listed one makes it delete the named
// object, then create it again (provider.go Diff `deleteBeforeReplace`, a fixed name cannot exist twice). Dev's plan and
// prod's stand for the two sides of such a change.
import assert from "node:assert/strict";
import { test } from "node:test";
import { inputs, ofType } from "../support/plan.ts";
import { stackPlan } from "../support/stack-plan.ts";

const plans = { dev: await stackPlan("dev"), prod: await stackPlan("prod") };
const STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass";

test("a StorageClass is replaced when its reclaim policy changes with the tier, not updated (which the API refuses)", () => {
  // kubernetes pkg/apis/storage/validation ValidateStorageClassUpdate: "updates to reclaimPolicy are forbidden", and
  // volumeBindingMode is immutable; diff.go replaces a StorageClass for .parameters and .provisioner only.
  const policies = (stack: keyof typeof plans) => ofType(plans[stack], STORAGE_CLASS).map((c) => inputs(c).reclaimPolicy);
  assert.notDeepEqual(policies("dev"), policies("prod"), "dev's classes delete their volumes, the other tiers' keep them");
  for (const [stack, plan] of Object.entries(plans))
    for (const c of ofType(plan, STORAGE_CLASS)) {
      assert.deepEqual(
        [...(c.options.replaceOnChanges ?? [])].sort(),
        ["reclaimPolicy", "volumeBindingMode"],
        `${stack} ${c.name}`,
      );
      assert.equal(c.options.deleteBeforeReplace, true, `${stack} ${c.name}: its name is fixed`);
    }
});
