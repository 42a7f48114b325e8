// Composes the whole environment in order: config -> platform (AWS) -> workloads (Kubernetes) -> outputs.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { capacityReport } from "./capacity.ts";
import {
  ConfigError,
  configuredSecrets,
  notifyEmails,
  PROJECT,
  parseStackConfig,
  requireAlertReceiver,
  type StackConfig,
  stackPrefix,
} from "./config.ts";
import { Backups, rdsBackupWindow } from "./platform/backups.ts";
import { KEPT_KEY_TAG, KEPT_KEYS, workloadBoundary } from "./platform/boundaries.ts";
import { Budget } from "./platform/budget.ts";
import { Cache } from "./platform/cache.ts";
import { CiRoles } from "./platform/ci-roles.ts";
import { Cluster } from "./platform/cluster.ts";
import { Database, DB_NAME, DB_USER } from "./platform/database.ts";
import { Network } from "./platform/network.ts";
import { Notifications } from "./platform/notifications.ts";
import { Registry } from "./platform/registry.ts";
import { describeSchedule, movesMinimum, OffPeakSchedules } from "./platform/schedules.ts";
import { Workloads } from "./workloads/index.ts";
import { Observability } from "./workloads/observability.ts";
import { OffPeakScaler } from "./workloads/offpeak.ts";
import { QdrantSnapshots } from "./workloads/qdrant-snapshots.ts";

export interface BuiltStack {
  config: StackConfig;
  outputs: Record<string, pulumi.Input<unknown>>;
}

