import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { SERVED_METHODS } from "../http-refusals.ts";
import { ANY_ORIGIN } from "../origins.ts";
import type { AppEnv } from "../types.ts";

/**
 * The request headers a page may send: the key and the JSON body's type. No client X-Request-Id (the app always sets
 * its own, server.ts) and no idempotency header: the API reads neither.
 */
const ALLOWED_HEADERS = ["Authorization", "Content-Type"];

/**
 * The response headers a page may read besides the CORS-safelisted ones (Content-Type, Content-Length...): the
 * request's id (to report an answer), Retry-After of a 429 or 503, and the rate limit's state (middleware/ratelimit.ts).
 */
export const EXPOSED_HEADERS = [
  "X-Request-Id",
  "Retry-After",
  "RateLimit-Policy",
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
];

/**
 * How long a browser keeps a preflight's answer: 2 h, Chromium's cap (Firefox takes up to 24 h). A preflight is per
 * URL, so each session and document id a page reads or deletes costs one.
 */
export const PREFLIGHT_MAX_AGE_SECONDS = 7200;

/**
 * CORS for the pages of `origins` (CORS_ORIGINS), through hono's cors. Mounted before the /api/* chain: a preflight
 * (OPTIONS with Access-Control-Request-Method) carries no Authorization, and is answered 204 before the key, the rate
 * limit or the body are looked at. Credentials mode is never allowed: the API takes a Bearer key, no cookie.
 *
 * Only a request from an allowed origin reaches hono's cors, which answers every OPTIONS with a 204 and sets
 * Access-Control-Expose-Headers whatever the origin: any other request (no Origin, another origin, an OPTIONS that is
 * not a preflight) is answered as without CORS, with `Vary: Origin` alone, since its answer would differ with an
 * allowed Origin (a cache must not give one to the other).
 */
export function corsFor(origins: readonly string[]) {
  const anyOrigin = origins.includes(ANY_ORIGIN);
  const allowed = new Set(origins);
  const handle = cors({
    origin: anyOrigin ? ANY_ORIGIN : [...origins],
    allowMethods: SERVED_METHODS,
    allowHeaders: ALLOWED_HEADERS,
    exposeHeaders: EXPOSED_HEADERS,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
    credentials: false,
  });
  return createMiddleware<AppEnv>(async (c, next) => {
    const origin = c.req.header("origin");
    const admitted = origin !== undefined && (anyOrigin || allowed.has(origin));
    const preflightOrPlain = c.req.method !== "OPTIONS" || c.req.header("access-control-request-method") !== undefined;
    if (admitted && preflightOrPlain) return handle(c, next);
    await next();
    // After: set before, it was lost from the key check's 401, a response of its own (hono's bearer-auth).
    c.header("Vary", "Origin", { append: true });
  });
}
