// Reading the plan's usage assumptions (`config.usage`, resolved by the stack from infra/usage.ts).
export type { S3Usage, Usage } from "../plan/types.ts";

/** The value for a logical name: the first `byName` key contained in the name, else `default`. */
export function byLogicalName<T>(table: { default: T; byName: Record<string, T> }, name: string): T {
  const key = Object.keys(table.byName).find((k) => name.includes(k));
  return key === undefined ? table.default : table.byName[key];
}
