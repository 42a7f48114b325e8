// Usage assumptions per tier, like Infracost's usage file: the quantities a plan cannot tell (traffic, data
// volumes). The report prints them beside the estimate so a reviewer can challenge them. Every figure is a
// monthly average; change it here, in one place.
import type { TierName } from "../tiers.ts";

export interface S3Usage {
  /** GB in S3 Standard (Loki chunks, Qdrant snapshots, recent backups). */
  standardGb: number;
  /** GB after the lifecycle rule moved them to Glacier Flexible Retrieval. */
  glacierGb: number;
}

export interface Usage {
  /** GB processed by all NAT gateways together (model and package downloads, external APIs; S3 goes through the gateway endpoint). */
  natGbPerMonth: number;
  /** Average load balancer capacity units per ALB per hour (guide 000: ALB "~$20/month + data transfer"). */
  albLcuPerHour: number;
  /** Average NLB capacity units per NLB per hour (only for Services of type LoadBalancer). */
  nlbLcuPerHour: number;
  /** GB ingested per month into each CloudWatch log group, by a substring of its logical name; `default` for the rest. */
  logGbPerMonth: { default: number; byName: Record<string, number> };
  /** GB per month RDS exports to CloudWatch Logs (postgresql log) when `enabledCloudwatchLogsExports` is set. */
  rdsLogGbPerMonth: number;
  /** GB of recovery points in each AWS Backup vault (RDS snapshots; 7 daily, 4 weekly, 12 monthly, incremental). */
  backupGb: number;
  /**
   * GB of EBS recovery points kept per GB of backed-up volume (Qdrant's): incremental snapshots store the used
   * blocks once plus what changed between the 23 kept points; 1.0 means "about one volume's size".
   */
  ebsBackupGbPerVolumeGb: number;
  /** Average CPU (0-1) of a burstable (T-family) instance, for the surplus credits of unlimited mode. */
  burstableCpuUtilization: number;
  /** GB of ElastiCache snapshots beyond the one free snapshot per cluster. */
  snapshotGb: number;
  /** Per S3 bucket, by a substring of its logical name; `default` for the rest. */
  s3: { default: S3Usage; byName: Record<string, S3Usage> };
  /** GB of images in each ECR repository (the lifecycle policy keeps the last N). */
  ecrGb: number;
}

export const USAGE: Record<TierName, Usage> = {
  dev: {
    natGbPerMonth: 20,
    albLcuPerHour: 0.05,
    nlbLcuPerHour: 0.05,
    logGbPerMonth: { default: 0.5, byName: { cluster: 2, flow: 0.5 } },
    rdsLogGbPerMonth: 0.5,
    backupGb: 10,
    ebsBackupGbPerVolumeGb: 1,
    burstableCpuUtilization: 0.2,
    snapshotGb: 0,
    s3: { default: { standardGb: 5, glacierGb: 0 }, byName: {} },
    ecrGb: 2,
  },
  small: {
    natGbPerMonth: 200,
    albLcuPerHour: 0.5,
    nlbLcuPerHour: 0.5,
    logGbPerMonth: { default: 2, byName: { cluster: 15, flow: 3 } },
    rdsLogGbPerMonth: 5,
    backupGb: 150,
    ebsBackupGbPerVolumeGb: 1,
    burstableCpuUtilization: 0.25,
    snapshotGb: 2,
    s3: { default: { standardGb: 100, glacierGb: 200 }, byName: {} },
    ecrGb: 10,
  },
  medium: {
    natGbPerMonth: 500,
    albLcuPerHour: 1,
    nlbLcuPerHour: 1,
    logGbPerMonth: { default: 5, byName: { cluster: 30, flow: 5 } },
    rdsLogGbPerMonth: 10,
    backupGb: 600,
    ebsBackupGbPerVolumeGb: 1,
    burstableCpuUtilization: 0.25,
    snapshotGb: 10,
    s3: { default: { standardGb: 300, glacierGb: 1000 }, byName: {} },
    ecrGb: 20,
  },
  large: {
    natGbPerMonth: 1500,
    albLcuPerHour: 3,
    nlbLcuPerHour: 3,
    logGbPerMonth: { default: 10, byName: { cluster: 80, flow: 10 } },
    rdsLogGbPerMonth: 25,
    backupGb: 2000,
    ebsBackupGbPerVolumeGb: 1,
    burstableCpuUtilization: 0.25,
    snapshotGb: 30,
    s3: { default: { standardGb: 1000, glacierGb: 4000 }, byName: {} },
    ecrGb: 40,
  },
};

/** The usage of a tier; an unknown tier (a plan from elsewhere) gets medium's, and says so. */
export function usageFor(tier: string): { usage: Usage; tier: TierName; assumed: boolean } {
  if (tier in USAGE) return { usage: USAGE[tier as TierName], tier: tier as TierName, assumed: false };
  return { usage: USAGE.medium, tier: "medium", assumed: true };
}

/** The value for a logical name: the first `byName` key contained in the name, else `default`. */
export function byLogicalName<T>(table: { default: T; byName: Record<string, T> }, name: string): T {
  const key = Object.keys(table.byName).find((k) => name.includes(k));
  return key === undefined ? table.default : table.byName[key];
}
