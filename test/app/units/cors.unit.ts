// CORS_ORIGINS: the pages of the origins listed may call the API from a browser (middleware/cors.ts); unset, the app
// answers as it did without CORS.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../../app/src/config.ts";
import { createLogger } from "../../../app/src/log.ts";
import { createMetrics } from "../../../app/src/metrics.ts";
import { buildApp } from "../../../app/src/server.ts";
import { appEnv, UNUSED_URLS, USER_KEY } from "../../support/app.ts";

const PAGE = "https://app.example.com";
const OTHER_PAGE = "https://evil.example.net";
const withKey = { authorization: `Bearer ${USER_KEY}` };
const preflight = (origin: string, method = "POST") => ({
  origin,
  "access-control-request-method": method,
  "access-control-request-headers": "authorization,content-type",
});

/** The app over stand-ins, counting what reaches the key check and the rate limit; `allowed: false` is a 429. */
function corsApp(env: Record<string, string>, { allowed = true } = {}) {
  const reached = { authenticate: 0, rateLimit: 0, removed: [] as string[] };
  const app = buildApp({
    config: loadConfig(appEnv(UNUSED_URLS, env)),
    log: createLogger("silent"),
    metrics: createMetrics(),
    store: {} as never,
    rag: {} as never,
    documents: { remove: async (id: string) => reached.removed.push(id) > 0 } as never,
    rateLimiter: {
      windowMs: 60_000,
      check: async () => {
        reached.rateLimit++;
        return { allowed, limit: 60, remaining: allowed ? 59 : 0, resetSeconds: 42, store: "memory" as const };
      },
    },
    authenticate: async () => {
      reached.authenticate++;
      return { id: "key:test", scopes: new Set(["query", "admin"]) };
    },
    probes: {},
    isShuttingDown: () => false,
    shutdownNotice: new AbortController().signal,
  });
  return { app, reached };
}

/** The response's Access-Control-* headers, by lowercase name. */
const corsHeaders = (res: Response) =>
  Object.fromEntries([...res.headers].filter(([name]) => name.startsWith("access-control-")));

test("with CORS_ORIGINS unset, no answer carries a CORS header, and an OPTIONS is answered as before: 401 under /api/, 405 elsewhere", async () => {
  const { app, reached } = corsApp({});
  const asked = await app.request("/api/v1/query", { method: "OPTIONS", headers: preflight(PAGE) });
  assert.equal(asked.status, 401);
  assert.equal(((await asked.json()) as { code: string }).code, "missing_api_key");
  const health = await app.request("/health", { method: "OPTIONS", headers: preflight(PAGE, "GET") });
  assert.equal(health.status, 405);
  assert.equal(health.headers.get("allow"), "GET, HEAD");
  const read = await app.request("/api/v1/documents/doc-1", { method: "DELETE", headers: { ...withKey, origin: PAGE } });
  assert.equal(read.status, 200);
  for (const res of [asked, health, read]) {
    assert.deepEqual(corsHeaders(res), {});
    assert.equal(res.headers.get("vary"), null);
  }
  assert.equal(reached.authenticate, 1, "only the DELETE had a key to check");
});

test("a preflight from an allowed origin is a 204 naming the methods, headers and max age, before the key, the rate limit and the body", async () => {
  const { app, reached } = corsApp({ CORS_ORIGINS: `${PAGE}, http://localhost:5173` });
  for (const [path, method] of [
    ["/api/v1/query", "POST"],
    ["/api/v1/documents/doc-1", "DELETE"],
    ["/api/v1/sessions/s-1", "GET"],
    ["/health", "GET"],
  ]) {
    // A preflight carries no Authorization: before, it was the key check's 401, and the browser sent nothing.
    const res = await app.request(path, { method: "OPTIONS", headers: preflight(PAGE, method) });
    assert.equal(res.status, 204, path);
    assert.equal(await res.text(), "");
    assert.deepEqual(
      corsHeaders(res),
      {
        "access-control-allow-origin": PAGE,
        "access-control-allow-methods": "GET,HEAD,POST,DELETE",
        "access-control-allow-headers": "Authorization,Content-Type",
        "access-control-expose-headers":
          "X-Request-Id,Retry-After,RateLimit-Policy,RateLimit-Limit,RateLimit-Remaining,RateLimit-Reset",
        "access-control-max-age": "7200",
      },
      path,
    );
    assert.match(res.headers.get("vary") ?? "", /\bOrigin\b/);
    assert.equal(res.headers.get("access-control-allow-credentials"), null, "no credentials mode: the key is a Bearer header");
  }
  const local = await app.request("/api/v1/query", { method: "OPTIONS", headers: preflight("http://localhost:5173") });
  assert.equal(local.headers.get("access-control-allow-origin"), "http://localhost:5173");
  assert.deepEqual(reached, { authenticate: 0, rateLimit: 0, removed: [] });
});

