// Encryption policies, each called with a compliant and a violating resource.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ebsEncrypted,
  eksSecretsEncrypted,
  elasticacheEncryptedAtRest,
  elasticacheEncryptedInTransit,
  kmsKeyRotation,
  rdsStorageEncrypted,
  s3BucketEncrypted,
} from "../../policy/policies/encryption.ts";

import { check, checkOnPreview, messagesFor, resource, unknownObjectValue, unknownStringValue } from "./support.ts";

const KEY = "arn:aws:kms:us-east-1:123456789012:key/data";

const db = (inputs: Record<string, unknown>) => resource("aws:rds/instance:Instance", "db", { engine: "postgres", ...inputs });

test("rds-storage-encrypted: encrypted with a customer key passes; unencrypted or AWS-managed key fails", () => {
  assert.deepEqual(check(rdsStorageEncrypted, [db({ storageEncrypted: true, kmsKeyId: KEY })]), []);
  const [plain] = check(rdsStorageEncrypted, [db({ storageEncrypted: false })]);
  assert.equal(plain.level, "mandatory");
  assert.match(plain.message, /storageEncrypted: true/);
  assert.match(check(rdsStorageEncrypted, [db({ storageEncrypted: true })])[0].message, /kmsKeyId/);
  assert.deepEqual(
    check(rdsStorageEncrypted, [db({ storageEncrypted: true })], { config: { requireCustomerManagedKey: false } }),
    [],
  );
});

test("a customer key created in the same update, unknown on the first preview, is a key: RDS, ElastiCache, EKS", () => {
  // Read plainly, the engine's props threw on it (@pulumi/policy proxy.js), and the pack reported each of these
  // mandatory policies as an advisory "can't run during preview", judging nothing.
  assert.deepEqual(checkOnPreview(rdsStorageEncrypted, [db({ storageEncrypted: true, kmsKeyId: unknownStringValue })], {}), []);
  assert.match(checkOnPreview(rdsStorageEncrypted, [db({ storageEncrypted: true })], {})[0] ?? "", /AWS-managed key/);
  const encryptedCache = cache({ atRestEncryptionEnabled: true, kmsKeyId: unknownStringValue });
  assert.deepEqual(checkOnPreview(elasticacheEncryptedAtRest, [encryptedCache], {}), []);
  const eks = resource("aws:eks/cluster:Cluster", "eks", {
    name: "c",
    encryptionConfig: { provider: { keyArn: unknownStringValue }, resources: ["secrets"] },
  });
  assert.deepEqual(checkOnPreview(eksSecretsEncrypted, [eks], {}), []);
});

test("rds-storage-encrypted: a same-region replica inherits its source's encryption", () => {
  assert.deepEqual(check(rdsStorageEncrypted, [db({ replicateSourceDb: "primary" })]), []);
  assert.equal(check(rdsStorageEncrypted, [db({ replicateSourceDb: "primary", storageEncrypted: false })]).length, 1);
});

test("ebs-encrypted: launch template volumes must be encrypted (string or boolean flag)", () => {
  const template = (encrypted: unknown) =>
    resource("aws:ec2/launchTemplate:LaunchTemplate", "lt", {
      blockDeviceMappings: [{ deviceName: "/dev/xvda", ebs: { volumeSize: 50, encrypted } }],
    });
  assert.deepEqual(check(ebsEncrypted, [template("true")]), []);
  assert.deepEqual(check(ebsEncrypted, [template(true)]), []);
  const [v] = check(ebsEncrypted, [template("false")]);
  assert.match(v.message, /\/dev\/xvda is not encrypted/);
  assert.equal(check(ebsEncrypted, [template(undefined)]).length, 1);
});

test("ebs-encrypted: volumes, node groups without a launch template and EBS CSI storage classes", () => {
  assert.deepEqual(check(ebsEncrypted, [resource("aws:ebs/volume:Volume", "v", { encrypted: true, size: 10 })]), []);
  assert.equal(check(ebsEncrypted, [resource("aws:ebs/volume:Volume", "v", { size: 10 })]).length, 1);
  const group = resource("aws:eks/nodeGroup:NodeGroup", "ng", { instanceTypes: ["c6i.large"] });
  assert.match(check(ebsEncrypted, [group])[0].message, /no launch template/);
  const sc = (parameters: Record<string, string>) =>
    resource("kubernetes:storage.k8s.io/v1:StorageClass", "gp3", { provisioner: "ebs.csi.aws.com", parameters });
  assert.deepEqual(check(ebsEncrypted, [sc({ type: "gp3", encrypted: "true" })]), []);
  assert.match(check(ebsEncrypted, [sc({ type: "gp3" })])[0].message, /encrypted: "true"/);
});

const cache = (inputs: Record<string, unknown>) =>
  resource("aws:elasticache/replicationGroup:ReplicationGroup", "cache", {
    engine: "valkey",
    nodeType: "cache.r6g.large",
    ...inputs,
  });

