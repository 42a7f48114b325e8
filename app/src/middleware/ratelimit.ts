import { createMiddleware } from "hono/factory";
import type { RateLimiter } from "../services/ratelimit.ts";
import type { AppEnv } from "../types.ts";
import { errorJson } from "./errors.ts";

/** Per-key limit with IETF RateLimit-* headers; 429 carries Retry-After. */
export const rateLimit = (limiter: RateLimiter) => {
  const windowSeconds = limiter.windowMs / 1000;
  return createMiddleware<AppEnv>(async (c, next) => {
    const d = await limiter.check(c.get("principal").id);
    c.header("RateLimit-Policy", `${d.limit};w=${windowSeconds}`);
    c.header("RateLimit-Limit", String(d.limit));
    c.header("RateLimit-Remaining", String(d.remaining));
    c.header("RateLimit-Reset", String(d.resetSeconds));
    if (!d.allowed) {
      c.header("Retry-After", String(d.resetSeconds));
      const error = `rate limit of ${d.limit} requests per ${windowSeconds} s exceeded`;
      return errorJson(c, "rate_limited", error, { retry_after_seconds: d.resetSeconds });
    }
    await next();
  });
};
