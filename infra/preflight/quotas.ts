// EC2 vCPU quotas (Service Quotas, service code "ec2") by instance family: which quota an instance type
// counts against. Codes from the Service Quotas console / `aws service-quotas list-service-quotas
// --service-code ec2`: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" L-1216C47A,
// "Running On-Demand G and VT instances" L-DB2E81BA, "Running On-Demand P instances" L-417A185B,
// "Running On-Demand Inf instances" L-1945791B; Spot: "All Standard (...) Spot Instance Requests" L-34B43A08,
// "All G and VT Spot Instance Requests" L-3819A6DF, "All P Spot Instance Requests" L-7212CCBC. (Not checkable
// against AWS here; the same code-name pairs appear in many public quota scripts.)

export interface Quota {
  code: string;
  name: string;
}

const ON_DEMAND: Record<string, Quota> = {
  standard: { code: "L-1216C47A", name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" },
  g: { code: "L-DB2E81BA", name: "Running On-Demand G and VT instances" },
  p: { code: "L-417A185B", name: "Running On-Demand P instances" },
  inf: { code: "L-1945791B", name: "Running On-Demand Inf instances" },
};
const SPOT: Record<string, Quota> = {
  standard: { code: "L-34B43A08", name: "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests" },
  g: { code: "L-3819A6DF", name: "All G and VT Spot Instance Requests" },
  p: { code: "L-7212CCBC", name: "All P Spot Instance Requests" },
};

/** The vCPU quota an instance type counts against, or undefined for families this table does not know. */
export function quotaFor(instanceType: string, spot: boolean): Quota | undefined {
  const family = /^([a-z]+)/.exec(instanceType)?.[1] ?? "";
  const group =
    family === "inf"
      ? "inf"
      : family === "vt" || family === "g"
        ? "g"
        : family === "p"
          ? "p"
          : /^[acdhimrtz]$/.test(family)
            ? "standard"
            : undefined;
  return group ? (spot ? SPOT : ON_DEMAND)[group] : undefined;
}

export function requestCommand(code: string, desired: number, region: string): string {
  return `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${code} --desired-value ${desired} --region ${region}`;
}
