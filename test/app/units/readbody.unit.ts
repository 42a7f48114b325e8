import assert from "node:assert/strict";
import { once } from "node:events";
import { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Hono } from "hono";
import { readJsonBody } from "../../../app/src/middleware/readbody.ts";
import type { AppEnv } from "../../../app/src/types.ts";

/** readJsonBody alone behind a key, its body read off `incoming`; a failed read answers with its error's message. */
function appReading(incoming: IncomingMessage) {
  const app = new Hono<AppEnv>()
    .use(async (c, next) => {
      c.set("principal", { id: "key", scopes: new Set() });
      await next();
    })
    .use(readJsonBody({ maxBytes: 1024, maxReceiving: 4096, heldGauge: { set() {} } }))
    .post("/", (c) => c.text("read"));
  app.onError((err, c) => c.text(`failed: ${err.message}`, 400));
  const request = () =>
    app.request("/", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }, { incoming });
  return { request };
}

test("a request closed before its body is read (a hang-up while its key was checked) ends its read at once", async () => {
  const incoming = new IncomingMessage(new Socket());
  const closed = once(incoming, "close");
  incoming.destroy();
  await closed; // its close came and went: a read waiting for it waited until the request's 504
  const answer = await Promise.race([appReading(incoming).request(), sleep(1_000).then(() => undefined)]);
  assert.ok(answer, "the read never ended");
  assert.equal(await answer.text(), "failed: aborted");
});
