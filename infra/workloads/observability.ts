// Connects the monitoring stack (monitoring.ts) to this environment: sizing from the tier, Loki's S3
// bucket and IRSA role in prod tiers, the exporters' credentials as Secrets, alert receivers from secret config.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { irsaRole, kmsThroughS3, type OidcProvider } from "../platform/iam.ts";
import { privateBucket, stackBucket } from "../platform/private-bucket.ts";
import type { Tier } from "../tiers.ts";
import {
  ALERTMANAGER_SERVICE_ACCOUNT,
  EXPORTER_SECRET_KEY,
  GRAFANA_SERVICE_ACCOUNT,
  LOKI_SERVICE_ACCOUNT,
  Monitoring,
  type MonitoringSizing,
} from "./monitoring.ts";
import { NAMESPACES } from "./names.ts";
import { placement } from "./pod.ts";

export interface ObservabilityArgs {
  provider: k8s.Provider;
  prefix: string;
  /** Makes the log bucket's name unique across accounts. */
  accountId: pulumi.Input<string>;
  region: string;
  sizes: Tier;
  namespace: pulumi.Input<string>;
  /** Pod Security "privileged" namespace for node-exporter and the DCGM exporter. */
  hostNamespace: pulumi.Input<string>;
  /** The API's and Qdrant's namespace, where their ServiceMonitors go. */
  agentNamespace: pulumi.Input<string>;
  /** The default StorageClass (its output): Prometheus', Alertmanager's and Loki's volumes. */
  storageClassName: pulumi.Input<string>;
  oidc: OidcProvider;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
  kmsKeyArn: pulumi.Input<string>;
  disposable: boolean;
  /** The exporter's login: the read-only monitor role (db-roles.ts), never the master user. */
  database: {
    address: pulumi.Input<string>;
    port: pulumi.Input<number>;
    name: string;
    user: string;
    password: pulumi.Input<string>;
  };
  cache: { address: pulumi.Input<string>; port: pulumi.Input<number>; authToken: pulumi.Input<string> };
  alerting: {
    slackWebhookUrl?: pulumi.Input<string>;
    pagerdutyKey?: pulumi.Input<string>;
    /** The stack's notifications topic and the IAM policy that may publish to it (platform/notifications.ts). */
    sns: { topicArn: pulumi.Input<string>; publishPolicy: pulumi.Input<string> };
  };
}

/**
 * Read-only: the metrics statements of Grafana's documented CloudWatch policy ("Configure the CloudWatch data
 * source", IAM policy examples, metrics-only) and the one logs call of its health check, less what only EC2
 * variables and Performance Insights use (ec2:DescribeInstances, ec2:DescribeTags, pi:GetResourceMetrics).
 * GetMetricData costs $0.01 per 1,000 metrics requested: cents a month for a dashboard that is looked at.
 */
export const GRAFANA_CLOUDWATCH_POLICY = {
  Version: "2012-10-17",
  Statement: [
    {
      Effect: "Allow",
      Action: [
        "cloudwatch:DescribeAlarmsForMetric",
        "cloudwatch:DescribeAlarmHistory",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:ListMetrics",
        "cloudwatch:GetMetricData",
        "cloudwatch:GetInsightRuleReport",
        "ec2:DescribeRegions",
        "tag:GetResources",
        // The data source's health check ("Save & test") lists one log group after its metrics and reports an error
        // when either fails (grafana pkg/tsdb/cloudwatch checkHealthLogs: DescribeLogGroups, Limit 1).
        "logs:DescribeLogGroups",
      ],
      Resource: "*",
    },
  ],
};

function monitoringSizing(sizes: Tier): MonitoringSizing {
  const m = sizes.monitoring;
  return {
    retentionDays: m.retentionDays,
    storageGb: m.prometheusStorageGb,
    prometheusReplicas: m.prometheusReplicas,
    resources: {
      cpuRequest: m.prometheusCpuRequest,
      memoryRequest: m.prometheusMemoryRequest,
      memoryLimit: m.prometheusMemoryLimit,
    },
    lokiMode: m.lokiMode,
    lokiRetentionDays: m.lokiRetentionDays,
    nodeSelector: sizes.nodeGroups.monitoring ? placement("monitoring").nodeSelector : {},
    gpu: sizes.gpu,
  };
}

export class Observability extends pulumi.ComponentResource {
  readonly grafanaAdminSecretName: pulumi.Output<string>;
  readonly logBucket?: pulumi.Output<string>;

