import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { Counts } from "../counts.ts";
import { bodyTooLarge } from "./bodylimit.ts";
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

export interface BodyBudget {
  /** BODY_LIMIT_BYTES: one body's most. A declared length over it is limitBody's 413; a chunked body's is counted here. */
  maxBytes: number;
  /** BODIES_MAX_BYTES_RECEIVING: the bytes of bodies one replica holds at once, from their first byte to the answer. */
  maxReceiving: number;
}

const RETRY_SHORTLY = { "Retry-After": "1" };

/**
 * The bodies this replica holds, per key and in all, bounded as ingests are (services/documents.ts): past
 * `maxReceiving` another body is a 503 before it is read (one alone is always taken); a key's first body takes any room
 * left, and past it a key holds at most half, so the rest stays for other keys (a 429, its own use). Read bodies were
 * bounded only by the rate limit: 60 bodies of 2 MiB held back one byte short of their end held 120 MiB per key for the
 * 33 s until the parser's 408, and a chunked body, read before the key was checked, 2-3 MiB per connection with no key
 * at all (probe CC: 400 connections, 827 MB).
 */
function receivingBudget({ maxReceiving }: BodyBudget) {
  const receiving = new Counts();
  return {
    /** Takes `n` more bytes for `key`, or says why not. */
    take(key: string, n: number): { status: 429 | 503; error: string } | undefined {
      const mine = receiving.of(key);
      if (mine > 0 && mine + n > maxReceiving / 2)
        return {
          status: 429,
          error: `this API key is already sending ${mine} bytes of request bodies to this replica, and one key may hold half of BODIES_MAX_BYTES_RECEIVING (${maxReceiving}) once its first body is taken: ask again shortly`,
        };
      if (receiving.total > 0 && receiving.total + n > maxReceiving)
        return {
          status: 503,
          error: `this replica is already receiving ${receiving.total} bytes of request bodies (BODIES_MAX_BYTES_RECEIVING ${maxReceiving}): ask again shortly`,
        };
      receiving.add(key, n);
      return undefined;
    },
    give(key: string, n: number): void {
      receiving.add(key, -n);
    },
  };
}

/**
 * Every POST under /api/ takes a JSON body, and RFC 8259 JSON is UTF-8; this app also takes it only uncompressed.
 * Without this, a gzip body was a 400 "Malformed JSON", a body labelled `br` was read as if it were plain, and bytes
 * that are not UTF-8 were decoded to U+FFFD and stored with a 201. (A Content-Type other than JSON is zod-openapi's
 * 415, after this.)
 *
 * The body is read here once, after the key and its rate limit were checked, within the replica's budget of bodies
 * (receivingBudget), and its text handed to hono's validator through `bodyCache.text`, which `c.req.json()` parses:
 * hono (4.13, request.ts `#cachedBody`) keeps a promise there, although its type says string.
 */
export const readJsonBody = (budget: BodyBudget) => {
  const bodies = receivingBudget(budget);
  const tooLarge = () => ({ status: 413 as const, error: bodyTooLarge(budget.maxBytes) });

  return createMiddleware<AppEnv>(async (c, next) => {
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

    const owner = c.get("principal").id;
    let held = 0;
    try {
      const read = await readWithin(c, budget.maxBytes, (n) => {
        const refusal = n > budget.maxBytes - held ? tooLarge() : bodies.take(owner, n);
        if (!refusal) held += n;
        return refusal;
      });
      if (!(read instanceof Uint8Array))
        return c.json({ error: read.error }, read.status, read.status === 413 ? {} : RETRY_SHORTLY);
      let text: string;
      try {
        text = utf8.decode(read);
      } catch {
        return c.json({ error: "request body is not valid UTF-8 (RFC 8259 JSON is UTF-8)" }, 400);
      }
      if (countJsonContainersAndKeys(text, MAX_BODY_CONTAINERS_AND_KEYS) > MAX_BODY_CONTAINERS_AND_KEYS)
        return c.json({ error: `invalid body: ${tooManyContainersAndKeys}` }, 400);
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
      c.set("bodyBytes", read.byteLength);
      await next();
    } finally {
      bodies.give(owner, held);
    }
  });
};

type Refusal = { status: 413 | 429 | 503; error: string };

/**
 * The body's bytes, each part first taken from the budget by `take` (a refusal ends the read: Node drops the rest).
 * A body of declared length (limitBody refused one over the limit) is taken whole before its first byte is read, so
 * a client waiting for 100 Continue is refused before it sends it; a chunked one as its parts come.
 */
async function readWithin(c: Context<AppEnv>, maxBytes: number, take: (n: number) => Refusal | undefined) {
  const length = c.req.header("content-length");
  if (length !== undefined && /^\d+$/.test(length) && c.req.header("transfer-encoding") === undefined) {
    const refusal = take(Math.min(Number(length), maxBytes));
    return refusal ?? new Uint8Array(await c.req.raw.arrayBuffer());
  }
  const reader = c.req.raw.body?.getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const part = await reader?.read();
    if (!part || part.done) return Buffer.concat(parts);
    const refusal = take(part.value.byteLength);
    if (refusal) {
      void reader!.cancel().catch(() => {});
      return refusal;
    }
    parts.push(part.value);
  }
}
