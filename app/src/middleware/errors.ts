import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { AppError, describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import { CLIENT_CLOSED, clientGone } from "./observe.ts";

/** Every error becomes JSON `{error, details?}`; only unexpected ones are 500 and logged with their stack. */
export const onError = (log: Logger) => (err: Error, c: Context) => {
  // Reading the body of a request whose client hung up fails ("aborted"); nobody is there to answer, and it is not ours.
  if (clientGone(c)) return c.json({ error: "client closed request" }, CLIENT_CLOSED as ContentfulStatusCode);
  if (err instanceof AppError) {
    const body = { error: err.message, ...(err.details === undefined ? {} : { details: err.details }) };
    return c.json(body, err.status, err.headers);
  }
  if (err instanceof HTTPException) {
    if (err.res) return err.getResponse(); // bearer-auth builds its own JSON response with WWW-Authenticate
    return c.json({ error: err.message || "request failed" }, err.status);
  }
  log.error({ err, req_id: c.get("requestId") }, "unhandled error");
  return c.json({ error: "internal error", details: { request_id: c.get("requestId") } }, 500);
};

export const notFound = (c: Context) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404);

const TARGET_NAMES: Record<string, string> = { json: "body", param: "path parameter", query: "query string", header: "header" };

type ValidationResult = { success: true } | { success: false; error: ZodError; target: string };

/** zod-openapi validation hook: a 400 whose message names the first bad field, with every issue in details. */
export const validationHook = (result: ValidationResult, c: Context) => {
  if (result.success) return;
  const issues = result.error.issues.map((i) => ({
    path: i.path.join("."),
    // A bad record key reports "Invalid key in record"; the key schema's own message says why.
    message: i.code === "invalid_key" ? (i.issues[0]?.message ?? i.message) : i.message,
  }));
  const first = issues[0];
  const where = first?.path ? `${first.path}: ` : "";
  const part = TARGET_NAMES[result.target] ?? result.target;
  return c.json({ error: `invalid ${part}: ${where}${first?.message ?? describe(result.error)}`, details: issues }, 400);
};
