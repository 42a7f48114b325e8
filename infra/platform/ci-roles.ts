// GitHub Actions access for the delivery pipeline (.github/workflows, README "Delivery pipeline"):
// - deploy role: only this repository's `<stack>` environment can assume it; a scoped policy (the services the
//   program manages, no IAM users or access keys) under a permissions boundary that also forbids changing the
//   CI roles themselves, attaching administrator policies, and deleting backups or their lock and key; it creates
//   and changes roles only under the workload boundary (boundaries.ts), and cannot change or remove that boundary;
// - preview role (pull requests): read-only, scoped to this stack (tag `stack`), never a Secret value, and
//   view-only Kubernetes access (AmazonEKSViewPolicy excludes Secrets); it carries the workload boundary too;
// - the account's GitHub OIDC provider: created by exactly one owner stack, looked up (or named) by the others.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT, STACK_BUCKETS } from "../config.ts";
import { BACKUP_DENIES, workloadBoundaryName } from "./boundaries.ts";
import { eksClusterArn, webIdentityTrustPolicy } from "./iam.ts";
import { stackBucket } from "./private-bucket.ts";

export const GITHUB_OIDC_HOST = "token.actions.githubusercontent.com";
export const GITHUB_OIDC_URL = `https://${GITHUB_OIDC_HOST}`;

export interface CiRolesArgs {
  /** owner/name of the GitHub repository. */
  githubRepo: string;
  stack: string;
  /** `<project>-<stack>`: names the roles and the boundary, and the S3 buckets the program creates. */
  prefix: string;
  clusterName: pulumi.Input<string>;
  accountId: pulumi.Input<string>;
  region: string;
  /** "create": this stack owns the account-wide provider; "lookup": find it by URL; else its ARN. */
  oidcProvider: "create" | "lookup" | string;
  /** The workload boundary's ARN (boundaries.ts): the only boundary the deploy role may give a role, and the preview role's. */
  workloadBoundaryArn: pulumi.Input<string>;
}

/** Services `pulumi up` manages for this program (infra/platform, infra/workloads); ci-roles.prod-plan.ts checks the plans'. */
const MANAGED_SERVICES = [
  "acm",
  "autoscaling",
  "backup",
  "backup-storage",
  "budgets",
  "ce",
  "ec2",
  "ecr",
  "eks",
  "elasticache",
  "elasticloadbalancing",
  "events",
  "kms",
  "logs",
  "rds",
  "route53",
  "scheduler",
  "secretsmanager",
  "sns",
  "ssm",
  "wafv2",
];
/** What `npm run preflight` reads beyond those services (infra/preflight/aws.ts: the vCPU quotas). */
const PREFLIGHT_ACTIONS = ["servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"];
/**
 * IAM actions the program needs: roles, their policies, OIDC providers; no users, groups or access keys. Named one by
 * one where a wildcard would take in one of ROLE_CHANGES_UNDER_BOUNDARY ("iam:*Role" was CreateRole, "iam:*Policy"
 * AttachRolePolicy): those are allowed only under the workload boundary.
 */
const IAM_ROLE_ACTIONS = [
  "iam:GetRole",
  "iam:ListRoles",
  // The provider changes a role's description with UpdateRoleDescription, its session length with UpdateRole
  // (terraform-provider-aws internal/service/iam/role.go, resourceRoleUpdate).
  "iam:UpdateRole",
  "iam:UpdateRoleDescription",
  "iam:DeleteRole",
  "iam:TagRole",
  "iam:UntagRole",
  "iam:*RoleTags",
  "iam:PassRole",
  "iam:UpdateAssumeRolePolicy",
  "iam:GetRolePolicy",
  "iam:*RolePolicies",
  // Deleting a role, the provider first takes it out of any instance profile (role.go, deleteRoleInstanceProfiles).
  "iam:ListInstanceProfilesForRole",
  "iam:RemoveRoleFromInstanceProfile",
  "iam:CreatePolicy",
  "iam:GetPolicy",
  "iam:DeletePolicy",
  "iam:TagPolicy",
  "iam:UntagPolicy",
  "iam:*PolicyVersion",
  "iam:*PolicyVersions",
  "iam:ListPolicies",
  "iam:ListEntitiesForPolicy",
  "iam:*OpenIDConnectProvider*",
  "iam:ListOpenIDConnectProviders",
  "iam:CreateServiceLinkedRole",
  "iam:DeleteServiceLinkedRole",
  "iam:GetInstanceProfile",
];
/**
 * What gives a role permissions: allowed only when the role's boundary (in the request for CreateRole and
 * PutRolePermissionsBoundary, the role's current one for the rest) is the workload boundary. These are the role
 * actions for which the Service Authorization Reference (IAM) lists the condition key iam:PermissionsBoundary; the IAM
 * User Guide's "Delegating responsibility to others using permissions boundaries" conditions the same ones for users.
 * UpdateAssumeRolePolicy, TagRole and PassRole have no such key: see README "Deploy role" for what that leaves.
 */
