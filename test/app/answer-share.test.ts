import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { answerShare, countAddresses, watchAnswerShare } from "../../app/src/services/answer-share.ts";
import { createAnswerSlots } from "../../app/src/services/answer-slots.ts";
import { capturedLog } from "../support/log.ts";

const settled = async <T>(p: Promise<T>) => await Promise.race([p.then(() => true), delay(20).then(() => false)]);

test("answer slots resized: more let the waiting questions in at once, fewer take effect as answers end", async () => {
  const slots = createAnswerSlots({ slots: 1, maxWaitMs: 5_000 });
  const first = await slots.acquire("m");
  const [second, third] = [slots.acquire("m"), slots.acquire("m")];
  assert.equal(await settled(second), false);
  slots.resize(3);
  assert.deepEqual([await settled(second), await settled(third)], [true, true]);

  slots.resize(1);
  const fourth = slots.acquire("m");
  first.release();
  (await second).release();
  assert.equal(await settled(fourth), false, "two of three answers ended: still one over the new limit");
  (await third).release();
  assert.equal(await settled(fourth), true);
  (await fourth).release();

  const off = createAnswerSlots({ slots: 0, maxWaitMs: 5_000 });
  off.resize(1); // the limit stays off
  await Promise.all([off.acquire("m"), off.acquire("m")]);
});

test("a replica's share of answer slots follows the Ollama and API pods that are ready", async () => {
  assert.equal(answerShare(2, 4, 3), 3, "prod by day at the HPA's minimum: 8 slots over 3 pods");
  assert.equal(answerShare(2, 4, 10), 1, "at the HPA's maximum");
  assert.equal(answerShare(1, 4, 0), 4, "no API pod ready yet (this one included)");

  const pods: Record<string, number | Error> = { ollama: 2, api: 3 };
  const shares: number[] = [];
  const { log, lines: output } = capturedLog("info");
  const watcher = watchAnswerShare({
    ollamaDns: "ollama",
    apiDns: "api",
    numParallel: 4,
    refreshMs: 60_000,
    onShare: (n) => shares.push(n),
    log,
    countPods: async (name) => {
      const n = pods[name]!;
      if (n instanceof Error) throw n;
      return n;
    },
  });
  try {
    await delay(10); // the first count starts at once
    Object.assign(pods, { api: 10 }); // the HPA scaled the API out
    await watcher.refresh();
    Object.assign(pods, { ollama: 1, api: 2 }); // off-peak
    await watcher.refresh();
    await watcher.refresh(); // the same share is not set again
    Object.assign(pods, { ollama: 0 }); // no Ollama pod ready: nothing to share, the share stays
    await watcher.refresh();
    Object.assign(pods, { ollama: new Error("EAI_AGAIN ollama") });
    await watcher.refresh();
    await watcher.refresh();
    assert.deepEqual(shares, [3, 1, 2]);
    assert.equal(output.filter((line) => line.includes("could not count pods")).length, 1, "warned once");
  } finally {
    watcher.stop();
  }
});

test("pods are counted as the addresses a name resolves to", async () => {
  assert.ok((await countAddresses("localhost")) >= 1);
});
