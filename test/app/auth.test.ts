import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";
import postgres from "postgres";
import { ADMIN_KEY, OTHER_KEY, startStack, USER_KEY, type Stack } from "../support/app.ts";
import { api } from "../support/http.ts";

const LIMIT = 5;
const DB_KEY = "db-stored-key-abcdefghijklmnop";
const DB_ADMIN_KEY = "db-stored-admin-key-abcdefghijkl";
const REVOKED_KEY = "db-revoked-key-abcdefghijklmnop";
const FRESH_KEY = "db-fresh-key-abcdefghijklmnopqr";
const DASHBOARD_KEY = "db-dashboard-key-abcdefghijklmn";
const NO_SCOPE_KEY = "db-no-scope-key-abcdefghijklmno";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

let stack: Stack;

before(async () => {
  stack = await startStack({ RATE_LIMIT_PER_MINUTE: String(LIMIT) });
  const sql = postgres(stack.pg.url, { onnotice: () => {} });
  await sql`INSERT INTO api_keys (name, key_hash, scopes) VALUES
    ('ci', ${sha256(DB_KEY)}, '{query}'),
    ('ops', ${sha256(DB_ADMIN_KEY)}, '{query,admin}'),
    ('fresh', ${sha256(FRESH_KEY)}, '{query}'),
    ('dashboard', ${sha256(DASHBOARD_KEY)}, '{admin}'),
    ('disabled', ${sha256(NO_SCOPE_KEY)}, '{}')`;
  await sql`INSERT INTO api_keys (name, key_hash, revoked_at) VALUES ('old', ${sha256(REVOKED_KEY)}, now())`;
  const stored = await sql`SELECT key_hash FROM api_keys`;
  assert.ok(
    stored.every((r) => !String(r.key_hash).includes("db-")),
    "only hashes are stored",
  );
  await sql.end();
});
after(() => stack.stop());

test("a request without a key is refused with 401 and a reason", async () => {
  for (const [method, path] of [
    ["GET", "/api/v1/sessions/x"],
    ["POST", "/api/v1/query"],
    ["GET", "/api/v1/admin/feedback/summary"],
  ] as const) {
    const res = await api(stack.url).send(method, path, method === "POST" ? { query: "hi" } : undefined);
    assert.equal(res.status, 401, `${method} ${path}`);
    assert.match(res.body.error, /missing Authorization: Bearer/);
    assert.equal(res.body.code, "missing_api_key");
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
    // The id of its access-log line, as every other answer carries it.
    assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    // Its length told, as every other JSON answer's: sent chunked, it closed an HTTP/1.0 client's kept-alive connection.
    assert.equal(res.headers.get("content-length"), String(Buffer.byteLength(res.text)), `${method} ${path}`);
  }
});

test("a wrong or revoked key gets 401, a malformed header 400", async () => {
  const wrong = await api(stack.url, "not-a-real-key-0123456789").get("/api/v1/sessions/x");
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error, "invalid API key");
  assert.equal(wrong.body.code, "invalid_api_key");
  assert.equal((await api(stack.url, REVOKED_KEY).get("/api/v1/sessions/x")).status, 401);

  const basic = await api(stack.url).get("/api/v1/sessions/x", { authorization: "Basic dXNlcjpwYXNz" });
  assert.equal(basic.status, 400);
  assert.match(basic.body.error, /malformed Authorization header/);
  assert.equal(basic.body.code, "malformed_authorization");
  for (const refused of [wrong, basic]) assert.match(refused.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
});

test("keys from API_KEYS, ADMIN_API_KEYS and the api_keys table are accepted", async () => {
  for (const key of [USER_KEY, ADMIN_KEY, DB_KEY, DB_ADMIN_KEY]) {
    const res = await api(stack.url, key).get("/api/v1/sessions/none");
    assert.equal(res.status, 404, `key ${key.slice(0, 8)}: ${res.text}`);
  }
});

