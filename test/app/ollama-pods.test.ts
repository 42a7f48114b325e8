// Each model call goes to an Ollama pod of its own (app/src/services/ollama-pods.ts), not wherever kube-proxy led the
// replica's kept-alive connection. Pods are fake Ollamas on other loopback addresses at the same port, as pod IPs
// behind one Service port; the Service URL leads to the first alone, as a kept-alive connection does.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { after, before, test } from "node:test";
import { createMetrics } from "../../app/src/metrics.ts";
import { slotRun } from "../../app/src/services/answer-share.ts";
import { createOllama } from "../../app/src/services/ollama.ts";
import { createPodRouter, POD_CONNECT_TIMEOUT_MS, type PodRouter } from "../../app/src/services/ollama-pods.ts";
import { type FakeOllama, startFakeOllama } from "../fakes/ollama.ts";
import { capturedLog } from "../support/log.ts";

const PODS = ["127.0.0.2", "127.0.0.3"];
/** Nothing listens there: a pod gone since the last count. */
const GONE = "127.0.0.4";
/** Connections to it are never answered (a test below makes it so). */
const HANGS = "127.0.0.5";
let fakes: FakeOllama[];
let serviceUrl: string;

/** A fake Ollama on each address, all at one port (a pod IP's port is the Service's target port, the same on each). */
async function startPods(hosts: string[]): Promise<FakeOllama[]> {
  for (;;) {
    const probe = net.createServer();
    const port = await new Promise<number>((resolve) =>
      probe.listen(0, hosts[0], () => resolve((probe.address() as net.AddressInfo).port)),
    );
    await new Promise((resolve) => probe.close(resolve));
    const started = await Promise.allSettled(hosts.map((hostname) => startFakeOllama({ port, hostname })));
    const up = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    if (up.length === hosts.length) return up;
    await Promise.all(up.map((f) => f.close())); // the port was taken on another address meanwhile: another one
  }
}

before(async () => {
  fakes = await startPods(PODS);
  serviceUrl = `http://${PODS[0]}:${fakes[0]!.port}`;
  for (const f of fakes) Object.assign(f.knobs, { parallel: null, generationMs: 150 });
});
after(() => Promise.all(fakes.map((f) => f.close())));

const ollamaVia = (pods?: ReturnType<typeof createPodRouter>) =>
  createOllama({
    url: serviceUrl,
    timeoutMs: 5_000,
    embedModel: "fake-embed",
    batchSize: 32,
    maxAnswerTokens: 256,
    metrics: createMetrics(),
    pods,
  });

const resetLoad = () => {
  for (const f of fakes) Object.assign(f.load, { generated: 0, peak: 0, wasted: 0 });
};

test("calls past the replica's slots go to the least busy pod, not round the Service", () => {
  const router = createPodRouter("http://ollama:11434");
  router.update(["10.0.0.1", "10.0.0.2"], { first: 0, count: 1 }); // its one slot is on the first pod
  const calls = [router.take("m"), router.take("m"), router.take("m")];
  assert.deepEqual(
    calls.slice(0, 2).map((c) => c.address),
    ["10.0.0.1", "10.0.0.2"],
  );
  // Before: to the Service, wherever kube-proxy's connection led (an embedding burst is not held to the answer slots).
  assert.ok(
    calls.every((c) => c.address !== undefined && c.url !== "http://ollama:11434"),
    JSON.stringify(calls),
  );
  for (const c of calls) c.release();
});

test("every replica filling its share sends each Ollama pod at most its OLLAMA_NUM_PARALLEL", () => {
  for (let ollamaPods = 1; ollamaPods <= 4; ollamaPods++)
    for (let apiPods = 1; apiPods <= 7; apiPods++)
      for (let parallel = 1; parallel <= 4; parallel++) {
        const addresses = Array.from({ length: ollamaPods }, (_, i) => `10.0.0.${i + 1}`);
        const slots = ollamaPods * parallel;
        const perPod = new Map<string, number>();
        for (let place = 0; place < apiPods; place++) {
          const router = createPodRouter("http://ollama:11434");
          const run = slotRun(slots, apiPods, place);
          router.update(addresses, run);
          for (let i = 0; i < run.count; i++) {
            const address = router.take("m").address!;
            perPod.set(address, (perPod.get(address) ?? 0) + 1);
          }
        }
        const most = Math.max(...perPod.values());
        const expected = Math.max(parallel, Math.ceil(apiPods / ollamaPods)); // each replica asks for 1 at least
        assert.ok(most <= expected, `${ollamaPods} pods of ${parallel}, ${apiPods} API pods: one pod sent ${most}`);
      }
});

test("a replica's concurrent answers go one to each pod, round after round, whatever its connection leads to", async () => {
  resetLoad();
  const pods = createPodRouter(serviceUrl);
  pods.update(PODS, { first: 0, count: 2 });
  const ollama = ollamaVia(pods);
  for (let round = 0; round < 3; round++)
    await Promise.all([1, 2].map((i) => ollama.chat("fake-small", [{ role: "user", content: `q ${round} ${i}` }])));
  assert.deepEqual(
    fakes.map((f) => [f.load.generated, f.load.peak]),
    [
      [3, 1],
      [3, 1],
    ],
    "answers per pod and the most at once",
  );

  resetLoad();
  const streams = await Promise.all(
    [1, 2].map(async (i) => {
      let text = "";
      for await (const token of ollama.chatStream("fake-small", [{ role: "user", content: `s ${i}` }])) text += token;
      return text;
    }),
  );
  assert.ok(streams.every((t) => t.length > 0));
  assert.deepEqual(
    fakes.map((f) => f.load.generated),
    [1, 1],
    "streams are spread too",
  );

  const embeds = () => fakes.map((f) => f.calls["/api/embed"] ?? 0);
  const before = embeds();
  for (let i = 0; i < 4; i++) await ollama.embed([`text ${i}`]);
  assert.deepEqual(
    embeds().map((n, i) => n - before[i]!),
    [2, 2],
    "calls one at a time take turns: by address, every replica's went to the first pod",
  );
});