export const ROLE_CHANGES_UNDER_BOUNDARY = [
  "iam:CreateRole",
  "iam:PutRolePermissionsBoundary",
  "iam:AttachRolePolicy",
  "iam:DetachRolePolicy",
  "iam:PutRolePolicy",
  "iam:DeleteRolePolicy",
];
/** Managed policies nothing this role creates may carry. */
export const FORBIDDEN_POLICY_ARNS = [
  "arn:aws:iam::aws:policy/AdministratorAccess",
  "arn:aws:iam::aws:policy/IAMFullAccess",
  "arn:aws:iam::aws:policy/PowerUserAccess",
];
/** Longest deploy session: deploy-stack.yml asks for exactly this (role-duration-seconds), its job timeout is below. */
export const DEPLOY_SESSION_SECONDS = 3 * 3600;

export class CiRoles extends pulumi.ComponentResource {
  readonly deployRoleArn: pulumi.Output<string>;
  readonly previewRoleArn: pulumi.Output<string>;
  readonly oidcProviderArn: pulumi.Output<string>;

  constructor(name: string, args: CiRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:CiRoles", name, {}, opts);
    const o = { parent: this };
    this.oidcProviderArn = this.oidcProvider(name, args.oidcProvider);
    const trust = (subject: string) => webIdentityTrustPolicy(this.oidcProviderArn, GITHUB_OIDC_HOST, subject);
    const names = {
      deploy: `${args.prefix}-ci-deploy`,
      preview: `${args.prefix}-ci-preview`,
      boundary: `${args.prefix}-ci-deploy-boundary`,
    };
    const arns = {
      // Every stack's of the project, not this one's alone: dev's deploy role shares prod's account where they share
      // one, and could otherwise re-trust prod's deploy role or rewrite its boundaries (review of this change).
      ciRoles: pulumi.interpolate`arn:aws:iam::${args.accountId}:role/${PROJECT}-*-ci-*`,
      boundary: pulumi.interpolate`arn:aws:iam::${args.accountId}:policy/${PROJECT}-*-ci-deploy-boundary`,
      workloadBoundaries: pulumi.interpolate`arn:aws:iam::${args.accountId}:policy/${workloadBoundaryName(`${PROJECT}-*`)}`,
      cluster: eksClusterArn(args.region, args.accountId, args.clusterName),
    };

    // AWS, not the mocks, checks these documents: the boundary (a managed policy) at most 6,144 characters and the
    // deploy role's inline policies 10,240 together, white space not counted (IAM User Guide, "IAM and AWS STS quotas");
    // ci-roles.prod-plan.ts measures both. iam:PermissionsBoundary takes string operators (IAM User Guide, "IAM and AWS STS
    // condition context keys"); a request without the key (CreateRole without a boundary, a role that has none) matches
    // no StringEquals, so the Allow does not apply, and matches StringNotEquals, so the Deny does ("IAM JSON policy
    // elements: Condition operators": a negated operator on an absent key is true).
    const underWorkloadBoundary = { StringEquals: { "iam:PermissionsBoundary": args.workloadBoundaryArn } };
    const boundary = new aws.iam.Policy(
      `${name}-deploy-boundary`,
      {
        name: names.boundary,
        description: `Ceiling of what the ${args.stack} deploy role can ever do`,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            ...deployAllowStatements(args.prefix, args.accountId, underWorkloadBoundary),
            {
              Sid: "NoChangesToTheCiRolesOrThisBoundary",
              Effect: "Deny",
              Action: ["iam:*"],
              Resource: [arns.ciRoles, arns.boundary],
            },
            // The allow above already requires it; denied here too, so a wider allow added to the role's policy
            // ("iam:*Role") cannot reopen a role without the workload boundary.
            {
              Sid: "NoRoleOutsideTheWorkloadBoundary",
              Effect: "Deny",
              Action: ROLE_CHANGES_UNDER_BOUNDARY,
              Resource: "*",
              Condition: { StringNotEquals: { "iam:PermissionsBoundary": args.workloadBoundaryArn } },
            },
            { Sid: "NoBoundaryRemoval", Effect: "Deny", Action: ["iam:DeleteRolePermissionsBoundary"], Resource: "*" },
            // Its boundary changes are an administrator's `pulumi up`, as this file's are.
            {
              Sid: "NoChangesToTheWorkloadBoundary",
              Effect: "Deny",
              Action: ["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion"],
              Resource: [args.workloadBoundaryArn, arns.workloadBoundaries],
            },
            {
              Sid: "NoAdministratorPolicies",
              Effect: "Deny",
              Action: ["iam:AttachRolePolicy", "iam:AttachUserPolicy", "iam:AttachGroupPolicy"],
              Resource: "*",
              Condition: { ArnEquals: { "iam:PolicyARN": FORBIDDEN_POLICY_ARNS } },
            },
            {
              Sid: "NoIdentitiesOutsideRoles",
              Effect: "Deny",
              Action: ["iam:*User*", "iam:*Group*", "iam:*AccessKey*", "iam:*LoginProfile", "organizations:*", "account:*"],
              Resource: "*",
            },
            ...BACKUP_DENIES,
          ],
        }),
      },
      o,
    );

    const deploy = new aws.iam.Role(
      `${name}-deploy`,
      {
        name: names.deploy,
        description: `pulumi up of stack ${args.stack} from GitHub Actions (environment ${args.stack})`,
        assumeRolePolicy: trust(`repo:${args.githubRepo}:environment:${args.stack}`),
        permissionsBoundary: boundary.arn,
        // The deploy job may run 170 minutes (deploy-stack.yml timeout-minutes), its rollback included.
        maxSessionDuration: DEPLOY_SESSION_SECONDS,
      },
      o,
    );
    new aws.iam.RolePolicy(
      `${name}-deploy`,
      {
        role: deploy.id,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: deployAllowStatements(args.prefix, args.accountId, underWorkloadBoundary),
        }),
      },
      o,
    );

    // A pull request runs its own workflow files, so whatever it can assume must be read-only.
    const preview = new aws.iam.Role(
      `${name}-preview`,
      {
        name: names.preview,
        description: `pulumi preview of stack ${args.stack} from pull requests (read-only, no secret values)`,
        assumeRolePolicy: trust(`repo:${args.githubRepo}:pull_request`),
        permissionsBoundary: args.workloadBoundaryArn,
      },
      o,
    );
    new aws.iam.RolePolicy(
      `${name}-preview`,
      {
        role: preview.id,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: previewStatements(args.stack, arns.cluster, this.oidcProviderArn, args.region),
        }),
      },
      o,
    );

    this.clusterAccess(`${name}-deploy`, args.clusterName, deploy.arn, "AmazonEKSClusterAdminPolicy", { type: "cluster" });
    // View: get/list/watch of most objects, never Secrets; no exec, no port-forward.
    this.clusterAccess(`${name}-preview`, args.clusterName, preview.arn, "AmazonEKSViewPolicy", { type: "cluster" });
    this.deployRoleArn = deploy.arn;
    this.previewRoleArn = preview.arn;
    this.registerOutputs({ deployRoleArn: this.deployRoleArn, previewRoleArn: this.previewRoleArn });
  }

  private oidcProvider(name: string, mode: CiRolesArgs["oidcProvider"]): pulumi.Output<string> {
    if (mode === "create") {
      // Account-wide: deleting this stack would remove every stack's CI access, so it is protected.
      return new aws.iam.OpenIdConnectProvider(
        `${name}-github`,
        {
          url: GITHUB_OIDC_URL,
          clientIdLists: ["sts.amazonaws.com"],
        },
        { parent: this, protect: true },
      ).arn;
    }
    if (mode === "lookup") return aws.iam.getOpenIdConnectProviderOutput({ url: GITHUB_OIDC_URL }, { parent: this }).arn;
    return pulumi.output(mode);
  }

  private clusterAccess(
    name: string,
    clusterName: pulumi.Input<string>,
    principalArn: pulumi.Input<string>,
    policy: string,
    accessScope: aws.types.input.eks.AccessPolicyAssociationAccessScope,
  ) {
    const entry = new aws.eks.AccessEntry(name, { clusterName, principalArn, type: "STANDARD" }, { parent: this });
    new aws.eks.AccessPolicyAssociation(
      name,
      {
        clusterName,
        principalArn,
        policyArn: `arn:aws:eks::aws:cluster-access-policy/${policy}`,
        accessScope,
      },
      { parent: this, dependsOn: [entry] },
    );
  }
}

