// `pulumi destroy` of a dev stack: what the engine deletes in which order (it deletes a resource only once everything
// depending on it is gone: pulumi pkg/resource/deploy/step_generator.go ScheduleDeletes, by dependsOn, property
// dependencies, parent and provider), and what the README's "Destroying a stack" says is left behind.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("dev");
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

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

test("README 'Destroying a stack' finds the volumes left behind by the tags the EBS CSI driver puts on them", () => {
  const section = readme.split(/^### Destroying a stack\n/m)[1]?.split(/^##/m)[0];
  assert.ok(section, "README has a 'Destroying a stack' section");
  const addon = one(plan, "aws:eks/addon:Addon", "cluster-aws-ebs-csi-driver");
  const volumeTags: Record<string, string> = JSON.parse(inputs(addon).configurationValues).controller.extraVolumeTags;
  const filters = [...section.matchAll(/Name=tag:([\w./-]+),Values=([\w<>-]+)/g)].map((m) => [m[1], m[2]]);
  // The driver's own tag (aws-ebs-csi-driver pkg/cloud/cloud.go AwsEbsDriverTagKey "ebs.csi.aws.com/cluster", "true").
  assert.deepEqual(
    filters.find(([key]) => key === "ebs.csi.aws.com/cluster"),
    ["ebs.csi.aws.com/cluster", "true"],
  );
  const ours = filters.filter(([key]) => key !== "ebs.csi.aws.com/cluster");
  assert.ok(
    ours.some(([key]) => key === "stack"),
    "filtered by the stack",
  );
  for (const [key, value] of ours) {
    assert.ok(key in volumeTags, `the driver tags volumes with ${key} (extraVolumeTags)`);
    if (value !== "<stack>") assert.equal(value, volumeTags[key], `${key}=${value}`);
  }
  assert.match(section, /Name=status,Values=available/);
  // The RDS log group it names is the one RDS makes for this instance's exported logs.
  const db = inputs(one(plan, "aws:rds/instance:Instance"));
  assert.deepEqual(db.enabledCloudwatchLogsExports, ["postgresql"]);
  assert.equal(db.identifier, `agent-stack-${plan.stack}`);
  assert.match(section, /\/aws\/rds\/instance\/agent-stack-<stack>\/postgresql/);
});
