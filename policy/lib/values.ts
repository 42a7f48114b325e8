// Small readers for resource properties as policies receive them: booleans may arrive as "true" (launch
// template EBS flags are strings), provider properties arrive JSON-encoded, lists may be absent.
import { UnknownValueError } from "@pulumi/policy";
import { UNKNOWN_VALUE } from "../../infra/plan/types.ts";

/** The engine's marker of a value a preview cannot know yet, which the cost estimator reads too. */
export { UNKNOWN_VALUE };

export function isTrue(value: unknown): boolean {
  return value === true || value === "true";
}

export function isFalse(value: unknown): boolean {
  return value === false || value === "false";
}

export function asArray<T>(value: T | T[] | null | undefined): T[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

export function asRecord(value: unknown): Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, any>) : {};
}

/** Provider inputs reach policies JSON-encoded ("{\"tags\":{...}}"); plain objects pass through. */
export function decodeJson(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

export function asNumber(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return undefined;
}

/**
 * A plain copy of a stack policy's props in which each value a real preview cannot know yet is `unknown`. The
 * engine's props are a proxy that throws UnknownValueError on reading such a value (@pulumi/policy proxy.js), and the
 * pack server then turns the whole stack policy into an advisory "can't run during preview": the cost estimator read
 * one unknown node group name and stack-within-budget, mandatory, judged nothing. Offline props are plain, copied as
 * they are.
 */
export function withUnknowns(value: unknown, unknown: string = UNKNOWN_VALUE): unknown {
  if (typeof value !== "object" || value === null) return value;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [] : {};
  for (const key of Object.keys(value)) {
    const field = readKnown(() => (value as Record<string, unknown>)[key]);
    (copy as Record<string, unknown>)[key] = field === UNKNOWN_VALUE ? unknown : withUnknowns(field, unknown);
  }
  return copy;
}

/**
 * `read()`'s value, or UNKNOWN_VALUE where a real preview cannot know it yet (the engine's proxy throws on reading it,
 * and the pack server then skips the whole policy for the resource): e.g. the ARN of a key created in the same update.
 */
export function readKnown<T>(read: () => T): T | typeof UNKNOWN_VALUE {
  try {
    return read();
  } catch (err) {
    if (err instanceof UnknownValueError) return UNKNOWN_VALUE;
    throw err;
  }
}

/** A resource's props as a plain record, each value not known yet the engine's marker (withUnknowns). */
export const knownProps = (r: { props: Record<string, any> }): Record<string, any> => asRecord(withUnknowns(r.props));