test("without pods counted (none resolved, or no OLLAMA_PODS_DNS), every call goes to the Service", async () => {
  resetLoad();
  const pods = createPodRouter(serviceUrl);
  pods.update([]);
  for (const ollama of [ollamaVia(pods), ollamaVia()])
    await Promise.all([1, 2].map((i) => ollama.chat("fake-small", [{ role: "user", content: `q ${i}` }])));
  assert.deepEqual(
    fakes.map((f) => f.load.generated),
    [4, 0],
  );
});

test("a pod that refuses the connection (gone since the last count): the call goes to the next, and the pod is left alone until the next count", async () => {
  resetLoad();
  const { log, lines } = capturedLog("warn");
  const pods = createPodRouter(serviceUrl, log);
  pods.update([GONE, PODS[1]!]);
  const ollama = ollamaVia(pods);
  const before = fakes[1]!.calls["/api/embed"] ?? 0;
  await ollama.chat("fake-small", [{ role: "user", content: "first" }]);
  let streamed = "";
  for await (const token of ollama.chatStream("fake-small", [{ role: "user", content: "second" }])) streamed += token;
  assert.ok(streamed.length > 0);
  assert.equal((await ollama.embed(["a text"])).length, 1);
  assert.deepEqual(
    fakes.map((f) => f.load.generated),
    [0, 2],
  );
  assert.equal((fakes[1]!.calls["/api/embed"] ?? 0) - before, 1);
  const takeTwo = () =>
    [1, 2].map(() => {
      const pod = pods.take("fake-small");
      pod.release();
      return pod.address;
    });
  assert.deepEqual(takeTwo(), [PODS[1], PODS[1]], "the refusing pod is not asked again before the next count");
  const warned = lines.filter((l) => l.includes("ollama pod unreachable"));
  assert.equal(warned.length, 1, "warned once a count");
  assert.match(warned[0]!, new RegExp(`"pod":"${GONE}".*ECONNREFUSED`));
  pods.update([GONE, PODS[1]!]);
  assert.ok(takeTwo().includes(GONE), "counted again, it is asked again");

  resetLoad();
  const allGone = createPodRouter(serviceUrl);
  allGone.update([GONE, "127.0.0.6"]);
  await ollamaVia(allGone).chat("fake-small", [{ role: "user", content: "third" }]);
  assert.deepEqual(
    fakes.map((f) => f.load.generated),
    [1, 0],
    "every pod counted refusing: the Service's",
  );
});

test("a call that reaches no pod goes to the Service after one pass, though the pods are counted again meanwhile", async () => {
  resetLoad();
  const router = createPodRouter(serviceUrl);
  const gone = [GONE, "127.0.0.6"];
  router.update(gone);
  let refusals = 0;
  // A count after each refusal, as when a pass outlasts ANSWER_SHARE_REFRESH_MS (a pod dropping the SYN costs 2 s):
  // each forgets the pods the router saw refusing.
  const recounted: PodRouter = {
    ...router,
    refused(address, err) {
      if (++refusals > 10) throw new Error("the call went round the pods again and again");
      router.refused(address, err);
      router.update(gone);
    },
  };
  await ollamaVia(recounted).chat("fake-small", [{ role: "user", content: "fourth" }]);
  assert.equal(refusals, 2, "each pod tried once");
  assert.deepEqual(
    fakes.map((f) => f.load.generated),
    [1, 0],
    "then the Service's",
  );
});

test("a pod address that drops the connection attempt (deleted since the last count) costs about two seconds, not undici's 10", async () => {
  // A listener at the pods' port whose accept queue is full and whose process is stopped: the kernel drops further
  // SYNs, as the VPC does for the address of a pod that is gone.
  const port = new URL(serviceUrl).port;
  const hung = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("net").createServer().listen({ port: ${port}, host: "${HANGS}", backlog: 1 }, () => {
         console.log("listening");
         process.kill(process.pid, "SIGSTOP");
       });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const fillers: net.Socket[] = [];
  try {
    await new Promise((resolve) => hung.stdout!.once("data", resolve));
    for (let i = 0; i < 4; i++) fillers.push(net.connect(Number(port), HANGS).on("error", () => {}));
    resetLoad();
    const pods = createPodRouter(serviceUrl);
    pods.update([HANGS, PODS[1]!]);
    const started = performance.now();
    await ollamaVia(pods).chat("fake-small", [{ role: "user", content: "q" }]);
    const ms = performance.now() - started;
    assert.ok(ms < POD_CONNECT_TIMEOUT_MS * 2.5, `answered by the next pod after ${Math.round(ms)} ms`);
    assert.deepEqual(
      fakes.map((f) => f.load.generated),
      [0, 1],
    );
  } finally {
    hung.kill("SIGKILL");
    for (const f of fillers) f.destroy();
  }
});
