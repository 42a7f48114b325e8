// What the offline runner (policy/offline.ts) hands a stack policy beyond the engine's arguments.
import type { StackValidationArgs } from "@pulumi/policy";
import type { CostReport, PlanConfig } from "../../infra/plan/types.ts";

export interface OfflineStackArgs extends StackValidationArgs {
  /** The plan's cost when review() estimated it already. */
  cost?: CostReport;
  /** The stack's resolved config (budget after overrides, ...); absent under the engine. */
  planConfig?: PlanConfig;
}
