// Encryption at rest and in transit: RDS, EBS (launch templates, volumes, node groups, EBS CSI storage
// classes), ElastiCache, S3, EKS secrets, KMS key rotation.
import * as aws from "@pulumi/aws";
import { validateResourceOfType, type ResourceValidationPolicy, type StackValidationPolicy } from "@pulumi/policy";
import { ofTypes, referencedBy, validateResourceOfTypes } from "../lib/validate.ts";
import { asArray, asNumber, asRecord, isTrue, readKnown } from "../lib/values.ts";

export const S3_BUCKET_TYPES = ["aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"] as const;

export const rdsStorageEncrypted: ResourceValidationPolicy = {
  name: "rds-storage-encrypted",
  description: "RDS instances and clusters encrypt their storage, with a customer-managed KMS key.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      requireCustomerManagedKey: {
        type: "boolean",
        default: true,
        description: "Require kmsKeyId (not the AWS-managed aws/rds key).",
      },
    },
  },
  validateResource: validateResourceOfTypes(["aws:rds/instance:Instance", "aws:rds/cluster:Cluster"], (db, args, report) => {
    const { requireCustomerManagedKey } = args.getConfig<{ requireCustomerManagedKey: boolean }>();
    // A same-region read replica inherits its source's encryption when it does not say otherwise.
    if (db.replicateSourceDb && db.storageEncrypted === undefined) return;
    if (!isTrue(db.storageEncrypted)) {
      report("storage is not encrypted: set storageEncrypted: true (it cannot be turned on after creation).");
      return;
    }
    // A key created in the same update is not known on a preview, and is one (readKnown gives the engine's marker).
    if (requireCustomerManagedKey && !readKnown(() => db.kmsKeyId))
      report("storage is encrypted with the AWS-managed key: set kmsKeyId to a customer-managed KMS key.");
  }),
};

export const ebsEncrypted: ResourceValidationPolicy = {
  name: "ebs-encrypted",
  description:
    "EBS volumes are encrypted: launch template and instance block devices, volumes, node groups and EBS CSI storage classes.",
  enforcementLevel: "mandatory",
  validateResource: [
    validateResourceOfType(aws.ec2.LaunchTemplate, (template, _args, report) => {
      for (const mapping of asArray(template.blockDeviceMappings)) {
        if (mapping.ebs && !isTrue(mapping.ebs.encrypted))
          report(`block device ${mapping.deviceName ?? "?"} is not encrypted: set ebs.encrypted: "true".`);
      }
    }),
    validateResourceOfType(aws.ec2.Instance, (instance, _args, report) => {
      if (!isTrue(instance.rootBlockDevice?.encrypted))
        report("root block device is not encrypted: set rootBlockDevice.encrypted: true.");
      for (const device of asArray(instance.ebsBlockDevices)) {
        if (!isTrue(device.encrypted)) report(`EBS block device ${device.deviceName} is not encrypted.`);
      }
    }),
    validateResourceOfType(aws.ebs.Volume, (volume, _args, report) => {
      if (!isTrue(volume.encrypted)) report("volume is not encrypted: set encrypted: true.");
    }),
    validateResourceOfType(aws.eks.NodeGroup, (group, _args, report) => {
      if (!group.launchTemplate)
        report(
          "node group has no launch template, so its root volume uses the account's default (possibly unencrypted) EBS settings: give it a launch template with an encrypted volume.",
        );
    }),
    validateResourceOfTypes(["kubernetes:storage.k8s.io/v1:StorageClass"], (sc, _args, report) => {
      if (sc.provisioner === "ebs.csi.aws.com" && !isTrue(asRecord(sc.parameters).encrypted)) {
        report('EBS CSI storage class does not encrypt its volumes: set parameters.encrypted: "true".');
      }
    }),
  ],
};

export const elasticacheEncryptedAtRest: ResourceValidationPolicy = {
  name: "elasticache-encrypted-at-rest",
  description:
    "ElastiCache replication groups encrypt data at rest with a customer-managed KMS key; standalone clusters (no encryption at rest) are not used.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      requireCustomerManagedKey: { type: "boolean", default: true, description: "Require kmsKeyId." },
    },
  },
  validateResource: [
    validateResourceOfType(aws.elasticache.ReplicationGroup, (group, args, report) => {
      const { requireCustomerManagedKey } = args.getConfig<{ requireCustomerManagedKey: boolean }>();
      if (!isTrue(group.atRestEncryptionEnabled)) report("encryption at rest is off: set atRestEncryptionEnabled: true.");
      else if (requireCustomerManagedKey && !readKnown(() => group.kmsKeyId))
        report("encrypted with the AWS-managed key: set kmsKeyId to a customer-managed KMS key.");
    }),
    validateResourceOfType(aws.elasticache.Cluster, (cluster, _args, report) => {
      if (!cluster.replicationGroupId)
        report("a standalone cache cluster cannot encrypt data at rest: use an aws.elasticache.ReplicationGroup.");
    }),
  ],
};

