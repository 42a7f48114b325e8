// `pulumi destroy` of a dev stack: what the engine deletes in which order (it deletes a resource only once everything
// depending on it is gone: pulumi pkg/resource/deploy/step_generator.go ScheduleDeletes, by dependsOn, property
// dependencies, parent and provider).
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { ofType, one } from "../support/plan.ts";

const plan = await stackPlan("dev");

test("each IRSA add-on depends on its role's policy attachment, so destroy detaches the policy after the add-on", () => {
  // Without it nothing ordered the two, and the same deletion step detached AmazonEBSCSIDriverPolicy while the CSI
  // controller was still deleting the volumes of the claims the namespaces had just released.
  for (const [addon, role] of [
    ["cluster-aws-ebs-csi-driver", "cluster-ebs-csi"],
    ["cluster-vpc-cni", "cluster-vpc-cni"],
  ]) {
    const attachments = ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").filter((a) =>
      a.name.startsWith(`${role}-`),
    );
    assert.equal(attachments.length, 1, `${role}: one managed policy`);
    const [policy] = attachments;
    assert.ok(one(plan, "aws:eks/addon:Addon", addon).dependsOn?.includes(policy.urn), `${addon} waits for ${policy.name}`);
  }
});