test("elasticache-encrypted-at-rest: needs atRestEncryptionEnabled and a customer key; standalone clusters fail", () => {
  assert.deepEqual(check(elasticacheEncryptedAtRest, [cache({ atRestEncryptionEnabled: true, kmsKeyId: KEY })]), []);
  assert.match(
    check(elasticacheEncryptedAtRest, [cache({ atRestEncryptionEnabled: false })])[0].message,
    /atRestEncryptionEnabled/,
  );
  assert.match(check(elasticacheEncryptedAtRest, [cache({ atRestEncryptionEnabled: true })])[0].message, /kmsKeyId/);
  const standalone = resource("aws:elasticache/cluster:Cluster", "memcached", { engine: "memcached" });
  assert.match(check(elasticacheEncryptedAtRest, [standalone])[0].message, /ReplicationGroup/);
});

test("elasticache-encrypted-in-transit: TLS required and clients authenticated", () => {
  assert.deepEqual(check(elasticacheEncryptedInTransit, [cache({ transitEncryptionEnabled: true, authToken: "[secret]" })]), []);
  const messages = check(elasticacheEncryptedInTransit, [cache({ transitEncryptionEnabled: false })]).map((v) => v.message);
  assert.equal(messages.length, 2);
  assert.match(messages[0], /TLS is off/);
  assert.match(messages[1], /authToken/);
  assert.match(
    check(elasticacheEncryptedInTransit, [
      cache({ transitEncryptionEnabled: true, transitEncryptionMode: "preferred", authToken: "x" }),
    ])[0].message,
    /required/,
  );
});

test("eks-secrets-encrypted: secrets envelope-encrypted with a KMS key", () => {
  const cluster = (encryptionConfig: unknown) => resource("aws:eks/cluster:Cluster", "eks", { name: "c", encryptionConfig });
  assert.deepEqual(check(eksSecretsEncrypted, [cluster({ provider: { keyArn: KEY }, resources: ["secrets"] })]), []);
  assert.equal(check(eksSecretsEncrypted, [cluster(undefined)]).length, 1);
  assert.equal(check(eksSecretsEncrypted, [cluster({ provider: { keyArn: KEY }, resources: [] })]).length, 1);
});

test("kms-key-rotation: symmetric keys rotate, within the configured period; asymmetric keys are skipped", () => {
  const key = (inputs: Record<string, unknown>) => resource("aws:kms/key:Key", "k", { description: "d", ...inputs });
  assert.deepEqual(check(kmsKeyRotation, [key({ enableKeyRotation: true })]), []);
  assert.match(check(kmsKeyRotation, [key({ enableKeyRotation: false })])[0].message, /enableKeyRotation/);
  assert.deepEqual(check(kmsKeyRotation, [key({ customerMasterKeySpec: "RSA_2048", keyUsage: "SIGN_VERIFY" })]), []);
  assert.match(
    check(kmsKeyRotation, [key({ enableKeyRotation: true, rotationPeriodInDays: 730 })])[0].message,
    /730 days; at most 365/,
  );
  assert.deepEqual(
    check(kmsKeyRotation, [key({ enableKeyRotation: true, rotationPeriodInDays: 730 })], {
      config: { maxRotationPeriodDays: 730 },
    }),
    [],
  );
});

test("s3-bucket-encrypted: each bucket needs its own default-encryption configuration", () => {
  const logs = resource("aws:s3/bucket:Bucket", "logs", { bucket: "agent-logs" });
  const backups = resource("aws:s3/bucket:Bucket", "backups", {});
  // The configuration refers to the bucket by its id, as `bucket: logs.id` does under the offline plan's mocks.
  const sse = resource("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "logs-sse", {
    bucket: "logs-id",
    rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
  });
  const violations = check(s3BucketEncrypted, [logs, backups, sse]);
  assert.deepEqual(messagesFor(violations, logs), []);
  assert.equal(messagesFor(violations, backups).length, 1);
  assert.match(messagesFor(violations, backups)[0], /no default encryption/);
  const kmsRequired = check(s3BucketEncrypted, [logs, sse], { config: { requireKms: true } });
  assert.match(messagesFor(kmsRequired, logs)[0], /AES256; SSE-KMS/);

  // On a real preview of a new bucket its serverSideEncryptionConfiguration output is unknown, and the engine's props
  // throw on reading it (@pulumi/policy proxy.js): the policy, read so, was skipped as "cannot run during preview".
  const unseen = resource("aws:s3/bucket:Bucket", "backups", { serverSideEncryptionConfiguration: unknownObjectValue });
  const reports = checkOnPreview(s3BucketEncrypted, [unseen], { requireKms: false });
  assert.equal(reports.length, 1);
  assert.match(reports[0]!, /bucket backups has no default encryption/);
});
