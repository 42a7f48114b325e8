import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { errorJson } from "./errors.ts";

export const bodyTooLarge = (maxSize: number) => `request body exceeds BODY_LIMIT_BYTES (${maxSize} bytes)`;

/**
 * A body whose declared length is over `maxSize` gets its 413 from the request's headers, before anything of it is read
 * (and so instead of a 100 Continue), and before the rate limit counts the request. A chunked body has no length to
 * check here: readJsonBody (readbody.ts) counts it as it reads it. A body no route reads is drained by
 * @hono/node-server once the answer is out.
 */
export const limitBody = (maxSize: number) => {
  const tooLarge = (c: Context) => errorJson(c, "body_too_large", bodyTooLarge(maxSize));
  return createMiddleware(async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next(); // no body (hono: raw.body is null)
    // Node's HTTP parser reads no more than Content-Length, so the header is the body's size.
    const length = declaredLength(c);
    if (length !== undefined && length > maxSize) return tooLarge(c);
    await next();
  });
};

/** The body's length from Content-Length, when it gives it (not chunked). */
export function declaredLength(c: Context): number | undefined {
  const length = c.req.header("content-length");
  return length !== undefined && c.req.header("transfer-encoding") === undefined && /^\d+$/.test(length)
    ? Number(length)
    : undefined;
}
