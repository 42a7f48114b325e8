// The prod stack's workload boundary (infra/platform/boundaries.ts): every role carries it, and it takes nothing the
// roles' own policies grant.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WORKLOAD_BOUNDARY_SUFFIX } from "../../policy/policies/security.ts";
import { matchesPattern, namesAction, type Statement } from "../support/iam.ts";
import { inputs, ofType, one, rolesOutsideWorkloadBoundary } from "../support/plan.ts";
import { stackPlan } from "../support/stack-plan.ts";

const plan = await stackPlan("prod");
const boundary = one(plan, "aws:iam/policy:Policy", "workload-boundary");

test("prod: every role carries the workload boundary, named through the policy's ARN output", () => {
  assert.ok(ofType(plan, "aws:iam/role:Role").length >= 10);
  assert.deepEqual(rolesOutsideWorkloadBoundary(plan), []);
  assert.equal(inputs(boundary).name, "agent-stack-prod-workload-boundary");
  assert.ok(inputs(boundary).name.endsWith(WORKLOAD_BOUNDARY_SUFFIX), "the policy pack finds it by its suffix");
});

test("the workload boundary allows all and denies nothing the roles' inline policies grant but service-linked roles", () => {
  const statements: Statement[] = JSON.parse(inputs(boundary).policy).Statement;
  assert.deepEqual(
    statements.filter((s) => s.Effect === "Allow").map((s) => [s.Action, s.Resource, s.Condition]),
    [["*", "*", undefined]],
  );
  const granted = ofType(plan, "aws:iam/rolePolicy:RolePolicy")
    .flatMap((p) => JSON.parse(inputs(p).policy).Statement as Statement[])
    .filter((s) => s.Effect === "Allow")
    .flatMap((s) => [s.Action].flat().map((action) => ({ action, resources: [s.Resource].flat().map(String) })));
  assert.ok(granted.length > 20, granted.map((g) => g.action).join(" "));
  // A deny of some resources (the backups bucket's objects) takes a grant only where their resources meet: Loki's
  // s3:DeleteObject on its own bucket stays.
  const deniedGrant = ({ action, resources }: { action: string; resources: string[] }) =>
    statements.some(
      (s) =>
        s.Effect === "Deny" &&
        namesAction(s, action) &&
        [s.Resource].flat().some((denied) => resources.some((r) => matchesPattern(String(denied), r))),
    );
  // The ALB controller creates ELB's service-linked role, its request naming the service (iam:AWSServiceName): the
  // boundary's Create* deny spares exactly such requests. The AWS-managed policies the roles attach are not in the plan.
  assert.deepEqual([...new Set(granted.filter(deniedGrant).map((g) => g.action))], ["iam:CreateServiceLinkedRole"]);
  assert.deepEqual(statements.find((s) => namesAction(s, "iam:CreateServiceLinkedRole") && s.Effect === "Deny")?.Condition, {
    Null: { "iam:AWSServiceName": "true" },
  });
});
