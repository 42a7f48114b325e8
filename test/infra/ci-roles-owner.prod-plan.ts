// The one stack per account with agent-stack:ci.ownsOidcProvider creates the GitHub OIDC provider, protected.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, one } from "../support/plan.ts";

const plan = await runPlan({
  stack: "prod",
  config: { "agent-stack:ci": JSON.stringify({ githubRepo: "acme/agents", ownsOidcProvider: true }) },
});

test("the owner creates the provider, protected, and its roles trust it", () => {
  const provider = one(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider", "ci-github");
  assert.equal(inputs(provider).url, "https://token.actions.githubusercontent.com");
  assert.deepEqual(inputs(provider).clientIdLists, ["sts.amazonaws.com"]);
  assert.equal(provider.options.protect, true);
  const trust = JSON.parse(inputs(one(plan, "aws:iam/role:Role", "ci-deploy")).assumeRolePolicy).Statement[0];
  assert.equal(trust.Principal.Federated, `arn:aws:mock:us-east-1:123456789012:OpenIdConnectProvider/${provider.name}`);
});
