import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";

/**
 * hono's bodyLimit with its own decisions taken from the request line and headers first. hono makes them too, but
 * only after reading `c.req.raw.body`, which makes @hono/node-server build a web Request and stream the body through
 * it: that halved cache-hit throughput in `npm run bench:app`. Only a chunked or odd request reaches hono's
 * byte-counting check.
 */
export const limitBody = (maxSize: number) => {
  const tooLarge = (c: Context) => c.json({ error: `request body exceeds ${maxSize} bytes` }, 413);
  const counting = bodyLimit({ maxSize, onError: tooLarge });
  return createMiddleware(async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next(); // no body (hono: raw.body is null)
    const length = c.req.header("content-length");
    if (length === undefined || !/^\d+$/.test(length) || c.req.header("transfer-encoding") !== undefined)
      return counting(c, next);
    // Node's HTTP parser reads no more than Content-Length, so the header is the body's size.
    if (Number(length) > maxSize) return tooLarge(c);
    await next();
  });
};
