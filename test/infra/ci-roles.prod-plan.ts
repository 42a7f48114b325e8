// With agent-stack:ci set, the stack creates the GitHub Actions roles the workflows assume: a deploy role with a
// scoped policy under a permissions boundary, which makes roles only under the workload boundary, a read-only preview
// role, and (in the owner stack only) the account-wide GitHub OIDC provider.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../../infra/plan/stackfile.ts";
import { INVOKE_TOKENS, mockArn } from "../../infra/plan/mocks.ts";
import { FORBIDDEN_POLICY_ARNS, ROLE_CHANGES_UNDER_BOUNDARY } from "../../infra/platform/ci-roles.ts";
import { configFailure } from "../support/config.ts";
import { allows, deniesOutright, namesAction, namesResource, type Statement } from "../support/iam.ts";
import { actionsNamed } from "../support/iam-reference.ts";
import { inputs, ofType, one, rolesOutsideWorkloadBoundary } from "../support/plan.ts";
import { stackPlan, WITH_CI_AND_FLOW_LOGS } from "../support/stack-plan.ts";

const ci = (extra: Record<string, unknown> = {}) => ({
  "agent-stack:ci": JSON.stringify({ githubRepo: "acme/agents", ...extra }),
});
// Flow logs on: their role is one more the program makes, under the workload boundary like the others.
const plan = await stackPlan("prod", WITH_CI_AND_FLOW_LOGS);
const role = (name: string) => inputs(one(plan, "aws:iam/role:Role", name));
const trust = (name: string) => JSON.parse(role(name).assumeRolePolicy).Statement[0];
const inlinePolicy = (name: string) => JSON.parse(inputs(one(plan, "aws:iam/rolePolicy:RolePolicy", name)).policy);
const GITHUB_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider";

test("only the repository's prod environment may assume the deploy role", () => {
  const s = trust("ci-deploy");
  assert.equal(s.Action, "sts:AssumeRoleWithWebIdentity");
  assert.equal(s.Condition.StringEquals["token.actions.githubusercontent.com:sub"], "repo:acme/agents:environment:prod");
  assert.equal(s.Condition.StringEquals["token.actions.githubusercontent.com:aud"], "sts.amazonaws.com");
});

test("no role carries AdministratorAccess or ReadOnlyAccess; the deploy role has a scoped policy and a permissions boundary", () => {
  const attached = ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").map((a) => inputs(a).policyArn);
  for (const arn of [...FORBIDDEN_POLICY_ARNS, "arn:aws:iam::aws:policy/ReadOnlyAccess"]) assert.ok(!attached.includes(arn), arn);
  const boundary = one(plan, "aws:iam/policy:Policy", "ci-deploy-boundary");
  assert.equal(role("ci-deploy").permissionsBoundary, mockArn(plan.region, boundary.type, boundary.name));
  const actions = inlinePolicy("ci-deploy").Statement.flatMap((s: any) => s.Action);
  assert.ok(!actions.includes("*") && !actions.includes("iam:*"), "no wildcard over everything or all of IAM");
  const denies = JSON.parse(inputs(boundary).policy).Statement.filter((s: any) => s.Effect === "Deny");
  const denied = (sid: string) => denies.find((s: any) => s.Sid === sid);
  assert.deepEqual(denied("NoAdministratorPolicies").Condition.ArnEquals["iam:PolicyARN"], FORBIDDEN_POLICY_ARNS);
  // Every stack's of the project: dev's deploy role, in an account it shares with prod, cannot re-trust prod's.
  assert.deepEqual(denied("NoChangesToTheCiRolesOrThisBoundary").Resource, [
    "arn:aws:iam::123456789012:role/agent-stack-*-ci-*",
    "arn:aws:iam::123456789012:policy/agent-stack-*-ci-deploy-boundary",
  ]);
  // No sts:* (AssumeRole of a role it made, under a deny-list boundary, was every non-IAM action): who it is, only.
  assert.deepEqual(
    actions.filter((a: string) => a.startsWith("sts:")),
    ["sts:GetCallerIdentity"],
  );
  assert.ok(denied("RecoveryPointsStay").Action.includes("backup:DeleteBackupVaultLockConfiguration"));
});

