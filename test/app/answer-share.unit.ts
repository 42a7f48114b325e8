import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { answerShare, podAddresses, type SlotRun, watchAnswerShare } from "../../app/src/services/answer-share.ts";
import { createAnswerSlots } from "../../app/src/services/answer-slots.ts";
import { capturedLog } from "../support/log.ts";

const settled = async <T>(p: Promise<T>) => await Promise.race([p.then(() => true), delay(20).then(() => false)]);

test("answer slots resized: more let the waiting questions in at once, fewer take effect as answers end", async () => {
  const slots = createAnswerSlots({ slots: 1, maxWaitMs: 5_000 });
  const first = await slots.acquire("m", "k");
  const [second, third] = [slots.acquire("m", "k"), slots.acquire("m", "k")];
  assert.equal(await settled(second), false);
  slots.resize(3);
  assert.deepEqual([await settled(second), await settled(third)], [true, true]);

  slots.resize(1);
  const fourth = slots.acquire("m", "k");
  first.release();
  (await second).release();
  assert.equal(await settled(fourth), false, "two of three answers ended: still one over the new limit");
  (await third).release();
  assert.equal(await settled(fourth), true);
  (await fourth).release();

  const off = createAnswerSlots({ slots: 0, maxWaitMs: 5_000 });
  off.resize(1); // the limit stays off
  await Promise.all([off.acquire("m", "k"), off.acquire("m", "k")]);
});

test("the replicas' shares add up to the slots there are: whole slots each, the rest one each by address", () => {
  const shares = (slots: number, pods: number) => Array.from({ length: pods }, (_, place) => answerShare(slots, pods, place));
  assert.deepEqual(shares(8, 3), [3, 3, 2], "prod by day at the HPA's minimum: 8 slots over 3 pods");
  assert.deepEqual(shares(8, 6), [2, 2, 1, 1, 1, 1], "rounded up, 6 pods asked for 12");
  assert.deepEqual(shares(8, 10), Array(10).fill(1), "more pods than slots: at least 1 each");
  assert.equal(answerShare(8, 3), 2, "its place unknown (no POD_IP): the whole part alone, never over");
});

/** A watcher of its own for each replica, all on the same DNS answers. */
function replicas(pods: Record<string, string[] | Error>, podIps: Array<string | undefined>) {
  return podIps.map((podIp) => {
    const shares: number[] = [];
    const ollamaPods: Array<[string[], SlotRun | undefined]> = [];
    const { log, lines } = capturedLog("info");
    const watcher = watchAnswerShare({
      ollamaDns: "ollama",
      apiDns: "api",
      numParallel: 4,
      refreshMs: 60_000,
      podIp,
      onShare: (n) => shares.push(n),
      onOllamaPods: (addresses, run) => ollamaPods.push([addresses, run]),
      log,
      listPods: async (name) => {
        const found = pods[name]!;
        if (found instanceof Error) throw found;
        return found;
      },
    });
    return { shares, ollamaPods, lines, watcher };
  });
}

const ips = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 10}`);

test("replicas scaled out ask Ollama for its slots together, and no more (probe AK: 12 asked of 8)", async () => {
  const pods: Record<string, string[]> = { ollama: ips(2), api: ips(6) };
  const six = replicas(pods, ips(6));
  try {
    await Promise.all(six.map((r) => r.watcher.refresh()));
    assert.equal(
      six.reduce((n, r) => n + r.shares.at(-1)!, 0),
      8,
    );
    pods.ollama = ips(1); // off-peak
    await Promise.all(six.map((r) => r.watcher.refresh()));
    assert.deepEqual(
      six.map((r) => r.shares.at(-1)),
      [1, 1, 1, 1, 1, 1],
      "4 slots over 6 pods: at least 1 each",
    );
  } finally {
    for (const r of six) r.watcher.stop();
  }
});

test("each count tells the pod router the Ollama pods and the replica's own run of slots, the runs end to end", async () => {
  const pods: Record<string, string[]> = { ollama: ips(2), api: ips(3) };
  const three = replicas(pods, [...ips(3), undefined]);
  try {
    await Promise.all(three.map((r) => r.watcher.refresh()));
    assert.deepEqual(
      three.map((r) => r.ollamaPods.at(-1)),
      [
        [ips(2), { first: 0, count: 3 }],
        [ips(2), { first: 3, count: 3 }],
        [ips(2), { first: 6, count: 2 }],
        [ips(2), undefined], // no POD_IP: its place, and so its run, unknown
      ],
    );
    pods.ollama = [];
    await three[0]!.watcher.refresh();
    assert.deepEqual(three[0]!.ollamaPods.at(-1), [[], undefined], "no pod: the Service");
  } finally {
    for (const r of three) r.watcher.stop();
  }
});

test("a pod out of the API pods' answer (starting, or terminating in its preStop) asks for one slot, not a ready pod's share", async () => {
  const pods: Record<string, string[]> = { ollama: ips(2), api: ips(2) };
  const [ready, outside] = replicas(pods, ["10.0.0.10", "10.0.0.99"]);
  try {
    await Promise.all([ready!.watcher.refresh(), outside!.watcher.refresh()]);
    assert.deepEqual([ready!.shares, outside!.shares], [[4], [1]], "it took 4 of 8 beside the 2 ready pods' 4 each");
  } finally {
    ready!.watcher.stop();
    outside!.watcher.stop();
  }
});

test("no Ollama or no API pod in the answer, or a failing lookup: the share stays as it was", async () => {
  const pods: Record<string, string[] | Error> = { ollama: ips(2), api: ips(3) };
  const [one] = replicas(pods, ["10.0.0.12"]);
  try {
    await one!.watcher.refresh();
    pods.api = []; // a renamed Service, a DNS glitch: every replica took every slot
    await one!.watcher.refresh();
    Object.assign(pods, { api: ips(3), ollama: [] });
    await one!.watcher.refresh();
    pods.ollama = new Error("EAI_AGAIN ollama");
    await one!.watcher.refresh();
    await one!.watcher.refresh();
    pods.ollama = ips(2);
    await one!.watcher.refresh(); // the same share is not set again
    assert.deepEqual(one!.shares, [2]);
    assert.equal(one!.lines.filter((line) => line.includes("could not count pods")).length, 1, "warned once");
  } finally {
    one!.watcher.stop();
  }
});

test("pods are the addresses a name resolves to: each once, sorted; none for a name no pod answers for", async () => {
  const addresses = await podAddresses("localhost");
  assert.ok(addresses.includes("127.0.0.1"), addresses.join());
  assert.deepEqual(addresses, [...new Set(addresses)].sort());
  // RFC 6761 6.4: an .invalid name never resolves, as a headless Service with no ready pod has no address.
  assert.deepEqual(await podAddresses("no-such-pod.invalid"), []);
});

test("one count at a time: a lookup slower than ANSWER_SHARE_REFRESH_MS is not asked again meanwhile", async () => {
  let lookups = 0;
  const watcher = watchAnswerShare({
    ollamaDns: "ollama",
    apiDns: "api",
    numParallel: 4,
    podIp: "10.0.0.10",
    refreshMs: 100,
    onShare: () => {},
    log: capturedLog("info").log,
    listPods: async () => {
      lookups++;
      await delay(1_000); // far past the check below, however late a loaded machine runs it
      return ["10.0.0.10"];
    },
  });
  try {
    await delay(300);
    assert.equal(lookups, 2, "one lookup of each name, however many refreshes passed");
  } finally {
    watcher.stop();
  }
});