/**
 * What the deploy role may do: the managed services, IAM for roles only (and what gives a role permissions only under
 * `underWorkloadBoundary`), S3 on the stack's own buckets.
 */
function deployAllowStatements(prefix: string, accountId: pulumi.Input<string>, underWorkloadBoundary: object) {
  // By their whole names: `<prefix>-*` also matched the buckets of a stack whose name starts with this one's and a
  // hyphen (dev's role reached dev-eu's).
  const buckets = STACK_BUCKETS.map((purpose) => pulumi.interpolate`arn:aws:s3:::${stackBucket(prefix, purpose, accountId)}`);
  return [
    { Sid: "ManagedServices", Effect: "Allow", Action: MANAGED_SERVICES.map((s) => `${s}:*`), Resource: "*" },
    // Not sts:*: with AssumeRole, a role it creates under the workload boundary (a deny-list) that trusts it, given a
    // policy of its own making, was every non-IAM action in the account (review of this change). The provider and the
    // EKS token (a presigned GetCallerIdentity) need only this.
    { Sid: "WhoAmI", Effect: "Allow", Action: ["sts:GetCallerIdentity"], Resource: "*" },
    { Sid: "IamRolesAndPolicies", Effect: "Allow", Action: IAM_ROLE_ACTIONS, Resource: "*" },
    {
      Sid: "RolesUnderTheWorkloadBoundary",
      Effect: "Allow",
      Action: ROLE_CHANGES_UNDER_BOUNDARY,
      Resource: "*",
      Condition: underWorkloadBoundary,
    },
    {
      Sid: "StackBuckets",
      Effect: "Allow",
      Action: ["s3:*"],
      Resource: [...buckets, ...buckets.map((arn) => pulumi.interpolate`${arn}/*`)],
    },
    { Sid: "ListBuckets", Effect: "Allow", Action: ["s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock"], Resource: "*" },
    // deploy-stack.yml runs the preflight under this role before `pulumi up`; without them every deploy stopped there.
    { Sid: "Preflight", Effect: "Allow", Action: PREFLIGHT_ACTIONS, Resource: "*" },
  ];
}

