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

test("a stream whose answer fails unexpectedly ends with an error event, and is logged with its request id", async () => {
  const { log, records } = capturedLog("info");
  const prepared = { requestId: "req-1", sessionId: "session-1", model: "m", sources: [], answer: {} };
  const rag = {
    prepare: async () => prepared,
    discard: () => {},
    timedOut: () => new Error("timed out"),
    complete: async () => {
      throw new TypeError("cannot read properties of undefined (reading 'content')");
    },
  } as unknown as Rag;
  const app = new OpenAPIHono<AppEnv>();
  app.use(async (c, next) => {
    c.set("requestId", "req-1");
    c.set("principal", { id: "key:1", scopes: new Set(["query"]) });
    c.set("deadlineAt", performance.now() + 60_000);
    await next();
  });
  registerQueryRoutes(app, rag, log, new AbortController().signal);

  const res = await app.request("/api/v1/query", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "What breaks?", stream: true }),
  });
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
