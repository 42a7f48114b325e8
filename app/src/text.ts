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

/** `storable` applied to every string (and object key) inside a JSON value; returns the same value when none changes. */
export function storableJson<T>(value: T): T {
  if (typeof value === "string") return storable(value) as T;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = storableJson(value[i]);
      if (item !== value[i]) (copy ??= value.slice())[i] = item;
    }
    return (copy ?? value) as T;
  }
  if (value !== null && typeof value === "object") {
    const source = value as Record<string, unknown>;
    const keys = Object.keys(source);
    let copy: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const [key, item] = [storable(k), storableJson(source[k])];
      if (!copy && (key !== k || item !== source[k])) copy = Object.fromEntries(keys.slice(0, i).map((p) => [p, source[p]]));
      if (copy) copy[key] = item;
    }
    return (copy ?? value) as T;
  }
  return value;
}

/**
 * Text from outside echoed in an answer or a log line (a request's key, an upstream's error body, a request's path) is
 * cut to this many characters.
 */
const MAX_ECHOED_TEXT = 200;

/**
 * Where to end a cut of `text` at `at` UTF-16 units: one unit before when `at` falls inside a character written as two
 * (an emoji, rare Han), whose halves alone are unstorable.
 */
export function pairSafeEnd(text: string, at: number): number {
  const last = text.charCodeAt(at - 1);
  return at < text.length && last >= 0xd800 && last <= 0xdbff ? at - 1 : at;
}

/** `text` cut to MAX_ECHOED_TEXT characters (never inside a surrogate pair), saying how long it was. */
export function clip(text: string): string {
  if (text.length <= MAX_ECHOED_TEXT) return text;
  return `${text.slice(0, pairSafeEnd(text, MAX_ECHOED_TEXT))}... (${text.length} characters)`;
}
