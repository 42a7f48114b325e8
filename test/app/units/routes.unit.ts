import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../../app/src/config.ts";
import { ERROR_CODES, ERROR_STATUS } from "../../../app/src/errors.ts";
import { createLogger } from "../../../app/src/log.ts";
import { createMetrics } from "../../../app/src/metrics.ts";
import { buildApp } from "../../../app/src/server.ts";
import { appEnv, UNUSED_URLS, USER_KEY } from "../../support/app.ts";
import { capturedLog } from "../../support/log.ts";

/** The app as server.ts builds it, every key admitted, over stand-ins no request here reaches (unless given). */
function routes(given: Partial<Pick<Parameters<typeof buildApp>[0], "log" | "documents">> = {}) {
  const unused = {} as never;
  const admitted = { allowed: true, limit: 60, remaining: 59, resetSeconds: 60, store: "memory" as const };
  return buildApp({
    config: loadConfig(appEnv(UNUSED_URLS)),
    log: createLogger("silent"),
    metrics: createMetrics(),
    store: unused,
    rag: unused,
    documents: unused,
    rateLimiter: { windowMs: 60_000, check: async () => admitted },
    authenticate: async () => ({ id: "key:test", scopes: new Set(["query", "admin"]) }),
    probes: {},
    isShuttingDown: () => false,
    shutdownNotice: new AbortController().signal,
    ...given,
  });
}
const withKey = { authorization: `Bearer ${USER_KEY}` };

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
    const res = await app.request(path, { method, headers: withKey });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    assert.match(((await res.json()) as { error: string }).error, new RegExp(`^method ${method} not allowed on ${path}: `));
  }
  for (const path of ["/api/v1/nope", "/api/v1/documents/a/b", "/api/v1/documents/", "/health/x"]) {
    const res = await app.request(path, { method: "PUT", headers: withKey });
    assert.equal(res.status, 404, path);
    assert.equal(res.headers.get("allow"), null);
  }
});

test("a query or feedback body past its route's limit is a 413 before it is parsed; a document ingest takes BODY_LIMIT_BYTES", async () => {
  const app = routes();
  const post = (path: string, bytes: number, declared: boolean) => {
    const body = `{"x":"${"a".repeat(bytes - 8)}"}`;
    const length: Record<string, string> = declared ? { "content-length": String(body.length) } : {};
    return app.request(path, { method: "POST", headers: { ...withKey, "content-type": "application/json", ...length }, body });
  };
  for (const declared of [true, false]) {
    for (const [path, limit] of [
      ["/api/v1/feedback", 64 * 1024],
      ["/api/v1/query", 256 * 1024],
    ] as const) {
      const over = await post(path, limit + 1, declared);
      assert.equal(over.status, 413, `${path}, declared ${declared}`);
      assert.deepEqual(await over.json(), {
        error: `request body exceeds this route's limit (${limit} bytes)`,
        code: "body_too_large",
      });
      // At the limit, it is read and parsed: the schema refuses the unknown field.
      assert.equal((await post(path, limit, declared)).status, 400, `${path} at its limit, declared ${declared}`);
    }
    assert.equal((await post("/api/v1/documents", 1024 * 1024, declared)).status, 400, "a 1 MiB ingest body is read");
  }
});

test("the OpenAPI document declares every status a route under /api/ can answer: the 417, the 500 and the deadline's 504 on each", () => {
  const doc = routes().getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "0" } });
  for (const [path, operations] of Object.entries(doc.paths ?? {})) {
    if (!path.startsWith("/api/")) continue;
    for (const [method, op] of Object.entries(operations as Record<string, { responses: Record<string, unknown> }>)) {
      // Sessions, feedback and the summary listed none: a page waiting on Postgres past REQUEST_TIMEOUT_MS was one.
      // Nor did any declare the 417 every route answers an unknown Expect with, or the 500 of a fault (probe CG).
      for (const status of ["417", "500", "504"]) {
        assert.ok(op.responses[status], `${method.toUpperCase()} ${path} declares ${status}`);
      }
    }
  }
  const sessionResponses = doc.paths?.["/api/v1/sessions/{id}"]?.get?.responses as Record<string, { headers?: object }>;
  const sessions429 = sessionResponses["429"];
  assert.ok(sessions429?.headers && "Retry-After" in sessions429.headers, "the sessions page's 429 declares Retry-After");
});

test("the OpenAPI document's Error schema requires a code, and lists every code errors.ts has and app/README explains with its status", () => {
  const doc = routes().getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "0" } });
  const schema = doc.components?.schemas?.Error as { required?: string[]; properties: { code: { enum?: string[] } } };
  assert.deepEqual(schema.required?.sort(), ["code", "error"]);
  assert.deepEqual(schema.properties.code.enum, [...ERROR_CODES]);
  // The README's table of codes: each code once, in backticks, in the first cell of a row whose second lists the
  // statuses of its codes.
  const readme = readFileSync(fileURLToPath(new URL("../../../app/README.md", import.meta.url)), "utf8");
  const table = readme.split("\n| code | status | meaning |\n|---|---|---|\n")[1]?.split("\n\n")[0] ?? "";
  const explained: string[] = [];
  for (const row of table.split("\n")) {
    const [, codeCell, statusCell] = row.split("|");
    const codes = [...codeCell!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]! as keyof typeof ERROR_STATUS);
    const statuses = [...new Set(codes.map((code) => String(ERROR_STATUS[code])))];
    assert.deepEqual(statusCell!.trim().split(", "), statuses, row);
    explained.push(...codes);
  }
  assert.deepEqual(explained.sort(), [...ERROR_CODES].sort());
});

test("the access log names the API key's id (never the key) of a request it authenticated: who deleted a document", async () => {
  // The corpus is shared: any key may delete or replace any document, and the line held no principal.
  const { log, records } = capturedLog("info");
  const removed: string[] = [];
  const documents = { remove: async (id: string) => removed.push(id) > 0 } as never;
  const app = routes({ log, documents });
  assert.equal((await app.request("/api/v1/documents/doc-1", { method: "DELETE", headers: withKey })).status, 200);
  assert.equal((await app.request("/api/v1/documents/doc-2", { method: "DELETE" })).status, 401);
  assert.deepEqual(removed, ["doc-1"]);
  const lines = records().filter((l) => l.msg === "request");
  assert.deepEqual(
    lines.map((l) => [l.path, l.status, l.principal]),
    [
      ["/api/v1/documents/doc-1", "200", "key:test"],
      ["/api/v1/documents/doc-2", "401", undefined],
    ],
  );
  assert.ok(!JSON.stringify(records()).includes(USER_KEY), "the key itself is never logged");
});
