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
const STATEFUL_SET = "kubernetes:apps/v1:StatefulSet";

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

test("a StatefulSet replaced for its volume claims (size from the tier) orphans its pods, which the new one adopts", () => {
  // pkg/apis/apps/validation ValidateStatefulSetUpdate forbids changing volumeClaimTemplates; diff.go replaces the
  // StatefulSet for it, and the provider deletes with foreground propagation unless the object says otherwise
  // (pulumi-kubernetes metadata/overrides.go DeletionPropagation): every Qdrant peer went down at once.
  const claims = (stack: keyof typeof plans) =>
    ofType(plans[stack], STATEFUL_SET).flatMap((s) => inputs(s).spec.volumeClaimTemplates ?? []);
  assert.notDeepEqual(claims("dev"), claims("prod"), "the claim size follows the tier");
  for (const [stack, plan] of Object.entries(plans))
    for (const s of ofType(plan, STATEFUL_SET).filter((s) => inputs(s).spec.volumeClaimTemplates)) {
      const annotations = inputs(s).metadata.annotations ?? {};
      assert.equal(annotations["pulumi.com/deletionPropagationPolicy"], "orphan", `${stack} ${s.name}`);
    }
});
