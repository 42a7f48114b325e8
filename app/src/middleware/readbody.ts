import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import type { Gauge } from "prom-client";
import { Counts } from "../counts.ts";
import { bodyLimitOf, declaredLength } from "./bodylimit.ts";
import { matchedRoute } from "./observe.ts";
import { MAX_BODY_CONTAINERS_AND_KEYS } from "../schemas.ts";
import { clip } from "../text.ts";
import type { AppEnv } from "../types.ts";
import { errorJson } from "./errors.ts";

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
  /**
   * BODY_LIMIT_BYTES: one body's most, or its route's if lower (bodyLimitOf). A declared length over it is limitBody's
   * 413; a chunked body is counted here.
   */
  maxBytes: number;
  /** BODIES_MAX_BYTES_RECEIVING: bytes of bodies one replica holds at once (app/README.md says why). */
  maxReceiving: number;
  /** Shows what the replica holds (http_request_body_bytes_held). */
  heldGauge: Pick<Gauge, "set">;
}

type Refusal = { code: "body_too_large" | "bodies_busy_key" | "bodies_busy"; error: string };

const RETRY_SHORTLY = { "Retry-After": "1" };

/**
 * Every POST under /api/ takes a JSON body, and RFC 8259 JSON is UTF-8; this app also takes it only uncompressed.
 * Without this, a gzip body was a 400 "Malformed JSON", a body labelled `br` was read as if it were plain, and bytes
 * that are not UTF-8 were decoded to U+FFFD and stored with a 201. (A Content-Type other than JSON is zod-openapi's
 * 415, after this; a body with none, declared by its length or sent chunked, is refused here with the same 415 before it
 * is read: zod-openapi looks for it in the request this read empties, and such a body was validated as if empty, a 400
 * naming each field it held.)
 *
 * The body is read here once, after the key (`principal`, so requireApiKey runs first) and its rate limit were
 * checked, and held against the replica's budget (`maxReceiving`, shared by keys as Counts.overBudget shares a budget)
 * from its first byte until the request's handler ends. Its text is handed to hono's validator through
 * `bodyCache.text`, which `c.req.json()` parses: hono (4.13, request.ts `#cachedBody`) keeps a promise there,
 * although its type says string.
 */
export const readJsonBody = ({ maxBytes: configured, maxReceiving, heldGauge }: BodyBudget) => {
  const receiving = new Counts();
  const refusal = (owner: string, n: number, held: number): Refusal | undefined => {
    const over = receiving.overBudget(owner, n, maxReceiving, held);
    if (over === "key")
      return {
        code: "bodies_busy_key",
        error: `this API key already holds ${receiving.of(owner) - held} bytes of request bodies on this replica, and one key may hold half of BODIES_MAX_BYTES_RECEIVING (${maxReceiving}) once its first body is taken: ask again shortly`,
      };
    if (over === "replica")
      return {
        code: "bodies_busy",
        error: `this replica already holds ${receiving.total - held} bytes of request bodies (BODIES_MAX_BYTES_RECEIVING ${maxReceiving}): ask again shortly`,
      };
    return undefined;
  };
  const refuse = (c: Context<AppEnv>, { code, error }: Refusal) =>
    errorJson(c, code, error, undefined, code === "body_too_large" ? {} : RETRY_SHORTLY);
  const change = (owner: string, n: number) => {
    receiving.add(owner, n);
    heldGauge.set(receiving.total);
  };

  return createMiddleware<AppEnv>(async (c, next) => {
    // No route takes it (its 404, or a 405 where the path takes other methods): answered without reading its body, as
    // an unknown key is, and no 100 Continue is sent for it.
    if (c.req.method !== "POST" || matchedRoute(c) === undefined) return next();
    const encoding = c.req.header("content-encoding");
    if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity")
      return errorJson(
        c,
        "unsupported_media_type",
        `Content-Encoding ${clip(encoding)} is not supported: send the body uncompressed`,
        undefined,
        // RFC 9110 15.5.16: a 415 for a content coding says which codings would have been accepted.
        { "Accept-Encoding": "identity" },
      );
    // zod-openapi's media-type gate (its jsonRequestRegex) refuses spellings of JSON that RFC 9110 (8.3.1) allows: a
    // space before `;`, an empty parameter (`application/json;`). The body is UTF-8 JSON whatever the parameters say.
    const type = c.req.header("content-type");
    if (type !== undefined && type !== "application/json" && JSON_MEDIA_TYPE.test(type))
      c.req.raw.headers.set("content-type", "application/json");

    const owner = c.get("principal").id;
    const limit = bodyLimitOf(c, configured);
    // Refused before its first byte when its declared length (or a first byte) would be now, nothing held meanwhile:
    // a client waiting for 100 Continue sends nothing then.
    const declared = declaredLength(c);
    if (!type && ((declared ?? 0) > 0 || c.req.header("transfer-encoding") !== undefined))
      throw new HTTPException(415, { message: "Unsupported Media Type" });
    const first = refusal(owner, Math.min(declared || 1, limit.bytes), 0);
    if (first) return refuse(c, first);
    let held = 0;
    try {
      const most = Math.min(declared ?? limit.bytes, limit.bytes);
      const read = await readBody(c, most, limit, (n) => {
        const refused = refusal(owner, n, held);
        if (refused) return refused;
        change(owner, n);
        held += n;
        return undefined;
      });
      if (!(read instanceof Uint8Array)) return refuse(c, read);
      let text: string;
      try {
        text = utf8.decode(read);
      } catch {
        return errorJson(c, "invalid_body", "request body is not valid UTF-8 (RFC 8259 JSON is UTF-8)");
      }
      if (countJsonContainersAndKeys(text, MAX_BODY_CONTAINERS_AND_KEYS) > MAX_BODY_CONTAINERS_AND_KEYS)
        return errorJson(c, "invalid_body", `invalid body: ${tooManyContainersAndKeys}`);
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
      c.set("bodyBytes", read.byteLength);
      await next();
    } finally {
      change(owner, -held);
    }
  });
};

