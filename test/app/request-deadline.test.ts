import assert from "node:assert/strict";
import { test } from "node:test";
import { type Context, Hono } from "hono";
import { requestDeadline } from "../../app/src/middleware/deadline.ts";
import type { AppEnv } from "../../app/src/types.ts";

test("deadlineAt is never later than the 504: a handler that checks it after the 504 always sees it passed", async () => {
  // Node counts a timer's start in whole milliseconds, so some timers fire up to 1 ms before performance.now() + ms:
  // with a handler that first keeps the loop busy for 0-3 ms, 30 to 49 of these 300 did with a timer armed for `ms`.
  const app = new Hono<AppEnv>();
  let context: Context<AppEnv> | undefined;
  app.use(requestDeadline(2));
  app.get("/", async (c) => {
    context = c;
    const busyUntil = performance.now() + Math.random() * 3;
    while (performance.now() < busyUntil);
    return new Promise<never>(() => {}); // answered by the deadline alone
  });
  const early: number[] = [];
  for (let i = 0; i < 300; i++) {
    const res = await app.request("/");
    const answeredAt = performance.now();
    assert.equal(res.status, 504);
    const deadlineAt = context!.get("deadlineAt");
    if (deadlineAt > answeredAt) early.push(deadlineAt - answeredAt);
  }
  assert.deepEqual(early, [], "504s sent before deadlineAt (ms before)");
});
