import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { Context } from "hono";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { AppEnv } from "../types.ts";

/** nginx's "client closed request": the client went away before the answer; not a server error. */
export const CLIENT_CLOSED = 499;

/** True when the client closed the connection before the response was written. */
export function clientGone(c: Context): boolean {
  const outgoing = (c.env as AppEnv["Bindings"] | undefined)?.outgoing;
  return outgoing ? outgoing.destroyed && !outgoing.writableFinished : false;
}

const QUIET_ROUTES = new Set(["/health", "/health/ready", "/metrics"]);

/** The registered pattern of the handler that answered (`/api/v1/sessions/:id`), so label values stay few. */
export function routeLabel(c: Context): string {
  const handlers = matchedRoutes(c).filter((r) => r.method !== "ALL");
  return handlers.at(-1)?.path ?? "unmatched";
}

/** Records http_requests_total / http_request_duration_seconds and writes one access-log line per request. */
export const observe = (metrics: Metrics, log: Logger) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now();
    c.header("X-Request-Id", c.get("requestId"));
    await next();
    const seconds = (performance.now() - started) / 1000;
    const gone = clientGone(c);
    const labels = { method: c.req.method, route: routeLabel(c), status: String(gone ? CLIENT_CLOSED : c.res.status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, seconds);
    const line = { req_id: c.get("requestId"), ...labels, path: c.req.path, ms: Math.round(seconds * 10_000) / 10 };
    if (QUIET_ROUTES.has(labels.route)) log.debug(line, "request");
    else if (gone) log.info(line, "client closed request");
    else if (c.res.status >= 500) log.error(line, "request");
    else log.info(line, "request");
  });
