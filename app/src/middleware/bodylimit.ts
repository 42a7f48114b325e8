import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { errorJson } from "./errors.ts";
import { matchedRoute } from "./observe.ts";

/**
 * Routes whose every valid body is far below BODY_LIMIT_BYTES: a body past this is refused as the limit's is. A 2 MiB
 * body of a million numbers, refused by the schema after it was parsed, cost a feedback post 53-118 ms of the event
 * loop (probe CP). Each is about twice its largest valid body with every character written as a `\u` escape: a
 * 5,000-character question with a filter of 16,384 characters, a 5,000-character comment.
 */
const ROUTE_BODY_LIMITS: Record<string, number> = {
  "/api/v1/query": 256 * 1024,
  "/api/v1/feedback": 64 * 1024,
};

/** One body's most on this request's route: BODY_LIMIT_BYTES (`configured`), or the route's own if lower. */
export const bodyLimitOf = (c: Context, configured: number): number =>
  Math.min(configured, ROUTE_BODY_LIMITS[matchedRoute(c) ?? ""] ?? configured);

export const bodyTooLarge = (maxSize: number, configured = maxSize) =>
  maxSize < configured
    ? `request body exceeds this route's limit (${maxSize} bytes)`
    : `request body exceeds BODY_LIMIT_BYTES (${maxSize} bytes)`;

/**
 * A body whose declared length is over its route's limit (bodyLimitOf) gets its 413 from the request's headers, before anything of it is read
 * (and so instead of a 100 Continue), and before the rate limit counts the request. A chunked body has no length to
 * check here: readJsonBody (readbody.ts) counts it as it reads it. A body no route reads is drained by
 * @hono/node-server once the answer is out.
 */
export const limitBody = (configured: number) =>
  createMiddleware(async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next(); // no body (hono: raw.body is null)
    // Node's HTTP parser reads no more than Content-Length, so the header is the body's size.
    const length = declaredLength(c);
    const maxSize = bodyLimitOf(c, configured);
    if (length !== undefined && length > maxSize) return errorJson(c, "body_too_large", bodyTooLarge(maxSize, configured));
    await next();
  });

/** The body's length from Content-Length, when it gives it (not chunked). */
export function declaredLength(c: Context): number | undefined {
  const length = c.req.header("content-length");
  return length !== undefined && c.req.header("transfer-encoding") === undefined && /^\d+$/.test(length)
    ? Number(length)
    : undefined;
}
