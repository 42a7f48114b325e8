// POST /api/v1/query's stream (routes/query.ts) when its answer fails with an error the app did not expect: what the
// client reads and what the log says.
import assert from "node:assert/strict";
import { test } from "node:test";
import { OpenAPIHono } from "@hono/zod-openapi";
import { registerQueryRoutes } from "../../../app/src/routes/query.ts";
import type { Rag } from "../../../app/src/services/rag.ts";
import type { AppEnv } from "../../../app/src/types.ts";
import { capturedLog } from "../../support/log.ts";
import { parseSse } from "../../support/http.ts";
import { waitFor } from "../../support/process.ts";
import { upstreamFailure } from "../../../app/src/errors.ts";
import { createMetrics } from "../../../app/src/metrics.ts";
import { observe } from "../../../app/src/middleware/observe.ts";

/** The query route, with the access log's middleware, over a rag whose answer fails with `failure`. */
function failingStream(failure: Error) {
  const captured = capturedLog("info");
  const prepared = { requestId: "req-1", sessionId: "session-1", model: "m", sources: [], answer: {} };
  const rag = {
    prepare: async () => prepared,
    discard: () => {},
    timedOut: () => new Error("timed out"),
    complete: async () => {
      throw failure;
    },
  } as unknown as Rag;
  const app = new OpenAPIHono<AppEnv>();
  app.use(async (c, next) => {
    c.set("requestId", "req-1");
    c.set("principal", { id: "key:1", scopes: new Set(["query"]) });
    c.set("deadlineAt", performance.now() + 60_000);
    await next();
  });
  app.use(observe(createMetrics(), captured.log));
  registerQueryRoutes(app, rag, captured.log, new AbortController().signal);
  const ask = () =>
    app.request("/api/v1/query", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "What breaks?", stream: true }),
    });
  return { ask, records: captured.records };
}

test("a stream whose answer fails unexpectedly ends with an error event, and is logged with its request id", async () => {
  const { ask, records } = failingStream(new TypeError("cannot read properties of undefined (reading 'content')"));
  const res = await ask();
  assert.equal(res.status, 200, "the stream's head is sent before its answer fails");
  const events = parseSse(await res.text());
  assert.deepEqual(
    events.at(-1),
    { event: "error", data: { error: "internal error", code: "internal_error" } },
    "the error's own text is not sent",
  );
  assert.equal(events[0]?.event, "meta");

  const logged = records();
  const failed = logged.find((l) => l.msg === "stream failed");
  assert.ok(failed, `no "stream failed" line in ${JSON.stringify(logged)}`);
  assert.equal(failed.req_id, "req-1");
  assert.match(failed.err?.message ?? "", /reading 'content'/);
});

test("a stream that ends with an upstream's error is logged with its status and its reason, as a JSON answer is", async () => {
  const { ask, records } = failingStream(upstreamFailure("ollama", "HTTP 500: model runner crashed"));
  const events = parseSse(await (await ask()).text());
  assert.equal(events.at(-1)?.data.code, "ollama_error");
  await waitFor("the request's line", async () => records().some((l) => l.msg === "request"));
  const line = records().find((l) => l.msg === "request")!;
  assert.equal(line.status, "502");
  assert.match(JSON.stringify(line.err), /model runner crashed/, JSON.stringify(line));
});
