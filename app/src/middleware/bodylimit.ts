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

export const bodyTooLarge = (maxSize: number) => `request body exceeds BODY_LIMIT_BYTES (${maxSize} bytes)`;

/**
 * One body's most on this request's route, BODY_LIMIT_BYTES (`configured`) or the route's own if lower, and what a
 * body past it is told.
 */
export function bodyLimitOf(c: Context, configured: number): { bytes: number; error: string } {
  const own = ROUTE_BODY_LIMITS[matchedRoute(c) ?? ""];
  return own !== undefined && own < configured
    ? { bytes: own, error: `request body exceeds this route's limit (${own} bytes)` }
    : { bytes: configured, error: bodyTooLarge(configured) };
}

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
    const limit = bodyLimitOf(c, configured);
    if (length !== undefined && length > limit.bytes) return errorJson(c, "body_too_large", limit.error);
    await next();
  });

/** The body's length from Content-Length, when it gives it (not chunked). */
export function declaredLength(c: Context): number | undefined {
  const length = c.req.header("content-length");
  return length !== undefined && c.req.header("transfer-encoding") === undefined && /^\d+$/.test(length)
    ? Number(length)
    : undefined;
}
