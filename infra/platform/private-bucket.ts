// An S3 bucket the way every bucket of this stack is made: owner-enforced (no ACLs), public access blocked,
// SSE-KMS with a bucket key, TLS-only, with the caller's lifecycle rules; versioned where asked.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { type StackBucket, stackBucketName } from "../config.ts";

/** The name of the stack's bucket for `purpose` (config.ts stackBucketName), once the account id is known. */
export const stackBucket = (prefix: string, purpose: StackBucket, accountId: pulumi.Input<string>): pulumi.Output<string> =>
  pulumi.output(accountId).apply((account) => stackBucketName(prefix, purpose, account));

export interface PrivateBucketArgs {
  bucketName: pulumi.Input<string>;
  kmsKeyArn: pulumi.Input<string>;
  versioned: boolean;
  lifecycleRules: aws.types.input.s3.BucketLifecycleConfigurationRule[];
  /** Dev: `pulumi destroy` may empty and delete it; elsewhere the bucket is protected. */
  disposable: boolean;
}

export function privateBucket(name: string, args: PrivateBucketArgs, o: pulumi.CustomResourceOptions): aws.s3.Bucket {
  const bucket = new aws.s3.Bucket(
    name,
    { bucket: args.bucketName, forceDestroy: args.disposable },
    { ...o, protect: !args.disposable },
  );
  new aws.s3.BucketOwnershipControls(name, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, o);
  const publicAccess = new aws.s3.BucketPublicAccessBlock(
    name,
    {
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    },
    o,
  );
  if (args.versioned) {
    new aws.s3.BucketVersioning(name, { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } }, o);
  }
  new aws.s3.BucketServerSideEncryptionConfiguration(
    name,
    {
      bucket: bucket.id,
      rules: [
        {
          applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: args.kmsKeyArn },
          bucketKeyEnabled: true, // one KMS data key per bucket and period instead of a KMS call per object
        },
      ],
    },
    o,
  );
  new aws.s3.BucketPolicy(
    name,
    {
      bucket: bucket.id,
      policy: pulumi.jsonStringify({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "DenyInsecureTransport",
            Effect: "Deny",
            Principal: "*",
            Action: "s3:*",
            Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          },
        ],
      }),
    },
    { ...o, dependsOn: [publicAccess] },
  );
  new aws.s3.BucketLifecycleConfiguration(name, { bucket: bucket.id, rules: args.lifecycleRules }, o);
  return bucket;
}