test("pull requests get a preview role that reads only this stack's resources and no secret value", () => {
  assert.equal(
    trust("ci-preview").Condition.StringEquals["token.actions.githubusercontent.com:sub"],
    "repo:acme/agents:pull_request",
  );
  const statements = inlinePolicy("ci-preview").Statement;
  const actions: string[] = statements.flatMap((s: any) => s.Action);
  for (const forbidden of ["secretsmanager:GetSecretValue", "kms:Decrypt", "ssm:GetParameters", "s3:GetObject"]) {
    assert.ok(!actions.includes(forbidden), forbidden);
  }
  assert.ok(
    actions.every((a) => /:(Get|Describe|List|View)/.test(a)),
    "read actions only",
  );
  const ownStack = statements.find((s: any) => s.Sid === "OwnStackReadOnly");
  assert.deepEqual(ownStack.Condition, { StringEquals: { "aws:ResourceTag/stack": "prod" } });
  assert.ok(ownStack.Action.includes("iam:GetRole"));
});

test("the preview role may call every data source the program reads, as a preview calls them", () => {
  // The IAM actions behind each invoke the mocks answer; getRegion, getPartition and getPolicyDocument call no AWS API.
  const needs: Record<string, string[]> = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": ["ec2:DescribeAvailabilityZones"],
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": ["ec2:DescribeInstanceTypeOfferings"],
    "aws:index/getCallerIdentity:getCallerIdentity": ["sts:GetCallerIdentity"],
    "aws:index/getRegion:getRegion": [],
    "aws:index/getPartition:getPartition": [],
    "aws:ssm/getParameter:getParameter": ["ssm:GetParameter"],
    "aws:eks/getAddonVersion:getAddonVersion": ["eks:DescribeAddonVersions"],
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": ["ecr:GetAuthorizationToken"],
    "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": ["iam:GetOpenIDConnectProvider"],
    "aws:iam/getPolicyDocument:getPolicyDocument": [],
    "tls:index/getCertificate:getCertificate": [], // over HTTPS from the OIDC issuer, not AWS
  };
  assert.deepEqual(Object.keys(needs).sort(), [...INVOKE_TOKENS].sort(), "a data source added to the program is listed here");
  const granted = new Set(inlinePolicy("ci-preview").Statement.flatMap((s: any) => s.Action));
  const missing = Object.entries(needs).flatMap(([token, actions]) =>
    actions.filter((a) => !granted.has(a)).map((a) => `${token}: ${a}`),
  );
  assert.deepEqual(missing, []);
});

/** The IAM service of an AWS resource type (`aws:<module>/<kind>:...`) whose Pulumi module is named otherwise. */
function iamService(module: string, kind: string): string {
  if (module === "cloudwatch" && kind.startsWith("log")) return "logs";
  if (module === "cloudwatch" && kind.startsWith("event")) return "events";
  return { lb: "elasticloadbalancing", alb: "elasticloadbalancing", costexplorer: "ce", vpc: "ec2" }[module] ?? module;
}

test("the deploy role may manage every kind of AWS resource the stack creates (its roles: see IAM_ROLE_ACTIONS)", () => {
  const statements = inlinePolicy("ci-deploy").Statement;
  const services = new Set(
    plan.resources
      .map((r) => /^aws:([^/]+)\/([^:]+):/.exec(r.type))
      .filter((m) => m !== null && m[1] !== "iam")
      .map((m) => iamService(m![1]!, m![2]!)),
  );
  assert.ok(services.has("wafv2") && services.has("ec2"), [...services].join(" "));
  // Any action of the service: `wafv2:*` was missing, and the web ACL's create was refused mid `pulumi up`.
  assert.deepEqual(
    [...services].filter((service) => !allows(statements, `${service}:CreateSomething`)),
    [],
  );
});

test("the deploy role's S3 is the stack's own buckets, not those of a stack whose name starts with this one's", () => {
  const puts = (inlinePolicy("ci-deploy").Statement as Statement[]).filter(
    (s) => s.Effect === "Allow" && namesAction(s, "s3:PutObject"),
  );
  const reaches = (arn: string) => puts.some((s) => namesResource(s, arn));
  const buckets: string[] = ofType(plan, "aws:s3/bucket:Bucket").map((b) => inputs(b).bucket);
  assert.equal(buckets.length, 2, buckets.join(" ")); // backups, and Loki's chunks in prod
  for (const bucket of buckets) {
    assert.ok(reaches(`arn:aws:s3:::${bucket}`) && reaches(`arn:aws:s3:::${bucket}/qdrant/x`), bucket);
    // `agent-stack-prod-*` reached stack prod-eu's buckets too.
    const neighbour = bucket.replace(/^agent-stack-prod-/, "agent-stack-prod-eu-");
    assert.ok(!reaches(`arn:aws:s3:::${neighbour}`) && !reaches(`arn:aws:s3:::${neighbour}/x`), neighbour);
  }
});

