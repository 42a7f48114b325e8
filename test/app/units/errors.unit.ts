// What a client and the log are told of an error (errors.ts, middleware/errors.ts): no configured secret, a request id
// to find the log line by, and a line for every error the app did not expect.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { describe, noAnswer, treatAsSecret, upstreamFailure } from "../../../app/src/errors.ts";
import { createMetrics } from "../../../app/src/metrics.ts";
import { onError } from "../../../app/src/middleware/errors.ts";
import { buildOpsApp } from "../../../app/src/ops.ts";
import { capturedLog } from "../../support/log.ts";

test("a configured secret of 8 characters or more is taken out of every place an error text shows it", () => {
  // Unlike any other text these checks see: the set of secrets is the process's own.
  const password = "Pw8chars"; // the shortest taken out
  const short = "Pw7char"; // under 8: too common a string to take out of a message
  treatAsSecret(password, short, undefined);
  const echoed = `proxy said: 400 for user:${password}@db (again: ${password}); other: ${short}`;
  assert.equal(
    upstreamFailure("qdrant", echoed).message,
    `qdrant request failed: proxy said: 400 for user:[redacted]@db (again: [redacted]); other: ${short}`,
  );
  const refused = noAnswer("qdrant", Object.assign(new Error(`password ${password} refused`), { code: "ECONNREFUSED" }));
  assert.equal(refused.status, 503);
  assert.equal(refused.message, "qdrant unavailable: password [redacted] refused ECONNREFUSED");
  assert.equal(refused.headers?.["Retry-After"], "1", "a 503 says when to ask again");
});

test("an error is described by its message and its code, once", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:5432"), { code: "ECONNREFUSED" });
  assert.equal(describe(refused), "connect ECONNREFUSED 10.0.0.7:5432", "a code the message names is not repeated");
  const reset = Object.assign(new Error("write failed"), { code: "EPIPE" });
  assert.equal(describe(reset), "write failed EPIPE");
  assert.equal(describe(new Error("fetch failed", { cause: { code: "UND_ERR_SOCKET" } })), "fetch failed UND_ERR_SOCKET");
});

test("an error the app did not expect is a 500 naming its request id, and logged with that id", async () => {
  const { log, records } = capturedLog("error");
  const app = new Hono();
  app.use(requestId());
  app.get("/boom", () => {
    throw new TypeError("cannot read properties of undefined");
  });
  app.onError(onError(log));
  const res = await app.request("/boom");
  assert.equal(res.status, 500);
  const body = (await res.json()) as { error: string; details: { request_id: string } };
  assert.equal(body.error, "internal error", "the error's own text is for the log only");
  assert.match(body.details.request_id, /^[0-9a-f-]{36}$/);
  const logged = records();
  const line = logged.find((l) => l.msg === "unhandled error");
  assert.ok(line, `no "unhandled error" line in ${JSON.stringify(logged)}`);
  assert.equal(line.req_id, body.details.request_id);
  assert.equal(line.err?.message, "cannot read properties of undefined");
});

test("the metrics port answers a failure of its own as JSON {error, code} and logs it, as PORT does", async () => {
  const { log, records } = capturedLog("error");
  const metrics = createMetrics();
  metrics.registry.metrics = () => Promise.reject(new Error("a collect callback threw"));
  const ops = buildOpsApp({ probes: {}, probeTimeoutMs: 100, isShuttingDown: () => false, metrics, log });
  const res = await ops.request("/metrics");
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: "internal error", code: "internal_error" });
  assert.equal(records().find((l) => l.msg === "unhandled error")?.err?.message, "a collect callback threw");
});
