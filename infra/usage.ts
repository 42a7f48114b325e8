// Usage assumptions per tier, like Infracost's usage file: the quantities a plan cannot tell (traffic, data
// volumes). The stack resolves them with its tier (infra/config.ts) and the plan carries them (`config.usage`),
// so the estimator prices what the stack declared and the report prints them for a reviewer to challenge.
// Every figure is a monthly average; change it here, in one place. API requests: G000-HW-MED's 100 req/min is
// 4.4 M a month (medium); small a third of it (30 req/min), large 10x medium; dev has no ALB.
import type { Usage } from "./plan/types.ts";
import type { TierName } from "./tiers.ts";

export const USAGE: Record<TierName, Usage> = {
  dev: {
    natGbPerMonth: 20,
    albLcuPerHour: 0.05,
    nlbLcuPerHour: 0.05,
    apiRequestsPerMonth: 0,
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
    apiRequestsPerMonth: 1_300_000,
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
    apiRequestsPerMonth: 4_400_000,
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
    apiRequestsPerMonth: 44_000_000,
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
