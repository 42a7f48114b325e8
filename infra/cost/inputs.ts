// Reading resource inputs for pricing. A value the estimator needs may be missing, still unknown (a preview's
// computed-value sentinel) or a secret; each case stops pricing of that one resource with a reason
// (`Unpriceable`), it never turns into $0.
import { SECRET_PLACEHOLDER, UNKNOWN_VALUE } from "../plan/types.ts";

/** Thrown by a pricer that cannot price its resource; the estimator lists the resource as unpriced. */
export class Unpriceable extends Error {
  override name = "Unpriceable";
}

export function isKnown(value: unknown): boolean {
  return value !== undefined && value !== null && value !== UNKNOWN_VALUE && value !== SECRET_PLACEHOLDER;
}

/** The value at a dotted path ("scalingConfig.desiredSize", "blockDeviceMappings.0.ebs"), or undefined. */
export function at(root: unknown, path: string): unknown {
  return atKeys(root, path.split("."));
}

/** The value under these keys, for keys that contain dots themselves (tags, annotations). */
export function atKeys(root: unknown, keys: string[]): unknown {
  let v: unknown = root;
  for (const key of keys) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function describeMissing(value: unknown, path: string): string {
  if (value === UNKNOWN_VALUE) return `${path} is not known until apply`;
  if (value === SECRET_PLACEHOLDER) return `${path} is a secret`;
  return `${path} is not set`;
}

/** A required string input. */
export function needString(inputs: Record<string, unknown>, path: string): string {
  const v = at(inputs, path);
  if (!isKnown(v) || typeof v !== "string") throw new Unpriceable(describeMissing(v, path));
  return v;
}

/** A required number input (numeric strings accepted: config-derived inputs sometimes arrive as strings). */
export function needNumber(inputs: Record<string, unknown>, path: string): number {
  const n = optionalNumber(inputs, path);
  if (n === undefined) throw new Unpriceable(describeMissing(at(inputs, path), path));
  return n;
}

export function optionalNumber(inputs: Record<string, unknown>, path: string): number | undefined {
  const v = at(inputs, path);
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

export function optionalString(inputs: Record<string, unknown>, path: string): string | undefined {
  const v = at(inputs, path);
  return isKnown(v) && typeof v === "string" ? v : undefined;
}

/** Kubernetes storage quantity ("100Gi", "500G", "1Ti", "512Mi") in GiB, the unit EBS bills ("GB-month" of GiB). */
export function quantityToGib(quantity: unknown): number {
  if (typeof quantity === "number") return quantity / 2 ** 30;
  if (typeof quantity !== "string" || !isKnown(quantity)) throw new Unpriceable(`storage size ${String(quantity)} is not known`);
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P)?$/.exec(quantity.trim());
  if (!m) throw new Unpriceable(`storage size "${quantity}" is not a Kubernetes quantity`);
  const value = Number(m[1]);
  const factor: Record<string, number> = {
    "": 1,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
    k: 1e3,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
  };
  return (value * factor[m[2] ?? ""]) / 2 ** 30;
}