/**
 * What a preview needs: the data sources the program reads (caller, zones, instance offerings, public SSM
 * parameters, the GitHub OIDC provider), the cluster to log in to, and reads of this stack's own resources
 * (tag `stack`, from the provider's default tags). No Get of secret values, no kms:Decrypt, no writes.
 */
function previewStatements(
  stack: string,
  clusterArn: pulumi.Input<string>,
  oidcProviderArn: pulumi.Input<string>,
  region: string,
) {
  const ownStack = { StringEquals: { "aws:ResourceTag/stack": stack } };
  return [
    {
      Sid: "DataSources",
      Effect: "Allow",
      Action: [
        "sts:GetCallerIdentity",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeInstanceTypeOfferings",
        // The add-ons' default versions for the stack's Kubernetes version (cluster.ts, getAddonVersion).
        "eks:DescribeAddonVersions",
        "iam:ListOpenIDConnectProviders",
        // The image's registry login (workloads/image.ts), read in a preview too, though nothing is built: every PR's
        // preview failed without it (probe W). The token carries only this role's ECR rights, which pull nothing.
        "ecr:GetAuthorizationToken",
      ],
      Resource: "*",
    },
    {
      Sid: "PublicParameters",
      Effect: "Allow",
      Action: ["ssm:GetParameter"],
      Resource: `arn:aws:ssm:${region}::parameter/aws/service/*`,
    },
    { Sid: "GithubProvider", Effect: "Allow", Action: ["iam:GetOpenIDConnectProvider"], Resource: oidcProviderArn },
    { Sid: "Cluster", Effect: "Allow", Action: ["eks:DescribeCluster"], Resource: clusterArn },
    {
      Sid: "OwnStackReadOnly",
      Effect: "Allow",
      Action: [
        "iam:GetRole",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "eks:Describe*",
        "eks:List*",
        "rds:Describe*",
        "rds:ListTagsForResource",
        "elasticache:Describe*",
        "elasticache:ListTagsForResource",
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:GetKeyRotationStatus",
        "secretsmanager:DescribeSecret",
        "backup:Get*",
        "backup:Describe*",
        "ecr:Describe*",
        "logs:Describe*",
        "sns:GetTopicAttributes",
        "budgets:View*",
      ],
      Resource: "*",
      Condition: ownStack,
    },
  ];
}