test("the deploy role may run the preflight deploy-stack.yml runs before pulumi up: every AWS call in it", () => {
  const statements = inlinePolicy("ci-deploy").Statement;
  // Each SDK command of infra/preflight/aws.ts and the IAM action AWS checks for it.
  const needs: Record<string, string> = {
    DescribeAddonVersions: "eks:DescribeAddonVersions",
    DescribeAvailabilityZones: "ec2:DescribeAvailabilityZones",
    DescribeCluster: "eks:DescribeCluster",
    DescribeDBInstances: "rds:DescribeDBInstances",
    DescribeInstanceTypeOfferings: "ec2:DescribeInstanceTypeOfferings",
    DescribeInstanceTypes: "ec2:DescribeInstanceTypes",
    DescribeSubnets: "ec2:DescribeSubnets",
    GetAWSDefaultServiceQuota: "servicequotas:GetAWSDefaultServiceQuota",
    GetBucketTagging: "s3:GetBucketTagging",
    GetCallerIdentity: "sts:GetCallerIdentity",
    GetServiceQuota: "servicequotas:GetServiceQuota",
    HeadBucket: "s3:ListBucket",
    ListHostedZones: "route53:ListHostedZones",
    ListOpenIDConnectProviderTags: "iam:ListOpenIDConnectProviderTags",
    ListOpenIDConnectProviders: "iam:ListOpenIDConnectProviders",
  };
  const source = readFileSync(join(REPO_ROOT, "infra/preflight/aws.ts"), "utf8");
  const commands = [...new Set([...source.matchAll(/new (\w+)Command\(/g)].map((m) => m[1]!))].sort();
  assert.deepEqual(commands, Object.keys(needs).sort(), "a call added to the preflight is listed here");
  assert.deepEqual(
    Object.values(needs).filter((action) => !allows(statements, action)),
    [],
  );
});

test("the preview role views the cluster (no Secrets, no exec); the deploy role administers it", () => {
  const assoc = ofType(plan, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation");
  assert.match(inputs(assoc.find((a) => a.name === "ci-preview")!).policyArn, /\/AmazonEKSViewPolicy$/);
  assert.match(inputs(assoc.find((a) => a.name === "ci-deploy")!).policyArn, /AmazonEKSClusterAdminPolicy$/);
  assert.equal(ofType(plan, "aws:eks/accessEntry:AccessEntry").length, 2);
});

test("a stack that does not own the GitHub OIDC provider looks it up and trusts its ARN (ci-roles-owner.prod-plan.ts: the owner)", () => {
  assert.deepEqual(
    ofType(plan, GITHUB_PROVIDER).map((r) => r.name),
    ["cluster-oidc"],
    "a non-owner creates none",
  );
  assert.equal(
    trust("ci-deploy").Principal.Federated,
    "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
  );
  assert.equal(
    trust("ci-preview").Principal.Federated,
    "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
  );
  assert.ok(plan.outputs.ciDeployRoleArn);
  assert.ok(plan.outputs.ciPreviewRoleArn);
});

test("owning the provider and naming its ARN at once is a config error naming both keys", () => {
  assert.match(
    configFailure({
      "aws:region": "us-east-1",
      "agent-stack:tier": "medium",
      ...ci({
        ownsOidcProvider: true,
        oidcProviderArn: "arn:aws:iam::210987654321:oidc-provider/token.actions.githubusercontent.com",
      }),
    }),
    /agent-stack:ci\.ownsOidcProvider and agent-stack:ci\.oidcProviderArn/,
  );
});

const workloadBoundary = () => one(plan, "aws:iam/policy:Policy", "workload-boundary");
const workloadBoundaryArn = () => mockArn(plan.region, workloadBoundary().type, workloadBoundary().name);
const deployBoundary = (): Statement[] =>
  JSON.parse(inputs(one(plan, "aws:iam/policy:Policy", "ci-deploy-boundary")).policy).Statement;

test("every role but the deploy role carries the workload boundary, through its ARN: the preview and flow-log roles too", () => {
  const roles = ofType(plan, "aws:iam/role:Role").map((r) => r.name);
  assert.ok(roles.includes("ci-preview") && roles.includes("network-flow-logs"), roles.join(" "));
  assert.deepEqual(rolesOutsideWorkloadBoundary(plan, ["ci-deploy"]), []);
  // The deploy role's boundary names the workload boundary too, so IAM has it before the deploy role may use it.
  assert.ok(one(plan, "aws:iam/policy:Policy", "ci-deploy-boundary").dependsOn?.includes(workloadBoundary().urn));
});

test("the deploy role creates and changes a role's permissions only under the workload boundary", () => {
  for (const [what, statements] of [
    ["inline policy", inlinePolicy("ci-deploy").Statement as Statement[]],
    ["boundary", deployBoundary()],
  ] as const) {
    const bounded = statements.filter((s) => s.Effect === "Allow" && [s.Action].flat().includes("iam:CreateRole"));
    assert.equal(bounded.length, 1, `${what}: one statement allows iam:CreateRole`);
    assert.deepEqual(bounded[0].Action, ROLE_CHANGES_UNDER_BOUNDARY, what);
    assert.deepEqual(bounded[0].Condition, { StringEquals: { "iam:PermissionsBoundary": workloadBoundaryArn() } }, what);
    // No other Allow (a wildcard such as "iam:*Role" or "iam:*Policy") grants them without that condition.
    const unconditioned = statements.filter((s) => !s.Condition);
    for (const action of [...ROLE_CHANGES_UNDER_BOUNDARY, "iam:DeleteRolePermissionsBoundary"]) {
      assert.ok(!allows(unconditioned, action), `${what}: ${action} unconditioned`);
    }
  }
  const denied = (sid: string) => deployBoundary().find((s) => s.Effect === "Deny" && s.Sid === sid)!;
  assert.deepEqual(denied("NoRoleOutsideTheWorkloadBoundary").Action, ROLE_CHANGES_UNDER_BOUNDARY);
  assert.deepEqual(denied("NoRoleOutsideTheWorkloadBoundary").Condition, {
    StringNotEquals: { "iam:PermissionsBoundary": workloadBoundaryArn() },
  });
  assert.ok(deniesOutright(deployBoundary(), "iam:DeleteRolePermissionsBoundary"));
  // Changing the workload boundary is an administrator's `pulumi up`, as changing ci-roles.ts is.
  assert.deepEqual(denied("NoChangesToTheWorkloadBoundary").Resource, [
    workloadBoundaryArn(),
    "arn:aws:iam::123456789012:policy/agent-stack-*-workload-boundary",
  ]);
  for (const action of [
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
  ]) {
    assert.ok(deniesOutright([denied("NoChangesToTheWorkloadBoundary")], action), action);
  }
});

/**
 * The IAM calls the provider makes for a role (terraform-provider-aws internal/service/iam/role.go: resourceRoleCreate,
 * resourceRoleRead, resourceRoleUpdate by changed argument, deleteRole). Each one the deploy role lacks fails `pulumi up`
 * midway, where the mocks never do: a changed description was UpdateRoleDescription, refused.
 */
const PROVIDER_ROLE_CALLS = {
  create: ["iam:CreateRole", "iam:TagRole", "iam:GetRole"],
  read: ["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies"],
  assumeRolePolicy: ["iam:UpdateAssumeRolePolicy"],
  description: ["iam:UpdateRoleDescription"],
  maxSessionDuration: ["iam:UpdateRole"],
  permissionsBoundary: ["iam:PutRolePermissionsBoundary"],
  tags: ["iam:TagRole", "iam:UntagRole"],
  policies: ["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy"],
  // Its policies go first too (ListAttachedRolePolicies, DetachRolePolicy, ...): the rows above have them.
  delete: ["iam:ListInstanceProfilesForRole", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteRole"],
};

test("the deploy role may make every call the provider makes to create, change and delete a role", () => {
  const policy = inlinePolicy("ci-deploy").Statement as Statement[];
  // The stack's roles are named by Pulumi (`cluster-node-1a2b3c4`): a deny of named ARNs (the CI roles') is not theirs.
  const anyRoleDenies = deployBoundary().filter((s) => s.Resource === "*");
  const missing = Object.entries(PROVIDER_ROLE_CALLS).flatMap(([change, actions]) =>
    actions
      .filter((a) => !allows(policy, a) || !allows(deployBoundary(), a) || deniesOutright(anyRoleDenies, a))
      .map((a) => `${change}: ${a}`),
  );
  assert.deepEqual(missing, []);
  // Removing a boundary (the provider's call when permissionsBoundary is unset) stays refused, by design.
  assert.ok(deniesOutright(deployBoundary(), "iam:DeleteRolePermissionsBoundary"));
});

test("a role the deploy role makes cannot escalate: what the deploy role may give it, the workload boundary takes back", async () => {
  const boundary: Statement[] = JSON.parse(inputs(workloadBoundary()).policy).Statement;
  const deploy = [...(inlinePolicy("ci-deploy").Statement as Statement[]), ...deployBoundary()];
  // What a role made with a broad inline policy ("*") would try: more roles and policies, its own boundary off, acting
  // through an unbounded role, credentials, and the backups the deploy role may not delete.
  const escalations = [
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:CreateUser",
    "iam:CreateAccessKey",
    "iam:TagRole",
    "organizations:LeaveOrganization",
    "backup:DeleteRecoveryPoint",
    "backup:UpdateRecoveryPointLifecycle",
    "backup:DeleteBackupVault",
    "backup:DeleteBackupVaultLockConfiguration",
  ];
  const denied = (action: string) =>
    deniesOutright(boundary, action) || (action.startsWith("iam:Create") && isCreateDenied(boundary));
  assert.deepEqual(
    escalations.filter((a) => !denied(a)),
    [],
  );
  // Every IAM action the deploy role has, reads and service-linked roles aside, is one the boundary denies; a wildcard
  // of its policy ("iam:*PolicyVersion") stands for each action of IAM's it matches.
  const iamActions = (inlinePolicy("ci-deploy").Statement as Statement[])
    .flatMap((s) => [s.Action].flat())
    .filter((a) => a.startsWith("iam:"));
  const iamWrites = [...new Set((await Promise.all(iamActions.map(actionsNamed))).flat())].filter(
    (a) => !/^iam:(Get|List|Generate|Simulate)/.test(a) && a !== "iam:CreateServiceLinkedRole",
  );
  assert.ok(iamWrites.includes("iam:CreateRole") && iamWrites.includes("iam:SetDefaultPolicyVersion"), iamWrites.join(" "));
  assert.deepEqual(
    iamWrites.filter((a) => !denied(a)),
    [],
  );
  // The vault's key and the data key: disabled by no role, as the deploy role's own boundary says.
  const key = boundary.find((s) => s.Sid === "KeptKeysStay")!;
  assert.ok(["kms:DisableKey", "kms:ScheduleKeyDeletion"].every((a) => [key.Action].flat().includes(a)));
  assert.deepEqual(
    key,
    deployBoundary().find((s) => s.Sid === "KeptKeysStay"),
  );
  // Nor stripped of the tag that deny finds it by (then deleted like any key).
  const tag = boundary.find((s) => s.Sid === "KeptKeysKeepTheirTag")!;
  assert.deepEqual([tag.Action].flat().sort(), ["kms:TagResource", "kms:UntagResource"]);
  assert.deepEqual(
    tag,
    deployBoundary().find((s) => s.Sid === "KeptKeysKeepTheirTag"),
  );
  assert.ok(allows(deploy, "iam:CreateRole"), "the deploy role still creates roles (under the boundary)");
});

/** The workload boundary denies iam:Create* to every request without iam:AWSServiceName: all but CreateServiceLinkedRole. */
function isCreateDenied(boundary: Statement[]): boolean {
  const s = boundary.find((x) => x.Sid === "NoIamCreatesButServiceLinkedRoles");
  return (
    s?.Effect === "Deny" && s.Action === "iam:Create*" && JSON.stringify(s.Condition) === '{"Null":{"iam:AWSServiceName":"true"}}'
  );
}

test("AWS's size limits, which the mocks do not check: boundaries 6,144 characters, a role's inline policies 10,240", () => {
  // IAM User Guide, "IAM and AWS STS quotas": managed policies 6,144, a role's inline policies together 10,240; white
  // space not counted. The mocks' ARNs are as long as AWS's within a few characters.
  const size = (json: string) => json.replace(/\s/g, "").length;
  for (const name of ["workload-boundary", "ci-deploy-boundary"]) {
    const n = size(inputs(one(plan, "aws:iam/policy:Policy", name)).policy);
    assert.ok(n <= 6144, `${name}: ${n}`);
  }
  const inline = ofType(plan, "aws:iam/rolePolicy:RolePolicy").filter((p) => p.name === "ci-deploy");
  assert.ok(inline.reduce((n, p) => n + size(inputs(p).policy), 0) <= 10240);
});