test("admin routes need the admin scope", async () => {
  for (const key of [USER_KEY, DB_KEY]) {
    const res = await api(stack.url, key).get("/api/v1/admin/feedback/summary");
    assert.equal(res.status, 403);
    assert.match(res.body.error, /lacks the 'admin' scope/);
    assert.equal(res.body.code, "missing_scope");
  }
  for (const key of [ADMIN_KEY, DB_ADMIN_KEY]) {
    const res = await api(stack.url, key).get("/api/v1/admin/feedback/summary");
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { total: 0, average_score: null, by_model: [] });
  }
});

test("every other /api/ route needs the query scope: a key without it can neither ask, ingest nor delete", async () => {
  const routes = [
    ["POST", "/api/v1/query", { query: "hi" }],
    ["POST", "/api/v1/documents", { documents: [{ id: "scoped", text: "some text" }] }],
    ["DELETE", "/api/v1/documents/scoped", undefined],
    ["GET", "/api/v1/sessions/none", undefined],
    ["POST", "/api/v1/feedback", { request_id: "00000000-0000-4000-8000-000000000000", score: 1 }],
  ] as const;
  for (const key of [DASHBOARD_KEY, NO_SCOPE_KEY]) {
    for (const [method, path, body] of routes) {
      const res = await api(stack.url, key).send(method, path, body);
      assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
      assert.match(res.body.error, /lacks the 'query' scope/);
    }
  }
  const summary = await api(stack.url, DASHBOARD_KEY).get("/api/v1/admin/feedback/summary");
  assert.equal(summary.status, 200, "an admin-only key reads the summary");
  assert.equal((await api(stack.url, NO_SCOPE_KEY).get("/api/v1/admin/feedback/summary")).status, 403);
});

test("health and the agent card need no key; metrics live on METRICS_PORT only, docs only with DOCS_ENABLED", async () => {
  for (const path of ["/health", "/health/ready", "/.well-known/agent.json"]) {
    assert.equal((await api(stack.url).get(path)).status, 200, path);
  }
  for (const path of ["/metrics", "/openapi.json", "/docs"]) {
    const res = await api(stack.url).get(path);
    assert.equal(res.status, 404, `${path} must not be served on PORT: ${res.text.slice(0, 100)}`);
  }
  const card = await api(stack.url).get("/.well-known/agent.json");
  assert.equal(card.body.openapi, undefined, "the card does not point at disabled docs");
  assert.notEqual(new URL(stack.metricsUrl).port, new URL(stack.url).port);
  const metrics = await api(stack.metricsUrl).get("/metrics");
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /^http_requests_total\{/m);
  // The metrics port answers another method as PORT does: a 405 naming the methods it takes, not a 404.
  const posted = await fetch(`${stack.metricsUrl}/metrics`, { method: "POST" });
  assert.deepEqual([posted.status, posted.headers.get("allow")], [405, "GET, HEAD"]);
});

test("each key has its own sliding-window limit with RateLimit headers; past it, 429 with Retry-After", async () => {
  const limited = api(stack.url, OTHER_KEY);
  const remaining: number[] = [];
  for (let i = 0; i < LIMIT; i++) {
    const res = await limited.get("/api/v1/sessions/none");
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("ratelimit-limit"), String(LIMIT));
    assert.equal(res.headers.get("ratelimit-policy"), `${LIMIT};w=60`);
    remaining.push(Number(res.headers.get("ratelimit-remaining")));
  }
  assert.deepEqual(remaining, [4, 3, 2, 1, 0]);

  const refused = await limited.get("/api/v1/sessions/none");
  assert.equal(refused.status, 429);
  assert.match(refused.body.error, /rate limit of 5 requests per 60 s exceeded/);
  assert.equal(refused.body.code, "rate_limited");
  const retryAfter = Number(refused.headers.get("retry-after"));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.equal(refused.headers.get("ratelimit-remaining"), "0");

  const other = await api(stack.url, FRESH_KEY).get("/api/v1/sessions/none");
  assert.equal(other.status, 404, "another key is not limited");
  assert.equal(other.headers.get("ratelimit-remaining"), String(LIMIT - 1));
});
