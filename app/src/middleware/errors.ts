import type { Context } from "hono";
import type { Router } from "hono/router";
import type { RouterRoute } from "hono/types";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { AppError, describe, ERROR_STATUS, type ErrorCode, errorBody } from "../errors.ts";
import { clip } from "../text.ts";
import type { Logger } from "../log.ts";
import { answeredOutside } from "./observe.ts";

/**
 * An error answer: `{error, code, details?}` with its code's status (ERROR_STATUS), which a route's typed answers take
 * as declared. `client_closed` is never sent.
 */
export const errorJson = <C extends Exclude<ErrorCode, "client_closed">>(
  c: Context,
  code: C,
  error: string,
  details?: unknown,
  headers?: Record<string, string>,
) => c.json(errorBody(code, error, details), ERROR_STATUS[code], headers);

/** Every error becomes JSON `{error, code, details?}`; only unexpected ones are 500 and logged with their stack. */
export const onError = (log: Logger) => (err: Error, c: Context) => {
  // Reading the body of a request whose client hung up, or whose body the parser refused, fails ("aborted"): it was
  // answered outside the app (or nobody is there to answer), and the error is not ours.
  const outside = answeredOutside(c);
  // Never sent: the client is gone, or has the parser's refusal.
  if (outside !== undefined) {
    return c.json(errorBody("client_closed", "answered outside the app"), outside as ContentfulStatusCode);
  }
  if (err instanceof AppError) return c.json(errorBody(err.type, err.message, err.details), err.status, err.headers);
  if (err instanceof HTTPException) {
    if (err.res) {
      // bearer-auth builds its own JSON response with WWW-Authenticate; the request id set on the context is not in it.
      // Sent as built, not through getResponse(), which wraps its body in a stream of unknown length: the answer went
      // chunked, and an HTTP/1.0 client asking to keep its connection had it closed by every 401.
      err.res.headers.set("X-Request-Id", c.get("requestId"));
      return err.res;
    }
    // zod-openapi's media-type gate says only "Unsupported Media Type"; every body this API takes is JSON.
    if (err.status === 415) {
      const sent = c.req.header("content-type");
      const got = sent ? clip(sent) : "none";
      return errorJson(c, "unsupported_media_type", `${err.message}: send Content-Type: application/json (got ${got})`);
    }
    // The request deadline's 504 (middleware/deadline.ts), or hono's own 400 (its JSON parser's "Malformed JSON in
    // request body", where readbody.ts did not parse first). Any other is not expected: a 500 below.
    const code = err.status === 504 ? "request_timeout" : err.status === 400 ? "invalid_body" : undefined;
    if (code) return errorJson(c, code, err.message || "request failed");
  }
  const requestId: string | undefined = c.get("requestId");
  log.error({ err, req_id: requestId }, "unhandled error");
  return errorJson(c, "internal_error", "internal error", requestId === undefined ? undefined : { request_id: requestId });
};

/**
 * The methods a path is served with, asked of the app's own router (so a path matches here as it would be routed),
 * once per method its routes use; its middleware (method ALL) serves none. HEAD is served wherever GET is (Hono runs
 * the GET handler).
 */
export function methodsByPath(app: { router: Router<[unknown, RouterRoute]>; routes: RouterRoute[] }) {
  let methods: string[] | undefined;
  return (path: string): string[] => {
    methods ??= [...new Set(app.routes.map((r) => r.method).filter((m) => m !== "ALL"))];
    const served = methods.filter((m) => app.router.match(m, path)[0].some(([[, route]]) => route.method === m));
    return served.includes("GET") ? [...served, "HEAD"] : served;
  };
}

/**
 * No route for the request: a 404, or a 405 with `Allow` when the path is a route's under other methods (RFC 9110
 * 15.5.6: a PUT on /api/v1/documents was told "no route", as if the path did not exist). The path is cut as other
 * echoed text is (text.ts clip): a 16 kB path was a 32 kB answer.
 */
export const notFound =
  (allowed: (path: string) => string[] = () => []) =>
  (c: Context) => {
    const methods = allowed(c.req.path);
    if (methods.length > 0) {
      const error = `method ${c.req.method} not allowed on ${clip(c.req.path)}: ${methods.join(", ")}`;
      return errorJson(c, "method_not_allowed", error, undefined, { Allow: methods.join(", ") });
    }
    return errorJson(c, "not_found", `no route for ${c.req.method} ${clip(c.req.path)}`);
  };

const TARGET_NAMES: Record<string, string> = { json: "body", param: "path parameter", query: "query string", header: "header" };

type ValidationResult = { success: true } | { success: false; error: ZodError; target: string };

/**
 * A 400's details list at most this many issues, and each path and message is clipped (text.ts): zod reports every
 * unknown key (and echoes the key), so a 2 MB body of unknown keys made a 2.4 MB answer.
 */
const MAX_ISSUES = 20;

/** zod-openapi validation hook: a 400 whose message names the first bad field, with the issues (bounded) in details. */
export const validationHook = (result: ValidationResult, c: Context) => {
  if (result.success) return;
  const all = result.error.issues;
  const issues = all.slice(0, MAX_ISSUES).map((i) => ({
    path: clip(i.path.join(".")),
    // A bad record key reports "Invalid key in record"; the key schema's own message says why.
    message: clip(i.code === "invalid_key" ? (i.issues[0]?.message ?? i.message) : i.message),
  }));
  if (all.length > MAX_ISSUES) issues.push({ path: "", message: `${all.length - MAX_ISSUES} more issues not listed` });
  const first = issues[0];
  const where = first?.path ? `${first.path}: ` : "";
  const part = TARGET_NAMES[result.target] ?? result.target;
  return errorJson(c, "invalid_request", `invalid ${part}: ${where}${first?.message ?? describe(result.error)}`, issues);
};
