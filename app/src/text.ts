/**
 * The one rule for characters PostgreSQL refuses: NUL (text and jsonb reject it) and UTF-16 surrogates without their
 * pair (not Unicode; jsonb rejects their `\ud800` escapes). Requests carrying them are refused at the edge (schemas.ts,
 * 400 naming the field); anything else headed for storage (model output, chunks already in Qdrant) is normalised
 * with `storable`, so no stored or retrieved text can make a statement fail.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what Postgres text and jsonb refuse.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, "g");

export const UNSTORABLE_MESSAGE = "must not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters";

export const isStorable = (text: string): boolean => !UNSTORABLE.test(text);

/** Replaces each unstorable character with U+FFFD; returns the same string when there is none. */
export const storable = (text: string): string => (UNSTORABLE.test(text) ? text.replace(UNSTORABLE_ALL, "\ufffd") : text);

/** `storable` applied to every string (and object key) inside a JSON value. */
export function storableJson<T>(value: T): T {
  if (typeof value === "string") return storable(value) as T;
  if (Array.isArray(value)) return value.map(storableJson) as T;
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [storable(k), storableJson(v)])) as T;
  }
  return value;
}
