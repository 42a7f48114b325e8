import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as microtasksDone } from "node:timers/promises";
import { coalesce } from "../../../app/src/coalesce.ts";

/** A run the test ends by hand: `runs` holds each run's resolve, in order. */
function manualRuns() {
  const runs: Array<(value: number) => void> = [];
  const run = () => new Promise<number>((resolve) => runs.push(resolve));
  return { runs, call: coalesce(run) };
}

test("calls made while a run is under way share one run started after it, never their own each", async () => {
  const { runs, call } = manualRuns();
  const first = call();
  const during = [call(), call(), call()];
  assert.equal(runs.length, 1, "a second run while the first is under way");
  runs[0]!(1);
  assert.equal(await first, 1);
  await microtasksDone();
  assert.equal(runs.length, 2, "the calls made during the first run wait for a run of their own");
  runs[1]!(2);
  assert.deepEqual(await Promise.all(during), [2, 2, 2], "each answered by a run started after its call");
  const later = call();
  assert.equal(runs.length, 3, "a call once nothing runs starts a run at once");
  runs[2]!(3);
  assert.equal(await later, 3);
});

test("a failed run fails its own calls only, and the calls waiting for the next run are answered by it", async () => {
  const attempts: Array<{ resolve: (v: number) => void; reject: (e: Error) => void }> = [];
  const call = coalesce(() => new Promise<number>((resolve, reject) => attempts.push({ resolve, reject })));
  const first = call();
  const waiting = call();
  attempts[0]!.reject(new Error("postgres unavailable"));
  await assert.rejects(first, /postgres unavailable/);
  await microtasksDone();
  attempts[1]!.resolve(7);
  assert.equal(await waiting, 7);
});