test("an allowed origin's page may read the answer and its headers: a 200, the key check's 401 and the rate limit's 429", async () => {
  const { app, reached } = corsApp({ CORS_ORIGINS: PAGE });
  const deleted = await app.request("/api/v1/documents/doc-1", { method: "DELETE", headers: { ...withKey, origin: PAGE } });
  assert.equal(deleted.status, 200);
  assert.deepEqual(reached.removed, ["doc-1"]);
  assert.equal(deleted.headers.get("access-control-allow-origin"), PAGE);
  assert.equal(deleted.headers.get("vary"), "Origin");
  const exposed = deleted.headers.get("access-control-expose-headers")!.split(",");
  // Every header the page needs is both sent and exposed.
  for (const name of ["X-Request-Id", "RateLimit-Policy", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]) {
    assert.ok(exposed.includes(name), name);
    assert.ok(deleted.headers.has(name), name);
  }
  assert.equal(deleted.headers.get("access-control-allow-methods"), null, "a preflight's header only");

  const unauthenticated = await app.request("/api/v1/documents/doc-2", { method: "DELETE", headers: { origin: PAGE } });
  assert.equal(unauthenticated.status, 401);
  assert.equal(unauthenticated.headers.get("access-control-allow-origin"), PAGE, "the page can read why");

  const limited = corsApp({ CORS_ORIGINS: PAGE }, { allowed: false }).app;
  const refused = await limited.request("/api/v1/documents/doc-3", { method: "DELETE", headers: { ...withKey, origin: PAGE } });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("access-control-allow-origin"), PAGE);
  assert.equal(refused.headers.get("retry-after"), "42");
  assert.ok(refused.headers.get("access-control-expose-headers")!.split(",").includes("Retry-After"));
});

test("another origin, a request with no Origin and an OPTIONS that is no preflight get no CORS header, only Vary: Origin", async () => {
  const { app, reached } = corsApp({ CORS_ORIGINS: PAGE });
  // Origins match exactly, as the browser serializes them.
  for (const origin of [OTHER_PAGE, "http://app.example.com", "https://app.example.com:8443", "null"]) {
    const asked = await app.request("/api/v1/query", { method: "OPTIONS", headers: preflight(origin) });
    assert.equal(asked.status, 401, `${origin}: answered as without CORS`);
    assert.deepEqual(corsHeaders(asked), {}, origin);
    assert.equal(asked.headers.get("vary"), "Origin", origin);
    const read = await app.request("/health", { headers: { origin } });
    assert.equal(read.status, 200);
    assert.deepEqual(corsHeaders(read), {}, origin);
  }
  const noOrigin = await app.request("/api/v1/documents/doc-1", { method: "DELETE", headers: withKey });
  assert.equal(noOrigin.status, 200);
  assert.deepEqual(corsHeaders(noOrigin), {});
  assert.equal(noOrigin.headers.get("vary"), "Origin");
  // No Access-Control-Request-Method: an OPTIONS request of its own, which the API serves nowhere.
  const plain = await app.request("/health", { method: "OPTIONS", headers: { origin: PAGE } });
  assert.equal(plain.status, 405);
  assert.equal(plain.headers.get("allow"), "GET, HEAD");
  assert.deepEqual(corsHeaders(plain), {});
  assert.equal(reached.rateLimit, 1, "the DELETE only");
});

test("CORS_ORIGINS=* admits every origin's page, with Allow-Origin * and never credentials", async () => {
  const { app, reached } = corsApp({ CORS_ORIGINS: "*" });
  const asked = await app.request("/api/v1/query", { method: "OPTIONS", headers: preflight(OTHER_PAGE) });
  assert.equal(asked.status, 204);
  assert.equal(asked.headers.get("access-control-allow-origin"), "*");
  assert.equal(asked.headers.get("access-control-allow-credentials"), null);
  const deleted = await app.request("/api/v1/documents/doc-1", { method: "DELETE", headers: { ...withKey, origin: OTHER_PAGE } });
  assert.equal(deleted.status, 200);
  assert.equal(deleted.headers.get("access-control-allow-origin"), "*");
  assert.equal(deleted.headers.get("access-control-allow-credentials"), null);
  assert.equal(reached.authenticate, 1);
});
