/** Qdrant filter evaluation (must / should / must_not, nested filters, match value|any|except|text, range, has_id). */

export type PointId = string | number;

export interface StoredPoint {
  id: PointId;
  vector: number[];
  payload: Record<string, unknown>;
}

type Condition = Record<string, unknown>;
export interface Filter {
  must?: Condition | Condition[] | null;
  should?: Condition | Condition[] | null;
  must_not?: Condition | Condition[] | null;
  min_should?: { conditions: Condition[]; min_count: number } | null;
}

const list = (c: Condition | Condition[] | null | undefined): Condition[] => (c == null ? [] : Array.isArray(c) ? c : [c]);

/** Values at a dotted payload path; arrays are flattened, as Qdrant does for `key: "tags"` or `"a[].b"`. */
export function valuesAt(payload: unknown, key: string): unknown[] {
  let current: unknown[] = [payload];
  for (const part of key.replace(/\[\]/g, "").split(".")) {
    current = current
      .flatMap((v) => (Array.isArray(v) ? v : [v]))
      .map((v) => (v !== null && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined))
      .filter((v) => v !== undefined);
  }
  return current.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

function fieldCondition(c: Condition, point: StoredPoint): boolean {
  const values = valuesAt(point.payload, String(c.key));
  const match = c.match as { value?: unknown; any?: unknown[]; except?: unknown[]; text?: string } | undefined;
  if (match) {
    if ("value" in match) {
      // ValueVariants: a string, an integer or a bool, untagged, as `any` below: a float fails to parse, the same 400.
      if (typeof match.value === "number" && !Number.isInteger(match.value))
        throw new Error("data did not match any variant of untagged enum ValueVariants");
      return values.some((v) => v === match.value);
    }
    if (match.any) {
      // Qdrant reads `any` as AnyVariants, strings or integers, untagged (lib/segment/src/types.rs): a mixed list fails
      // to parse, a 400 "Format error in JSON body" (the Python client's model says the same: List[StrictStr] | List[StrictInt]).
      const kinds = new Set(match.any.map((v) => (typeof v === "string" ? "string" : Number.isInteger(v) ? "integer" : "other")));
      if (kinds.size > 1 || kinds.has("other")) throw new Error("data did not match any variant of untagged enum AnyVariants");
      return values.some((v) => match.any!.includes(v));
    }
    if (match.except) return values.length > 0 && values.every((v) => !match.except!.includes(v));
    if (match.text !== undefined) return values.some((v) => typeof v === "string" && v.includes(match.text!));
  }
  const range = c.range as { gt?: number; gte?: number; lt?: number; lte?: number } | undefined;
  if (range) {
    return values.some(
      (v) =>
        typeof v === "number" &&
        (range.gt === undefined || v > range.gt) &&
        (range.gte === undefined || v >= range.gte) &&
        (range.lt === undefined || v < range.lt) &&
        (range.lte === undefined || v <= range.lte),
    );
  }
  throw new Error(`unsupported condition on ${String(c.key)}`);
}

function condition(c: Condition, point: StoredPoint): boolean {
  if ("must" in c || "should" in c || "must_not" in c || "min_should" in c) return matches(c as Filter, point);
  if ("has_id" in c) return (c.has_id as PointId[]).some((id) => String(id) === String(point.id));
  if ("is_empty" in c) return valuesAt(point.payload, String((c.is_empty as { key: string }).key)).length === 0;
  if ("is_null" in c) return valuesAt(point.payload, String((c.is_null as { key: string }).key)).some((v) => v === null);
  if ("key" in c) return fieldCondition(c, point);
  throw new Error(`unsupported condition ${JSON.stringify(c)}`);
}

export function matches(filter: Filter | null | undefined, point: StoredPoint): boolean {
  if (!filter) return true;
  const should = list(filter.should);
  const minShould = filter.min_should;
  return (
    list(filter.must).every((c) => condition(c, point)) &&
    (should.length === 0 || should.some((c) => condition(c, point))) &&
    !list(filter.must_not).some((c) => condition(c, point)) &&
    (!minShould || minShould.conditions.filter((c) => condition(c, point)).length >= minShould.min_count)
  );
}

export function score(distance: string, a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  if (distance === "Dot") return dot;
  if (distance === "Euclid") return Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]!) ** 2, 0));
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}