export const elasticacheEncryptedInTransit: ResourceValidationPolicy = {
  name: "elasticache-encrypted-in-transit",
  description: "ElastiCache replication groups require TLS and authenticate clients.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      requireAuth: { type: "boolean", default: true, description: "Require an auth token or RBAC user groups." },
    },
  },
  validateResource: validateResourceOfType(aws.elasticache.ReplicationGroup, (group, args, report) => {
    const { requireAuth } = args.getConfig<{ requireAuth: boolean }>();
    if (!isTrue(group.transitEncryptionEnabled)) report("TLS is off: set transitEncryptionEnabled: true.");
    else if (group.transitEncryptionMode === "preferred") report('TLS is optional: set transitEncryptionMode: "required".');
    if (requireAuth && !group.authToken && asArray(group.userGroupIds).length === 0) {
      report("clients are not authenticated: set authToken (or userGroupIds).");
    }
  }),
};

export const eksSecretsEncrypted: ResourceValidationPolicy = {
  name: "eks-secrets-encrypted",
  description: "EKS clusters envelope-encrypt Kubernetes secrets with a KMS key.",
  enforcementLevel: "mandatory",
  validateResource: validateResourceOfType(aws.eks.Cluster, (cluster, _args, report) => {
    const config = cluster.encryptionConfig;
    if (!config || !asArray(config.resources).includes("secrets") || !readKnown(() => config.provider?.keyArn)) {
      report('secrets are not envelope-encrypted: set encryptionConfig { provider: { keyArn }, resources: ["secrets"] }.');
    }
  }),
};

export const kmsKeyRotation: ResourceValidationPolicy = {
  name: "kms-key-rotation",
  description: "Symmetric customer-managed KMS keys rotate automatically, at least as often as configured.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      maxRotationPeriodDays: {
        type: "integer",
        minimum: 90,
        maximum: 2560,
        default: 365,
        description: "Longest allowed rotationPeriodInDays.",
      },
    },
  },
  validateResource: validateResourceOfType(aws.kms.Key, (key, args, report) => {
    const { maxRotationPeriodDays } = args.getConfig<{ maxRotationPeriodDays: number }>();
    const spec = key.customerMasterKeySpec ?? "SYMMETRIC_DEFAULT";
    const usage = key.keyUsage ?? "ENCRYPT_DECRYPT";
    if (spec !== "SYMMETRIC_DEFAULT" || usage !== "ENCRYPT_DECRYPT") return; // AWS rotates only symmetric encryption keys
    if (!isTrue(key.enableKeyRotation)) {
      report("automatic rotation is off: set enableKeyRotation: true.");
      return;
    }
    const period = asNumber(key.rotationPeriodInDays);
    if (period !== undefined && period > maxRotationPeriodDays) {
      report(`rotates every ${period} days; at most ${maxRotationPeriodDays} allowed.`);
    }
  }),
};

const SSE_CONFIG_TYPES = [
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
] as const;

const KMS_ALGORITHMS = ["aws:kms", "aws:kms:dsse"];

export const s3BucketEncrypted: StackValidationPolicy = {
  name: "s3-bucket-encrypted",
  description:
    "Every S3 bucket declares default server-side encryption (a BucketServerSideEncryptionConfiguration), with KMS when configured.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      requireKms: { type: "boolean", default: false, description: "Require SSE-KMS (aws:kms) instead of SSE-S3 (AES256)." },
    },
  },
  validateStack: (args, report) => {
    const { requireKms } = args.getConfig<{ requireKms: boolean }>();
    const configs = ofTypes(args.resources, SSE_CONFIG_TYPES);
    for (const bucket of ofTypes(args.resources, S3_BUCKET_TYPES)) {
      const own = configs.filter((c) => referencedBy(c, "bucket").some((b) => b.urn === bucket.urn));
      // Not the bucket's own `serverSideEncryptionConfiguration`: an output AWS computes (unknown while the bucket is
      // created, which made a real preview skip the whole policy), and AES256 on every existing bucket since 2023.
      const rules = own.flatMap((c) => asArray(c.props.rules));
      const algorithms = rules.map((r: any) => r?.applyServerSideEncryptionByDefault?.sseAlgorithm).filter(Boolean);
      if (algorithms.length === 0) {
        report(
          `bucket ${bucket.name} has no default encryption: add an aws.s3.BucketServerSideEncryptionConfiguration for it (the bucket's own deprecated serverSideEncryptionConfiguration is not read).`,
          bucket.urn,
        );
      } else if (requireKms && !algorithms.some((a: string) => KMS_ALGORITHMS.includes(a))) {
        report(`bucket ${bucket.name} uses ${algorithms.join(", ")}; SSE-KMS (aws:kms) is required.`, bucket.urn);
      }
    }
  },
};

export const encryptionPolicies = [
  rdsStorageEncrypted,
  ebsEncrypted,
  elasticacheEncryptedAtRest,
  elasticacheEncryptedInTransit,
  s3BucketEncrypted,
  eksSecretsEncrypted,
  kmsKeyRotation,
];
