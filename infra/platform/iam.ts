// IAM building blocks shared by every component: service trust policies and IRSA roles
// (a Kubernetes service account assuming an AWS role through the cluster's OIDC provider). Every role the program
// creates carries the workload boundary (boundaries.ts): its ARN is a required argument wherever a role is made.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/**
 * Where a service's request on this account's behalf must come from (confused deputy): a resource of `account`
 * (aws:SourceAccount) and, where given, `arn` (aws:SourceArn under ArnLike: one ARN, or a pattern with `*`). Only for a
 * service whose guide documents these keys for that use: a request that lacks them is refused.
 */
export interface ServiceSource {
  account: pulumi.Input<string>;
  arn?: pulumi.Input<string>;
}

/** An EKS cluster's ARN, known from its name before the cluster exists. */
export const eksClusterArn = (region: string, accountId: pulumi.Input<string>, clusterName: pulumi.Input<string>) =>
  pulumi.interpolate`arn:aws:eks:${region}:${accountId}:cluster/${clusterName}`;

/** A policy statement's Condition for `source`. */
export const sourceCondition = (source: ServiceSource) => ({
  StringEquals: { "aws:SourceAccount": source.account },
  ...(source.arn === undefined ? {} : { ArnLike: { "aws:SourceArn": source.arn } }),
});

/**
 * Trust policy letting `service` assume the role; with `source`, only for requests from that account and resource.
 * The guides that document the keys in a role's trust: VPC "IAM role for publishing flow logs to CloudWatch Logs", EKS
 * "Cross-service confused deputy prevention in Amazon EKS" (the cluster role), EventBridge Scheduler "Confused deputy
 * prevention" (the execution role: a schedule group's ARN). AWS Backup's service roles and EC2's instance roles have
 * none: their guides show the trust without a condition (Backup's confused deputy page covers SNS and KMS policies only).
 */
export function serviceTrustPolicy(service: string, source?: ServiceSource): pulumi.Output<string> {
  return pulumi.jsonStringify({
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Principal: { Service: service },
        Action: "sts:AssumeRole",
        ...(source ? { Condition: sourceCondition(source) } : {}),
      },
    ],
  });
}

/**
 * The KMS calls S3 makes for a role reading and writing SSE-KMS objects under `keyArn` (GenerateDataKey to write,
 * Decrypt to read and for multipart uploads), through S3 only: the data key also encrypts RDS, ElastiCache, Secrets
 * Manager and ECR, which a role holding it directly could decrypt with any ciphertext of theirs it came by.
 */
export const kmsThroughS3 = (keyArn: pulumi.Input<string>, region: string) => ({
  Effect: "Allow",
  Action: ["kms:GenerateDataKey", "kms:Decrypt"],
  Resource: keyArn,
  Condition: { StringEquals: { "kms:ViaService": `s3.${region}.amazonaws.com` } },
});

export interface OidcProvider {
  arn: pulumi.Input<string>;
  /** Issuer URL with or without https://. */
  url: pulumi.Input<string>;
}

export interface IrsaRoleArgs {
  oidc: OidcProvider;
  namespace: string;
  serviceAccount: string;
  /** Managed policy ARNs to attach. */
  managedPolicyArns?: string[];
  /** Inline policy document (JSON). */
  inlinePolicy?: pulumi.Input<string>;
  /** The workload boundary's ARN (boundaries.ts). */
  permissionsBoundary: pulumi.Input<string>;
}

/**
 * Trust policy for web-identity tokens of an OIDC provider (an EKS cluster's, GitHub Actions'): the token's
 * `sub` must be `subject` and its `aud` sts.amazonaws.com. `issuer` is the provider's host, without https://.
 */
export function webIdentityTrustPolicy(
  providerArn: pulumi.Input<string>,
  issuer: pulumi.Input<string>,
  subject: string,
): pulumi.Output<string> {
  return pulumi.all([providerArn, issuer]).apply(([arn, host]) =>
    JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Federated: arn },
          Action: "sts:AssumeRoleWithWebIdentity",
          Condition: { StringEquals: { [`${host}:sub`]: subject, [`${host}:aud`]: "sts.amazonaws.com" } },
        },
      ],
    }),
  );
}

/**
 * Attaches AWS managed policies to the role made as `roleName`, one attachment each, named after its policy
 * (`<roleName>-AmazonEKS_CNI_Policy`). Named by position, as they were, a policy taken out of the middle of a list moved
 * the next one into its attachment: a policy_arn change replaces an attachment (ForceNew), whose new attach was a no-op
 * beside the attachment already holding that policy, while the last attachment's delete then detached it, and the role
 * lost a policy that the state still showed attached. Each alias is the name the attachment had by its position in
 * the list, so a stack deployed before keeps its attachments: keep the lists' entries where they are (append new ones),
 * as test/infra/replacements.prod-plan.ts holds them. Once a stack has run this, do not deploy an older commit to it:
 * without the aliases, its attachments would be created again by position and the named ones deleted (detached).
 */
export function attachManagedPolicies(
  roleName: string,
  role: aws.iam.Role,
  policyArns: readonly string[],
  opts: pulumi.CustomResourceOptions,
): aws.iam.RolePolicyAttachment[] {
  return policyArns.map(
    (policyArn, i) =>
      new aws.iam.RolePolicyAttachment(
        `${roleName}-${policyArn.split("/").at(-1)}`,
        { role: role.name, policyArn },
        { ...opts, aliases: [{ name: `${roleName}-${i}` }] },
      ),
  );
}

/** An IRSA role and its policies, which whatever runs as the role depends on (irsaRole). */
export interface IrsaRole {
  role: aws.iam.Role;
  policies: (aws.iam.RolePolicyAttachment | aws.iam.RolePolicy)[];
}

/**
 * An IAM role only the given service account of the given namespace can assume, with its policies: what runs as it
 * depends on them, or its first AWS calls race their creation, and `pulumi destroy` detaches them in the same step as
 * it deletes it (the EBS CSI controller, still deleting released volumes, lost ec2:DeleteVolume).
 */
export function irsaRole(name: string, args: IrsaRoleArgs, opts: pulumi.ComponentResourceOptions): IrsaRole {
  const issuer = pulumi.output(args.oidc.url).apply((u) => u.replace(/^https:\/\//, ""));
  const subject = `system:serviceaccount:${args.namespace}:${args.serviceAccount}`;
  const role = new aws.iam.Role(
    name,
    { assumeRolePolicy: webIdentityTrustPolicy(args.oidc.arn, issuer, subject), permissionsBoundary: args.permissionsBoundary },
    opts,
  );
  const policies: IrsaRole["policies"] = attachManagedPolicies(name, role, args.managedPolicyArns ?? [], opts);
  if (args.inlinePolicy)
    policies.push(new aws.iam.RolePolicy(`${name}-inline`, { role: role.id, policy: args.inlinePolicy }, opts));
  return { role, policies };
}
