// Composes the whole environment in order: config -> platform (AWS) -> workloads (Kubernetes) -> outputs.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT, parseStackConfig, type StackConfig } from "./config.ts";
import { Cache } from "./platform/cache.ts";
import { Cluster } from "./platform/cluster.ts";
import { Database } from "./platform/database.ts";
import { Network } from "./platform/network.ts";
import { Registry } from "./platform/registry.ts";

export interface BuiltStack {
  config: StackConfig;
  outputs: Record<string, pulumi.Input<unknown>>;
}

/** Reads the stack's config and declares every resource; the return value's outputs are the stack outputs. */
export async function buildStack(): Promise<BuiltStack> {
  const config = parseStackConfig(pulumi.runtime.allConfig(), pulumi.getStack());
  const { sizes } = config;
  const prefix = `${PROJECT}-${config.stack}`;
  const disposable = sizes.name === "dev";

  const provider = new aws.Provider("aws", {
    region: config.region as aws.Region,
    defaultTags: { tags: { project: PROJECT, stack: config.stack, tier: sizes.name, "managed-by": "pulumi" } },
  });
  const opts: pulumi.ComponentResourceOptions = { providers: { aws: provider } };

  // One customer-managed key for data at rest (RDS, ElastiCache, Secrets Manager, ECR, backups).
  const dataKey = new aws.kms.Key("data", {
    description: `${prefix} data at rest`,
    enableKeyRotation: true,
    deletionWindowInDays: disposable ? 7 : 30,
  }, { provider });
  new aws.kms.Alias("data", { name: `alias/${prefix}-data`, targetKeyId: dataKey.keyId }, { provider });

  const network = new Network("network", {
    clusterName: prefix,
    azCount: sizes.network.azCount,
    natGateways: sizes.network.natGateways,
    flowLogs: config.flowLogs,
  }, opts);

  const cluster = new Cluster("cluster", {
    clusterName: prefix,
    kubernetesVersion: config.kubernetesVersion,
    vpcId: network.vpcId,
    publicSubnetIds: network.publicSubnetIds,
    privateSubnetIds: network.privateSubnetIds,
    endpointPublicAccessCidrs: config.endpointPublicAccessCidrs,
    nodeGroups: sizes.nodeGroups,
    logRetentionDays: disposable ? 7 : 90,
  }, opts);

  const database = new Database("database", {
    identifier: prefix,
    vpcId: network.vpcId,
    subnetIds: network.privateSubnetIds,
    clientSecurityGroupId: cluster.nodeSecurityGroupId,
    kmsKeyArn: dataKey.arn,
    sizes: sizes.database,
    disposable,
    snapshotIdentifier: config.restore.rdsSnapshotId,
    backupTags: { backup: prefix },
  }, opts);

  const cache = new Cache("cache", {
    replicationGroupId: prefix,
    vpcId: network.vpcId,
    subnetIds: network.privateSubnetIds,
    clientSecurityGroupId: cluster.nodeSecurityGroupId,
    kmsKeyArn: dataKey.arn,
    sizes: sizes.cache,
  }, opts);

  const registry = new Registry("registry", {
    repositoryName: `${prefix}-api`,
    kmsKeyArn: dataKey.arn,
    keepImages: sizes.registry.keepImages,
    forceDelete: disposable,
  }, opts);

  return {
    config,
    outputs: {
      tier: sizes.name,
      region: config.region,
      vpcId: network.vpcId,
      clusterName: cluster.name,
      clusterEndpoint: cluster.endpoint,
      kubeconfig: cluster.kubeconfig,
      dbEndpoint: database.endpoint,
      dbReplicaAddresses: database.replicaAddresses,
      dbSecretArn: database.secretArn,
      cacheEndpoint: cache.primaryAddress,
      cacheSecretArn: cache.secretArn,
      ecrRepositoryUrl: registry.repositoryUrl,
    },
  };
}
