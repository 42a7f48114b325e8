// The offline plan's data model: what the mocked program registered, and what the cost estimator
// and the policy pack read. The JSON shape is the contract in ../shared/DESIGN.md ("Offline plan").

/** A resource the program registered, as the engine would have seen it. */
export interface PlannedResource {
  /** Pulumi type token, e.g. "aws:eks/nodeGroup:NodeGroup". */
  type: string;
  /** Logical name passed to the constructor. */
  name: string;
  urn: string;
  /** URN of the parent (component) resource, if any. */
  parent?: string;
  /** Top-level component ("network", "cluster", ...) this resource belongs to; "stack" for roots. */
  component: string;
  /** Inputs with secrets replaced by SECRET_PLACEHOLDER. */
  inputs: Record<string, unknown>;
  /** Whether the resource is a custom (cloud) resource or a component. */
  custom: boolean;
  /** Resource options that matter for review. */
  options: { protect?: boolean; ignoreChanges?: string[]; retainOnDelete?: boolean };
}

export const SECRET_PLACEHOLDER = "[secret]";

export interface CostItem {
  type: string;
  name: string;
  component: string;
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  detail?: string;
}

export interface CostReport {
  currency: "USD";
  monthlyUsd: number;
  onDemandMonthlyUsd: number;
  items: CostItem[];
  /** Resource types in the plan with no price and no "free" entry; never silently $0. */
  unpriced: { type: string; name: string }[];
  [extra: string]: unknown;
}

export interface PolicyViolation {
  policy: string;
  resource: string;
  level: "mandatory" | "advisory";
  message: string;
}

export interface PolicyReport {
  violations: PolicyViolation[];
  [extra: string]: unknown;
}

export interface Plan {
  stack: string;
  tier: string;
  region: string;
  resources: PlannedResource[];
  /** Stack outputs, secrets shown as SECRET_PLACEHOLDER. */
  outputs: Record<string, unknown>;
  cost: CostReport | null;
  policies: PolicyReport | null;
}
