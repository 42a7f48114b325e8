// GitHub Actions access for the delivery pipeline (.github/workflows, README "Delivery pipeline"): a deploy
// role only this repository's `<stack>` environment can assume, a read-only preview role for pull requests,
// and EKS access entries so `pulumi up` / `pulumi preview` reach the cluster's API.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { webIdentityTrustPolicy } from "./iam.ts";

export interface CiRolesArgs {
  /** owner/name of the GitHub repository. */
  githubRepo: string;
  stack: string;
  clusterName: pulumi.Input<string>;
  /** Reuse the account's GitHub OIDC provider (there can be only one per account). */
  oidcProviderArn?: string;
}

const GITHUB_OIDC_HOST = "token.actions.githubusercontent.com";
/** Longest deploy session: deploy-stack.yml asks for exactly this (role-duration-seconds), its job timeout is below. */
export const DEPLOY_SESSION_SECONDS = 3 * 3600;

export class CiRoles extends pulumi.ComponentResource {
  readonly deployRoleArn: pulumi.Output<string>;
  readonly previewRoleArn: pulumi.Output<string>;

  constructor(name: string, args: CiRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:CiRoles", name, {}, opts);
    const o = { parent: this };
    const providerArn = args.oidcProviderArn
      ?? new aws.iam.OpenIdConnectProvider(`${name}-github`, { url: `https://${GITHUB_OIDC_HOST}`, clientIdLists: ["sts.amazonaws.com"] }, o).arn;
    const trust = (subject: string) => webIdentityTrustPolicy(providerArn, GITHUB_OIDC_HOST, subject);

    // `pulumi up` creates VPCs, IAM roles, KMS keys, RDS, ...: start broad, narrow to what the program uses.
    const deploy = new aws.iam.Role(`${name}-deploy`, {
      description: `pulumi up of stack ${args.stack} from GitHub Actions (environment ${args.stack})`,
      assumeRolePolicy: trust(`repo:${args.githubRepo}:environment:${args.stack}`),
      maxSessionDuration: DEPLOY_SESSION_SECONDS,
    }, o);
    new aws.iam.RolePolicyAttachment(`${name}-deploy`, { role: deploy.name, policyArn: "arn:aws:iam::aws:policy/AdministratorAccess" }, o);
    // A pull request runs its own workflow files, so whatever it can assume must be read-only.
    const preview = new aws.iam.Role(`${name}-preview`, {
      description: `pulumi preview of stack ${args.stack} from pull requests (read-only)`,
      assumeRolePolicy: trust(`repo:${args.githubRepo}:pull_request`),
    }, o);
    new aws.iam.RolePolicyAttachment(`${name}-preview`, { role: preview.name, policyArn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }, o);

    this.clusterAccess(`${name}-deploy`, args.clusterName, deploy.arn, "AmazonEKSClusterAdminPolicy", { type: "cluster" });
    this.clusterAccess(`${name}-preview`, args.clusterName, preview.arn, "AmazonEKSEditPolicy", {
      type: "namespace",
      namespaces: ["agent", "monitoring"],
    });
    this.deployRoleArn = deploy.arn;
    this.previewRoleArn = preview.arn;
    this.registerOutputs({ deployRoleArn: this.deployRoleArn, previewRoleArn: this.previewRoleArn });
  }

  private clusterAccess(
    name: string,
    clusterName: pulumi.Input<string>,
    principalArn: pulumi.Input<string>,
    policy: string,
    accessScope: aws.types.input.eks.AccessPolicyAssociationAccessScope,
  ) {
    const entry = new aws.eks.AccessEntry(name, { clusterName, principalArn, type: "STANDARD" }, { parent: this });
    new aws.eks.AccessPolicyAssociation(name, {
      clusterName,
      principalArn,
      policyArn: `arn:aws:eks::aws:cluster-access-policy/${policy}`,
      accessScope,
    }, { parent: this, dependsOn: [entry] });
  }
}
