// With agent-stack:ci set, the stack creates the GitHub Actions roles the workflows assume.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await runPlan({ stack: "prod", config: { "agent-stack:ci": JSON.stringify({ githubRepo: "acme/agents" }) } });
const role = (name: string) => inputs(one(plan, "aws:iam/role:Role", name));
const trust = (name: string) => JSON.parse(role(name).assumeRolePolicy).Statement[0];

test("only the repository's prod environment may assume the deploy role", () => {
  const s = trust("ci-deploy");
  assert.equal(s.Action, "sts:AssumeRoleWithWebIdentity");
  assert.equal(s.Condition.StringEquals["token.actions.githubusercontent.com:sub"], "repo:acme/agents:environment:prod");
  assert.equal(s.Condition.StringEquals["token.actions.githubusercontent.com:aud"], "sts.amazonaws.com");
});

test("pull requests get a read-only preview role", () => {
  assert.equal(trust("ci-preview").Condition.StringEquals["token.actions.githubusercontent.com:sub"], "repo:acme/agents:pull_request");
  const attached = ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").find((a) => a.name === "ci-preview")!;
  assert.equal(inputs(attached).policyArn, "arn:aws:iam::aws:policy/ReadOnlyAccess");
});

test("both roles reach the cluster through EKS access entries, preview only in the app namespaces", () => {
  const assoc = ofType(plan, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation");
  const preview = inputs(assoc.find((a) => a.name === "ci-preview")!);
  assert.deepEqual(preview.accessScope, { type: "namespace", namespaces: ["agent", "monitoring"] });
  assert.match(inputs(assoc.find((a) => a.name === "ci-deploy")!).policyArn, /AmazonEKSClusterAdminPolicy$/);
  assert.equal(ofType(plan, "aws:eks/accessEntry:AccessEntry").length, 2);
});

test("the GitHub OIDC provider is created and the role ARNs are stack outputs", () => {
  assert.equal(inputs(one(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider", "ci-github")).url, "https://token.actions.githubusercontent.com");
  assert.ok(plan.outputs.ciDeployRoleArn);
  assert.ok(plan.outputs.ciPreviewRoleArn);
});
