import { createMiddleware } from "hono/factory";
import { MAX_BODY_CONTAINERS_AND_KEYS } from "../schemas.ts";
import { clip } from "../text.ts";
import type { AppEnv } from "../types.ts";

/**
 * Throws on bytes that are not UTF-8, in the same pass that decodes them (Buffer's `isUtf8` and then a decode cost
 * about 5 us more per request in a scratch benchmark). It drops a leading BOM, which RFC 8259 (8.1) lets a parser ignore.
 */
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * How many objects, arrays and object keys a JSON text holds, counted up to `max + 1`: brackets and colons inside
 * strings are text. A scan of the raw text, so a body with more than any valid request holds is refused before
 * JSON.parse builds them all. Strings are skipped with indexOf, so a document's text costs little to pass over. Text
 * that is not JSON (an unterminated string) ends the count; JSON.parse then says what is wrong with it.
 */
export function countJsonContainersAndKeys(text: string, max: number): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // `{`, `[`, and `:`, which follows each key.
    if (c === 0x7b || c === 0x5b || c === 0x3a) {
      if (++count > max) return count;
    } else if (c === 0x22) {
      // The closing quote: the next one after an even run of backslashes.
      let end = i;
      let slashes: number;
      do {
        end = text.indexOf('"', end + 1);
        if (end === -1) return count;
        slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
      } while (slashes % 2 === 1);
      i = end;
    }
  }
  return count;
}

export const tooManyContainersAndKeys = `more than ${MAX_BODY_CONTAINERS_AND_KEYS} JSON objects, arrays and object keys, more than any valid request holds`;

/** `application/json` or `application/<x>+json`, with any parameters. */
const JSON_MEDIA_TYPE = /^\s*application\/([\w.-]+\+)?json\s*(;|$)/i;

/**
 * Every POST under /api/ takes a JSON body, and RFC 8259 JSON is UTF-8; this app also takes it only uncompressed.
 * Without this, a gzip body was a 400 "Malformed JSON", a body labelled `br` was read as if it were plain, and bytes
 * that are not UTF-8 were decoded to U+FFFD and stored with a 201. (A Content-Type other than JSON is zod-openapi's
 * 415, after this.)
 *
 * The body is read here once, and its text handed to hono's validator through `bodyCache.text`, which `c.req.json()`
 * parses: hono (4.13, request.ts `#cachedBody`) keeps a promise there, although its type says string.
 */
export const readJsonBody = createMiddleware<AppEnv>(async (c, next) => {
  if (c.req.method !== "POST") return next();
  const encoding = c.req.header("content-encoding");
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity")
    return c.json(
      { error: `Content-Encoding ${clip(encoding)} is not supported: send the body uncompressed` },
      415,
      // RFC 9110 15.5.16: a 415 for a content coding says which codings would have been accepted.
      { "Accept-Encoding": "identity" },
    );
  // zod-openapi's media-type gate (its jsonRequestRegex) refuses spellings of JSON that RFC 9110 (8.3.1) allows: a
  // space before `;`, an empty parameter (`application/json;`). The body is UTF-8 JSON whatever the parameters say.
  const type = c.req.header("content-type");
  if (type !== undefined && type !== "application/json" && JSON_MEDIA_TYPE.test(type))
    c.req.raw.headers.set("content-type", "application/json");
  const bytes = await c.req.raw.arrayBuffer();
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return c.json({ error: "request body is not valid UTF-8 (RFC 8259 JSON is UTF-8)" }, 400);
  }
  if (countJsonContainersAndKeys(text, MAX_BODY_CONTAINERS_AND_KEYS) > MAX_BODY_CONTAINERS_AND_KEYS)
    return c.json({ error: `invalid body: ${tooManyContainersAndKeys}` }, 400);
  (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
  c.set("bodyBytes", bytes.byteLength);
  await next();
});