type Hold = (bytes: number) => Refusal | undefined;

/**
 * The body, read off Node's request into one buffer that grows as its bytes come, to twice what came and at most
 * `most` (its declared length, or `maxBytes`): each growth is first taken from the budget by `hold`, and a refusal, or
 * a body past `maxBytes` (413), ends the read; @hono/node-server drains what is left once the answer is out (up to 64
 * MiB or 500 ms, then it closes the connection). What is held is bytes, not parts: a chunked body sent a byte a chunk, kept as parts, held 218 B of
 * heap per byte (probe CE). @hono/node-server's own reader (2.1, readBodyDirect) takes no limit, and a declared
 * length counted before its bytes came let request heads sending nothing fill the budget. A request without a Node
 * request (a test's app.request) is read whole.
 */
function readBody(
  c: Context<AppEnv>,
  most: number,
  { bytes: maxBytes, error }: { bytes: number; error: string },
  hold: Hold,
): Promise<Uint8Array | Refusal> {
  const tooLarge: Refusal = { code: "body_too_large", error };
  const incoming = (c.env as AppEnv["Bindings"] | undefined)?.incoming;
  if (!incoming)
    return c.req.raw.arrayBuffer().then((b) => (b.byteLength > maxBytes ? tooLarge : (hold(b.byteLength) ?? new Uint8Array(b))));
  // Closed (a hang-up, the parser's 408) or read while the key and the rate limit were checked: its `close` came and
  // went, and a read begun now never ended (as @hono/node-server's reader checks too).
  if (incoming.destroyed) return Promise.reject(incoming.errored ?? aborted());
  if (incoming.readableDidRead) return Promise.reject(new Error("request body already read"));
  return new Promise((resolve, reject) => {
    let body = Buffer.alloc(0);
    let size = 0;
    const settle = () => {
      incoming.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
    };
    const refuse = (refusal: Refusal) => {
      settle();
      resolve(refusal);
    };
    const onData = (part: Buffer) => {
      const needed = size + part.byteLength;
      if (needed > maxBytes) return refuse(tooLarge);
      if (needed > body.byteLength) {
        const capacity = Math.min(most, 2 * needed);
        const refused = hold(capacity - body.byteLength);
        if (refused) return refuse(refused);
        const grown = Buffer.allocUnsafe(capacity);
        body.copy(grown, 0, 0, size);
        body = grown;
      }
      part.copy(body, size);
      size += part.byteLength;
    };
    const onEnd = () => {
      settle();
      resolve(body.subarray(0, size));
    };
    const onError = (err: Error) => {
      settle();
      reject(err);
    };
    // Closed before its end (a hang-up), which Node may report without an `error`.
    const onClose = () => onError(aborted());
    incoming.on("data", onData).once("end", onEnd).once("error", onError).once("close", onClose);
  });
}

const aborted = () => Object.assign(new Error("aborted"), { code: "ECONNRESET" });
