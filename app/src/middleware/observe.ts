import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { Context } from "hono";
import { cutByClose } from "../http.ts";
import { methodLabel, refusedByParser } from "../http-refusals.ts";
import { CLIENT_CLOSED, describeChain } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { clip } from "../text.ts";
import type { AppEnv, Principal } from "../types.ts";

/**
 * The status a request was answered with outside the app, when it was: 499 when the client closed the connection
 * before the response was written (http.ts cutByClose); the parser's 4xx when Node's parser refused the rest of the
 * request (http-refusals.ts). Either way the app's own response goes nowhere. A response queued behind another
 * (pipelined) has no connection yet, and Node 20 neither destroys nor closes it when the connection goes
 * (_http_server.js socketOnClose): its request's connection says so (review N14).
 */
export function answeredOutside(c: Context): number | undefined {
  const { incoming, outgoing } = (c.env as AppEnv["Bindings"] | undefined) ?? {};
  if (!incoming || !outgoing) return undefined;
  const cut = cutByClose(outgoing) || (incoming.socket.destroyed && !outgoing.writableFinished);
  return refusedByParser(incoming) ?? (cut ? CLIENT_CLOSED : undefined);
}

/**
 * Calls `done` once the response is sent whole or its connection closes, whichever comes first (at once when there is
 * no Node response: a test's app.request). A response queued behind another (pipelined) gets no close of its own when
 * the connection goes (answeredOutside): its connection's close counts too.
 */
export function onAnswerEnd(c: Context, done: () => void): void {
  const { incoming, outgoing } = (c.env as AppEnv["Bindings"] | undefined) ?? {};
  if (!incoming || !outgoing || outgoing.writableFinished || incoming.socket.destroyed) {
    done();
    return;
  }
  let ended = false;
  const endOnce = () => {
    if (ended) return;
    ended = true;
    outgoing.off("close", endOnce);
    incoming.socket.off("close", endOnce);
    done();
  };
  outgoing.once("close", endOnce);
  incoming.socket.once("close", endOnce);
}

// Probed every few seconds by the kubelet and the load balancer: logged at debug.
const QUIET_ROUTES = new Set(["/health", "/health/ready", "/health/serving", "/metrics"]);

/** The registered pattern of the route the request matched (`/api/v1/sessions/:id`); none for a 404 or 405. */
export const matchedRoute = (c: Context): string | undefined =>
  matchedRoutes(c)
    .filter((r) => r.method !== "ALL")
    .at(-1)?.path;

/** The route's pattern as a metric label, so label values stay few. */
export const routeLabel = (c: Context): string => matchedRoute(c) ?? "unmatched";

/**
 * Records http_requests_total / http_request_duration_seconds and writes one access-log line per request. A stream
 * (`streamed`) is recorded once it ends, with its whole length and a 499 if its client left before its end: recorded
 * when its head was sent, a stream cut by its client counted as a 200 of a few ms. One that ended with an `error`
 * event is recorded with that error's status (`streamStatus`): as the 200 its head said, a model outage streamed to
 * every client showed no 5xx, and the 5xx alert and success-rate panels read none (probe BW).
 */
export function observe(metrics: Metrics, log: Logger) {
  function record(c: Context<AppEnv>, started: number): void {
    const seconds = (performance.now() - started) / 1000;
    const outside = answeredOutside(c);
    const status = outside ?? c.get("streamStatus") ?? c.res.status;
    const labels = { method: methodLabel(c.req.method), route: routeLabel(c), status: String(status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, seconds);
    // The path is the client's, cut as other echoed text is: a 16 kB path of `%01`s logged 32 kB (probe BJ).
    // `principal` is the API key's id (a hash prefix or its row, never the key; log.ts redacts a field named `key`):
    // any key may delete or replace a shared document, and this line is where the operator learns which did.
    const principal = (c.get("principal") as Principal | undefined)?.id;
    const line = {
      req_id: c.get("requestId"),
      ...labels,
      path: clip(c.req.path),
      ...(principal && { principal }),
      ms: Math.round(seconds * 10_000) / 10,
    };
    if (QUIET_ROUTES.has(labels.route)) log.debug(line, "request");
    else if (outside === CLIENT_CLOSED) log.info(line, "client closed request");
    else if (outside !== undefined) log.info(line, "refused by the HTTP parser");
    // With the error's own text: a client is told less of it (errors.ts publicReason).
    else if (status >= 500) log.error(c.error ? { ...line, err: describeChain(c.error) } : line, "request");
    else log.info(line, "request");
  }

  return createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now();
    c.header("X-Request-Id", c.get("requestId"));
    await next();
    if (!c.get("streamed") || answeredOutside(c) !== undefined) return record(c, started);
    onAnswerEnd(c, () => record(c, started));
  });
}
