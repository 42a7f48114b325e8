import assert from "node:assert/strict";
import { test } from "node:test";
import { OpenAPIHono } from "@hono/zod-openapi";
import { methodsByPath, notFound } from "../../../app/src/middleware/errors.ts";
import { registerDocumentRoutes } from "../../../app/src/routes/documents.ts";
import { registerFeedbackRoutes } from "../../../app/src/routes/feedback.ts";
import { registerHealthRoutes } from "../../../app/src/routes/health.ts";
import { registerQueryRoutes } from "../../../app/src/routes/query.ts";
import { registerSessionRoutes } from "../../../app/src/routes/sessions.ts";
import { createLogger } from "../../../app/src/log.ts";

/** The app's routes as server.ts registers them, over stand-ins no request here reaches. */
function routes() {
  const app = new OpenAPIHono();
  const unused = {} as never;
  registerHealthRoutes(app as never, { probes: {}, probeTimeoutMs: 100, isShuttingDown: () => false, docsEnabled: false });
  registerQueryRoutes(app as never, unused, createLogger("silent"), new AbortController().signal);
  registerDocumentRoutes(app as never, unused);
  registerSessionRoutes(app as never, unused);
  registerFeedbackRoutes(app as never, unused);
  app.notFound(notFound(methodsByPath(app)));
  return app;
}

test("a route's path asked with another method is a 405 naming the methods in Allow; an unknown path a 404", async () => {
  const app = routes();
  // Each was a 404 "no route for PUT /api/v1/documents", as if the path did not exist.
  for (const [method, path, allow] of [
    ["PUT", "/api/v1/documents", "POST"],
    ["GET", "/api/v1/documents/doc-1", "DELETE"],
    ["DELETE", "/api/v1/sessions/s-1", "GET, HEAD"],
    ["GET", "/api/v1/query", "POST"],
    ["POST", "/health", "GET, HEAD"],
  ] as const) {
    const res = await app.request(path, { method });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    assert.match(((await res.json()) as { error: string }).error, new RegExp(`^method ${method} not allowed on ${path}: `));
  }
  for (const path of ["/api/v1/nope", "/api/v1/documents/a/b", "/api/v1/documents/", "/health/x"]) {
    const res = await app.request(path, { method: "PUT" });
    assert.equal(res.status, 404, path);
    assert.equal(res.headers.get("allow"), null);
  }
});

test("the OpenAPI document declares every status a route under /api/ can answer: the deadline's 504 on each", () => {
  const doc = routes().getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "0" } });
  for (const [path, operations] of Object.entries(doc.paths ?? {})) {
    if (!path.startsWith("/api/")) continue;
    for (const [method, op] of Object.entries(operations as Record<string, { responses: Record<string, unknown> }>)) {
      // Sessions, feedback and the summary listed none: a page waiting on Postgres past REQUEST_TIMEOUT_MS was one.
      assert.ok(op.responses["504"], `${method.toUpperCase()} ${path} declares 504`);
    }
  }
  const sessionResponses = doc.paths?.["/api/v1/sessions/{id}"]?.get?.responses as Record<string, { headers?: object }>;
  const sessions429 = sessionResponses["429"];
  assert.ok(sessions429?.headers && "Retry-After" in sessions429.headers, "the sessions page's 429 declares Retry-After");
});