/** Reads the stack's config and declares every resource; the return value's outputs are the stack outputs. */
export async function buildStack(): Promise<BuiltStack> {
  const rawConfig = pulumi.runtime.allConfig();
  const config = parseStackConfig(rawConfig, pulumi.getStack());
  requireAlertReceiver(config, rawConfig);
  // Receivers' credentials: set with `pulumi config set --secret`, read only as secrets (SECRET_KEYS), and only those
  // set to a value: getSecret("") is an Output, which counted as a receiver with an empty URL or key.
  const secretConfig = new pulumi.Config(PROJECT);
  const configured = configuredSecrets(rawConfig);
  const alertSecret = (key: (typeof configured)[number]) => (configured.includes(key) ? secretConfig.getSecret(key) : undefined);
  const { sizes } = config;
  const capacity = capacityReport(sizes);
  if (capacity.problems.length > 0) throw new ConfigError(capacity.problems.map((p) => `${PROJECT}:overrides.${p}`).join("\n"));
  const prefix = stackPrefix(config.stack);
  const disposable = sizes.name === "dev";
  // AWS Backup takes everything carrying this tag: the RDS instance and the Qdrant EBS volumes.
  const backupTag = { key: "backup", value: prefix };

  // On every resource Pulumi creates, and (launch templates, ALB controller, EBS CSI driver) on what runs from them.
  const resourceTags = { project: PROJECT, stack: config.stack, tier: sizes.name, "managed-by": "pulumi" };
  const provider = new aws.Provider("aws", { region: config.region as aws.Region, defaultTags: { tags: resourceTags } });
  const opts: pulumi.ComponentResourceOptions = { providers: { aws: provider } };
  // Globally unique S3 bucket names carry the account id.
  const accountId = aws.getCallerIdentityOutput({}, { provider }).accountId;

  // One customer-managed key for data at rest (RDS, ElastiCache, Secrets Manager, ECR, S3); the backup vault has its own.
  // RDS recovery points and the Qdrant snapshots stay under this one, so it is kept as the vault's is: protected
  // outside dev, and no role may disable or delete it (boundaries.ts KEPT_KEYS).
  const dataKey = new aws.kms.Key(
    "data",
    {
      description: `${prefix} data at rest`,
      enableKeyRotation: true,
      deletionWindowInDays: disposable ? 7 : 30,
      tags: { [KEPT_KEY_TAG]: KEPT_KEYS.data },
    },
    { provider, protect: !disposable },
  );
  new aws.kms.Alias("data", { name: `alias/${prefix}-data`, targetKeyId: dataKey.keyId }, { provider });

  // Every role below carries it (the CI deploy role: a boundary of its own, which lets it make roles only under this
  // one). Through the ARN output, so IAM has the policy before any role names it (platform/boundaries.ts).
  const permissionsBoundary = workloadBoundary(prefix, { provider }).arn;

  const network = new Network(
    "network",
    {
      clusterName: prefix,
      region: config.region,
      accountId,
      azCount: sizes.network.azCount,
      instanceTypes: [...new Set(Object.values(sizes.nodeGroups).flatMap((g) => g?.instanceTypes ?? []))],
      natGateways: sizes.network.natGateways,
      flowLogs: config.flowLogs,
      permissionsBoundary,
    },
    opts,
  );

  const cluster = new Cluster(
    "cluster",
    {
      clusterName: prefix,
      region: config.region,
      accountId,
      kubernetesVersion: config.kubernetesVersion,
      vpcId: network.vpcId,
      publicSubnetIds: network.publicSubnetIds,
      privateSubnetIds: network.privateSubnetIds,
      // Production tiers: private endpoint only unless CIDRs are configured (README "Reaching a private endpoint").
      endpointPublicAccessCidrs: config.endpointPublicAccessCidrs ?? (disposable ? ["0.0.0.0/0"] : []),
      endpointPrivateAccessCidrs: config.endpointPrivateAccessCidrs,
      nodeGroups: sizes.nodeGroups,
      movesMinimum: movesMinimum(sizes.schedule),
      logRetentionDays: disposable ? 7 : 90,
      resourceTags,
      permissionsBoundary,
    },
    opts,
  );

  const ci = config.ci.githubRepo
    ? new CiRoles(
        "ci",
        {
          githubRepo: config.ci.githubRepo,
          stack: config.stack,
          prefix,
          clusterName: cluster.name,
          accountId,
          region: config.region,
          oidcProvider: config.ci.ownsOidcProvider ? "create" : (config.ci.oidcProviderArn ?? "lookup"),
          workloadBoundaryArn: permissionsBoundary,
        },
        opts,
      )
    : undefined;

  const database = new Database(
    "database",
    {
      identifier: prefix,
      vpcId: network.vpcId,
      subnetIds: network.privateSubnetIds,
      clientSecurityGroupId: cluster.nodeSecurityGroupId,
      kmsKeyArn: dataKey.arn,
      sizes: sizes.database,
      disposable,
      snapshotIdentifier: config.restore.rdsSnapshotId,
      backupWindow: rdsBackupWindow(sizes.schedule, config.timeZone),
      timeZone: config.timeZone,
      backupTags: { [backupTag.key]: backupTag.value },
    },
    opts,
  );

  const cache = new Cache(
    "cache",
    {
      replicationGroupId: prefix,
      vpcId: network.vpcId,
      subnetIds: network.privateSubnetIds,
      clientSecurityGroupId: cluster.nodeSecurityGroupId,
      kmsKeyArn: dataKey.arn,
      sizes: sizes.cache,
      timeZone: config.timeZone,
    },
    opts,
  );

  const registry = new Registry(
    "registry",
    {
      repositoryName: `${prefix}-api`,
      kmsKeyArn: dataKey.arn,
      keepImages: sizes.registry.keepImages,
      forceDelete: disposable,
    },
    opts,
  );

  const backups = new Backups(
    "backups",
    {
      prefix,
      accountId,
      kmsKeyArn: dataKey.arn,
      sizes: sizes.backups,
      vaultLock: config.backupVaultLock ?? (disposable ? "off" : "governance"),
      schedule: sizes.schedule,
      timeZone: config.timeZone,
      disposable,
      selectionTag: backupTag,
      permissionsBoundary,
    },
    opts,
  );

  new OffPeakSchedules(
    "schedules",
    {
      schedule: sizes.schedule,
      timeZone: config.timeZone,
      nodeGroups: cluster.nodeGroups,
      database: { identifier: database.instance.identifier, arn: database.instance.arn },
      region: config.region,
      accountId,
      permissionsBoundary,
    },
    opts,
  );

  const notifications = new Notifications(
    "notifications",
    { prefix, accountId, emails: notifyEmails(config), eventAlerts: { "backup-jobs": backups.jobFailures } },
    opts,
  );
  const budget = new Budget(
    "budget",
    {
      name: prefix,
      monthlyUsd: sizes.budget.monthlyUsd,
      stack: config.stack,
      topic: { arn: notifications.topicArn, subscribers: notifications.subscribers },
      extraSnsTopicArn: config.budgetSnsTopicArn,
      activateCostTag: config.activateCostTag,
    },
    opts,
  );

  // What the API and the exporters connect with.
  const dbMaster = {
    address: database.address,
    port: database.port,
    name: DB_NAME,
    masterUser: DB_USER,
    masterPassword: database.password,
  };
  const cacheConnection = { address: cache.primaryAddress, port: cache.port, authToken: cache.authToken };

  const workloads = new Workloads(
    "workloads",
    {
      clusterName: cluster.name,
      kubernetesVersion: config.kubernetesVersion,
      kubeconfig: cluster.kubeconfig,
      oidc: cluster.oidc,
      permissionsBoundary,
      clusterReady: [...cluster.nodeGroups.map((g) => g.group), ...cluster.addons],
      resourceTags,
      region: config.region,
      vpcId: network.vpcId,
      loadBalancerCidrs: network.publicSubnetCidrs,
      sizes,
      domain: config.domain && config.hostedZoneId ? { name: config.domain, hostedZoneId: config.hostedZoneId } : undefined,
      docsEnabled: config.docsEnabled,
      corsOrigins: config.corsOrigins,
      disposable,
      backupTag,
      database: dbMaster,
      cache: cacheConnection,
      repositoryUrl: registry.repositoryUrl,
      internetEdge: network.internetEdge,
    },
    opts,
  );

  const k8sOpts: pulumi.ComponentResourceOptions = { providers: { aws: provider, kubernetes: workloads.provider } };
  if (sizes.schedule.offPeak) {
    new OffPeakScaler(
      "offpeak",
      {
        namespace: workloads.namespaces.agent,
        window: sizes.schedule.offPeak,
        timeZone: config.timeZone,
        peak: { apiMinReplicas: sizes.api.minReplicas, ollamaReplicas: sizes.ollama.replicas },
        offPeak: sizes.schedule.offPeakSizes,
        ollama: workloads.ollamaWorkload,
        kubernetesVersion: config.kubernetesVersion,
      },
      k8sOpts,
    );
  }
  const observability = new Observability(
    "observability",
    {
      provider: workloads.provider,
      prefix,
      accountId,
      region: config.region,
      sizes,
      namespace: workloads.namespaces.monitoring,
      hostNamespace: workloads.namespaces.monitoringHost,
      agentNamespace: workloads.namespaces.agent,
      storageClassName: workloads.storageClassName,
      oidc: cluster.oidc,
      permissionsBoundary,
      kmsKeyArn: dataKey.arn,
      disposable,
      database: { address: database.address, port: database.port, name: DB_NAME, ...workloads.databaseMonitor },
      cache: cacheConnection,
      alerting: {
        slackWebhookUrl: alertSecret("alertSlackWebhookUrl"),
        pagerdutyKey: alertSecret("alertPagerdutyKey"),
        sns: { topicArn: notifications.topicArn, publishPolicy: notifications.publishPolicy() },
      },
    },
    k8sOpts,
  );

  new QdrantSnapshots(
    "qdrant-snapshots",
    {
      namespace: workloads.namespaces.agent,
      cron: sizes.backups.qdrantSnapshotCron,
      timezone: config.timeZone,
      replicas: sizes.qdrant.replicas,
      apiKeySecret: workloads.qdrantApiKeySecret,
      bucketName: backups.bucketName,
      bucketArn: backups.bucketArn,
      kmsKeyArn: dataKey.arn,
      region: config.region,
      oidc: cluster.oidc,
      permissionsBoundary,
      scratchGb: sizes.qdrant.storageGb,
    },
    k8sOpts,
  );

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
      apiUrl: workloads.apiUrl,
      imageDigest: workloads.imageDigest,
      schedule: describeSchedule(sizes, config.timeZone),
      dbInstanceId: database.instance.identifier,
      cacheReplicationGroupId: prefix,
      backupBucket: backups.bucketName,
      backupVault: backups.vaultName,
      budget: budget.summary,
      notificationTopicArn: notifications.topicArn,
      // The memory arithmetic of the stateful pods and the GPU (infra/capacity.ts); `npm run plan` prints it.
      capacity: capacity.lines,
      grafanaAdminSecret: observability.grafanaAdminSecretName,
      ...(observability.logBucket ? { logBucket: observability.logBucket } : {}),
      ...(ci ? { ciDeployRoleArn: ci.deployRoleArn, ciPreviewRoleArn: ci.previewRoleArn } : {}),
    },
  };
}
