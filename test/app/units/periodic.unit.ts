import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { runPeriodically } from "../../../app/src/services/periodic.ts";

test("a periodic job runs first after its delay, then each period, never two runs at once, and not after stop", async () => {
  let runs = 0;
  let running = 0;
  let mostAtOnce = 0;
  const timers = runPeriodically(
    async () => {
      runs++;
      mostAtOnce = Math.max(mostAtOnce, ++running);
      await sleep(50); // longer than the period: the runs due meanwhile are skipped
      running--;
    },
    5,
    10,
  );
  await sleep(300);
  timers.stop();
  const stoppedAt = runs;
  assert.ok(runs >= 2, `${runs} runs`);
  assert.equal(mostAtOnce, 1);
  await sleep(100);
  assert.equal(runs, stoppedAt, "none after stop");
});