  constructor(name: string, args: ObservabilityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Observability", name, {}, opts);
    const o = { parent: this };
    const sizing = monitoringSizing(args.sizes);

    let loki: { bucketName: pulumi.Output<string>; region: string; roleArn: pulumi.Output<string> } | undefined;
    if (sizing.lokiMode === "s3") {
      const bucket = privateBucket(
        `${name}-logs`,
        {
          bucketName: stackBucket(args.prefix, "logs", args.accountId),
          kmsKeyArn: args.kmsKeyArn,
          versioned: false,
          disposable: args.disposable,
          // Loki's compactor deletes by retention; this only catches what it leaves behind.
          lifecycleRules: [
            {
              id: "expire-after-retention",
              status: "Enabled",
              filter: { prefix: "" },
              expiration: { days: args.sizes.monitoring.lokiRetentionDays + 7 },
              abortIncompleteMultipartUpload: { daysAfterInitiation: 2 },
            },
          ],
        },
        o,
      );
      const { role } = irsaRole(
        `${name}-loki`,
        {
          oidc: args.oidc,
          permissionsBoundary: args.permissionsBoundary,
          namespace: NAMESPACES.monitoring,
          // Named in Loki's values (monitoring.ts LOKI_SERVICE_ACCOUNT): the chart would name it after itself.
          serviceAccount: LOKI_SERVICE_ACCOUNT,
          inlinePolicy: pulumi.jsonStringify({
            Version: "2012-10-17",
            Statement: [
              { Effect: "Allow", Action: ["s3:ListBucket"], Resource: bucket.arn },
              {
                Effect: "Allow",
                Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                Resource: pulumi.interpolate`${bucket.arn}/*`,
              },
              kmsThroughS3(args.kmsKeyArn, args.region),
            ],
          }),
        },
        o,
      );
      loki = { bucketName: bucket.bucket, region: args.region, roleArn: role.arn };
      this.logBucket = bucket.bucket;
    }

    const exporterSecret = (id: string, password: pulumi.Input<string>) =>
      new k8s.core.v1.Secret(
        `${name}-${id}`,
        {
          metadata: { name: id, namespace: args.namespace },
          type: "Opaque",
          stringData: { [EXPORTER_SECRET_KEY]: pulumi.secret(password) },
        },
        o,
      ).metadata.name;

    // Alertmanager publishes to the SNS topic with SigV4 signed by this role's web-identity credentials.
    const { role: alertmanagerRole } = irsaRole(
      `${name}-alertmanager`,
      {
        oidc: args.oidc,
        permissionsBoundary: args.permissionsBoundary,
        namespace: NAMESPACES.monitoring,
        serviceAccount: ALERTMANAGER_SERVICE_ACCOUNT,
        inlinePolicy: args.alerting.sns.publishPolicy,
      },
      o,
    );

    // Grafana reads CloudWatch (the Edge dashboard: ALB and WAF metrics) with this role's web-identity credentials.
    const { role: grafanaRole } = irsaRole(
      `${name}-grafana`,
      {
        oidc: args.oidc,
        permissionsBoundary: args.permissionsBoundary,
        namespace: NAMESPACES.monitoring,
        serviceAccount: GRAFANA_SERVICE_ACCOUNT,
        inlinePolicy: JSON.stringify(GRAFANA_CLOUDWATCH_POLICY),
      },
      o,
    );

    const monitoring = new Monitoring(
      `${name}-stack`,
      {
        provider: args.provider,
        namespace: args.namespace,
        hostNamespace: args.hostNamespace,
        agentNamespace: args.agentNamespace,
        storageClassName: args.storageClassName,
        sizing,
        loki,
        postgres: {
          host: args.database.address,
          port: args.database.port,
          database: args.database.name,
          user: args.database.user,
          secretName: exporterSecret("postgres-exporter", args.database.password),
        },
        redis: {
          host: args.cache.address,
          port: args.cache.port,
          tls: true,
          secretName: exporterSecret("redis-exporter", args.cache.authToken),
        },
        cloudwatch: { region: args.region, roleArn: grafanaRole.arn },
        alerting: {
          slackWebhookUrl: args.alerting.slackWebhookUrl,
          pagerdutyKey: args.alerting.pagerdutyKey,
          sns: { topicArn: args.alerting.sns.topicArn, region: args.region, roleArn: alertmanagerRole.arn },
        },
      },
      o,
    );
    this.grafanaAdminSecretName = monitoring.grafanaAdminSecretName;
    this.registerOutputs({ grafanaAdminSecretName: this.grafanaAdminSecretName });
  }
}
