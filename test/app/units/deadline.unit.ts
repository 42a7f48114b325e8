import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { beforeAbort, beforeDeadline } from "../../../app/src/deadline.ts";

test("beforeDeadline: an answer in time is never counted as a miss later", async () => {
  // Each miss counts toward dropping the Postgres pool or the Redis connection (connection-health.ts).
  let missed = 0;
  const onDeadline = () => {
    missed++;
    return new Error("late");
  };
  assert.equal(await beforeDeadline(Promise.resolve("rows"), 20, onDeadline), "rows");
  await assert.rejects(beforeDeadline(Promise.reject(new Error("refused")), 20, onDeadline), /refused/);
  await delay(60);
  assert.equal(missed, 0);
  await assert.rejects(beforeDeadline(new Promise(() => {}), 20, onDeadline), /late/);
  assert.equal(missed, 1);
});

test("beforeAbort: a signal already aborted ends the call at once; one long-lived signal keeps no listener of a call that ended", async () => {
  const ended = AbortSignal.abort(new Error("shutting down"));
  const outcome = await Promise.race([
    beforeAbort(new Promise(() => {}), ended, () => ended.reason as Error).catch((err: Error) => err.message),
    delay(100, "still waiting"),
  ]);
  assert.equal(outcome, "shutting down");

  const shutdown = new AbortController();
  let aborted = 0;
  const onAbort = () => {
    aborted++;
    return new Error("shutting down");
  };
  for (let i = 0; i < 50; i++) await beforeAbort(Promise.resolve(i), shutdown.signal, onAbort);
  assert.equal(getEventListeners(shutdown.signal, "abort").length, 0, "each request's listener outlived it");
  const running = beforeAbort(new Promise(() => {}), shutdown.signal, onAbort);
  shutdown.abort();
  await assert.rejects(running, /shutting down/);
  assert.equal(aborted, 1, "only the call still running hears the abort");
});
