// Burstable (T-family) instances: CPU credits beyond the hourly price. In unlimited mode a T instance that runs
// above its baseline for a day pays surplus credits per vCPU-hour (EC2: ec2:cpu-credit-vcpu-hour; RDS db.t3/db.t4g,
// always unlimited: rds:cpu-credit-vcpu-hour). Standard mode throttles to the baseline instead and never bills more.
// vCPUs and baseline per vCPU: docs.aws.amazon.com/ec2/latest/instancetypes/gp.html#gp_burstable and
// docs.aws.amazon.com/AWSEC2/latest/UserGuide/burstable-credits-baseline-concepts.html (RDS classes share the EC2 figures).
import type { PriceTable } from "../prices.ts";

interface Burst {
  vcpus: number;
  /** Share of each vCPU the instance may use without spending credits. */
  baseline: number;
}

const SIZES: Record<string, Burst> = {
  nano: { vcpus: 2, baseline: 0.05 },
  micro: { vcpus: 2, baseline: 0.1 },
  small: { vcpus: 2, baseline: 0.2 },
  medium: { vcpus: 2, baseline: 0.2 },
  large: { vcpus: 2, baseline: 0.3 },
  xlarge: { vcpus: 4, baseline: 0.4 },
  "2xlarge": { vcpus: 8, baseline: 0.4 },
};

/** The burst profile of a T3/T3a/T4g instance type or db.t3/db.t4g class; undefined for anything else. */
export function burstProfile(type: string): Burst | undefined {
  const m = /^(?:db\.)?t(?:3a?|4g)\.([a-z0-9]+)$/.exec(type);
  return m ? SIZES[m[1]] : undefined;
}

export interface CreditCharge {
  /** Expected surplus credits per instance-hour at the assumed average CPU. */
  expectedHourly: number;
  /** Surplus credits per instance-hour at 100 % CPU on every vCPU: the ceiling of unlimited mode. */
  worstHourly: number;
  note: string;
}

/** Surplus credits of one unlimited-mode instance; `usage` gives the stack's burstableCpuUtilization (0-1). */
export function unlimitedCredits(
  type: string,
  service: "ec2" | "rds",
  usage: () => { burstableCpuUtilization: number },
  prices: PriceTable,
): CreditCharge | undefined {
  const burst = burstProfile(type);
  if (!burst) return undefined;
  // Read only for burstable types: other resources price without usage assumptions.
  const averageCpu = usage().burstableCpuUtilization;
  const rate = prices.usd(`${service}:cpu-credit-vcpu-hour`);
  const expectedHourly = burst.vcpus * Math.max(0, averageCpu - burst.baseline) * rate;
  const worstHourly = burst.vcpus * (1 - burst.baseline) * rate;
  const note =
    `unlimited CPU credits: ${Math.round(averageCpu * 100)} % average CPU vs ${Math.round(burst.baseline * 100)} % baseline on ${burst.vcpus} vCPU ` +
    `at $${rate}/vCPU-hour (up to $${(worstHourly * 730).toFixed(2)}/month at full CPU)`;
  return { expectedHourly, worstHourly, note };
}
