// Pipelined requests on one connection: the cap on those waiting behind the answer being sent, and the connection's
// end after a refusal (http.ts, http-refusals.ts): every answer ahead of it is sent and not lost to a reset, and nothing
// read after it is served.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { listenHttp, MAX_PIPELINED } from "../../app/src/http.ts";
import { createLogger } from "../../app/src/log.ts";
import { createMetrics, type Metrics } from "../../app/src/metrics.ts";
import { parseResponses, rawExchange } from "../support/fuzz.ts";
import { beyondLoopbackBuffers } from "../support/http.ts";
import { metricValue } from "../support/metrics.ts";
import { waitFor } from "../support/process.ts";

const GET = "GET / HTTP/1.1\r\nHost: app\r\n\r\n";
/** The answer being sent, and the most that may wait behind it. */
const DEEPEST = MAX_PIPELINED + 1;

/**
 * A server whose answers wait until `release`d, in the order the requests came, or answer at once once `open`. `ran`
 * lists the requests the app ran; `parsed` counts those Node's parser read.
 */
async function heldServer(opts: { metrics?: Metrics; answer?: string; open?: boolean } = {}) {
  const gates: Array<() => void> = [];
  const state = { ran: [] as string[], running: 0, most: 0, parsed: 0, open: opts.open ?? false };
  const http = await listenHttp(
    async (req) => {
      state.ran.push(`${req.method} ${new URL(req.url).pathname}`);
      await req.arrayBuffer(); // as the app reads every body (readJsonBody)
      state.most = Math.max(state.most, ++state.running);
      if (!state.open) await new Promise<void>((resolve) => gates.push(resolve));
      state.running--;
      return new Response(opts.answer ?? "ok");
    },
    {
      port: 0,
      host: "127.0.0.1",
      metrics: opts.metrics ?? createMetrics(),
      log: createLogger("silent"),
      keepAliveTimeoutMs: 5_000,
    },
  );
  http.server.on("request", () => state.parsed++);
  const release = (count: number) => {
    for (let i = 0; i < count; i++) gates.shift()?.();
  };
  const openAll = () => {
    state.open = true;
    release(gates.length);
  };
  return { http, state, release, openAll };
}

/** A client connection: the answers it has read, and its close. */
async function rawConnection(port: number) {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  let text = "";
  socket.on("data", (d: Buffer) => {
    text += d.toString("latin1");
  });
  // Not events.once: it rejects on the socket's error (a reset, a write after the close).
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await once(socket, "connect");
  return { socket, closed, answers: () => parseResponses(text, socket.destroyed) };
}

test("past MAX_PIPELINED waiting requests, the one too many gets a JSON 429 and the close, and nothing after it runs", async () => {
  const metrics = createMetrics();
  const server = await heldServer({ metrics });
  const client = await rawConnection(server.http.port);
  try {
    // Before, every request of the write ran at once, whatever was still unanswered.
    client.socket.write(GET.repeat(DEEPEST + 200));
    await waitFor("the first requests run", async () => server.state.running === DEEPEST, 3_000);
    const parsed = server.state.parsed;
    // Bytes sent after the refusal are not even parsed (they were, 290,000 requests in 2 s, once an answer went out).
    client.socket.write(GET.repeat(500));
    await sleep(200);
    assert.equal(server.state.most, DEEPEST, "requests run at once on one connection");
    server.openAll();
    await Promise.race([client.closed, sleep(3_000)]);
    assert.ok(client.socket.destroyed, "the server closed the connection");
    assert.equal(server.state.parsed, parsed, "requests parsed after the refusal");
    assert.equal(server.state.ran.length, DEEPEST);
    const answers = client.answers();
    assert.deepEqual(
      answers.map((a) => a.status),
      [...Array(DEEPEST).fill(200), 429],
    );
    assert.equal(answers.at(-1)!.headers.connection, "close");
    assert.match(answers.at(-1)!.body, new RegExp(`^\\{"error":"more than ${MAX_PIPELINED} requests waiting`));
    assert.equal(JSON.parse(answers.at(-1)!.body).code, "pipeline_full");
    assert.equal(metricValue(await metrics.registry.metrics(), "http_requests_total", { route: "unmatched", status: "429" }), 1);
  } finally {
    client.socket.destroy();
    server.openAll();
    await server.http.close(0);
  }
});

test("a waiting request stops counting once its own answer is being sent, round after round on one connection", async () => {
  const server = await heldServer();
  const client = await rawConnection(server.http.port);
  try {
    client.socket.write(GET.repeat(DEEPEST));
    await waitFor("the first requests run", async () => server.state.running === DEEPEST, 3_000);
    // The first answer goes out; the second is being sent (still held): 31 wait behind it, so one more may.
    server.release(1);
    await waitFor("the first answer", async () => client.answers().length === 1, 3_000);
    client.socket.write(GET);
    await waitFor("the request after it runs (it was refused)", async () => server.state.ran.length === DEEPEST + 1, 3_000);
    server.openAll();
    for (let round = 1; round <= 3; round++) {
      client.socket.write(GET.repeat(DEEPEST));
      await waitFor(`round ${round}'s answers`, async () => client.answers().length === DEEPEST + 1 + round * DEEPEST, 3_000);
    }
    assert.deepEqual(new Set(client.answers().map((a) => a.status)), new Set([200]));
    assert.equal(client.socket.destroyed, false);
  } finally {
    client.socket.destroy();
    server.openAll();
    await server.http.close(0);
  }
});

test("a client still sending after the refusal gets every answer ahead of it: the connection is not reset under them", async () => {
  // Large answers, so most are still on their way when the 429 goes out. Closed with the client's later bytes unread,
  // the connection was reset and the client had 1 of 34 answers, 4 times in 5.
  const server = await heldServer({ answer: "x".repeat(64 * 1024), open: true });
  try {
    for (let trial = 0; trial < 5; trial++) {
      const client = await rawConnection(server.http.port);
      client.socket.write(GET.repeat(DEEPEST + 1));
      await sleep(trial % 2);
      client.socket.write(GET);
      await Promise.race([client.closed, sleep(5_000)]);
      client.socket.destroy();
      const answers = client.answers();
      assert.deepEqual(
        answers.map((a) => [a.status, a.status === 200 ? a.body.length : 0]),
        [...Array(DEEPEST).fill([200, 64 * 1024]), [429, 0]],
        `trial ${trial}`,
      );
    }
  } finally {
    await server.http.close(0);
  }
});

test("a request pipelined behind one refused before the app (its Host, its framing, its Expect) does not run", async () => {
  const metrics = createMetrics();
  const server = await heldServer({ metrics, open: true });
  const refusals = async () =>
    ["400", "417"].reduce(
      async (sum, status) =>
        (await sum) + metricValue(await metrics.registry.metrics(), "http_requests_total", { route: "unmatched", status }),
      Promise.resolve(0),
    );
  // A request after the refusal, and one Node hands to checkExpectation (refused again, it was counted unsent).
  const after =
    "POST /after HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\n\r\n" +
    "POST /after HTTP/1.1\r\nHost: app\r\nExpect: foo\r\nContent-Length: 0\r\n\r\n";
  const refused = {
    "two Host lines": "GET / HTTP/1.1\r\nHost: app\r\nHost: other\r\n\r\n",
    "a coding before chunked": "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "chunks on HTTP/1.0": "POST / HTTP/1.0\r\nHost: app\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "an unknown Expect": "POST / HTTP/1.1\r\nHost: app\r\nExpect: x\r\nContent-Length: 0\r\n\r\n",
  };
  try {
    for (const [what, head] of Object.entries(refused)) {
      server.state.ran.length = 0;
      const counted = await refusals();
      // Before, the app ran the request after the refusal, and its answer went nowhere.
      const answers = await rawExchange(server.http.port, `${GET}${head}${after}`);
      await sleep(50);
      assert.deepEqual(server.state.ran, ["GET /"], what);
      assert.equal((await refusals()) - counted, 1, `${what}: refusals counted`);
      assert.deepEqual(
        answers.map((a) => [a.status, a.headers.connection]),
        [
          [200, "keep-alive"],
          [what === "an unknown Expect" ? 417 : 400, "close"],
        ],
        what,
      );
    }
  } finally {
    await server.http.close(0);
  }
});

test("a request asking to upgrade is answered and closes its connection: what was sent after it is not left waiting", async () => {
  const server = await heldServer({ open: true });
  const asks = {
    websocket: "Connection: Upgrade\r\nUpgrade: websocket",
    h2c: "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA",
  };
  try {
    for (const [what, headers] of Object.entries(asks)) {
      server.state.ran.length = 0;
      const started = performance.now();
      // Before, the first was answered keep-alive and the second never read: the connection idled to its timeout.
      const answers = await rawExchange(server.http.port, `GET /upgrade HTTP/1.1\r\nHost: app\r\n${headers}\r\n\r\n${GET}`);
      const ms = performance.now() - started;
      assert.deepEqual(
        answers.map((a) => [a.status, a.headers.connection]),
        [[200, "close"]],
        what,
      );
      assert.deepEqual(server.state.ran, ["GET /upgrade"], what);
      assert.ok(ms < 4_000, `${what}: closed after ${Math.round(ms)} ms`);
    }
  } finally {
    await server.http.close(0);
  }
});

test("after a request asking to upgrade, what comes in later chunks is not parsed, with a body or without", async () => {
  const server = await heldServer();
  const upgrade = "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA";
  const asks = {
    "without a body": `GET /upgrade HTTP/1.1\r\nHost: app\r\n${upgrade}\r\n\r\n`,
    "with a body": `POST /upgrade HTTP/1.1\r\nHost: app\r\n${upgrade}\r\nContent-Length: 5\r\n\r\nhello`,
  };
  try {
    for (const [what, ask] of Object.entries(asks)) {
      Object.assign(server.state, { ran: [], parsed: 0 });
      const client = await rawConnection(server.http.port);
      client.socket.write(ask);
      await waitFor(`${what}: the ask runs`, async () => server.state.ran.length === 1, 2_000);
      // Its answer held: before, Node parsed these (it resumes after the upgrade pause with the next chunk), and held
      // them unanswered past the pipelining cap for as long as the answer took.
      client.socket.write(GET.repeat(DEEPEST + 5));
      await sleep(200);
      assert.equal(server.state.parsed, 1, `${what}: requests parsed after the ask`);
      server.release(1);
      await client.closed;
      assert.deepEqual(
        client.answers().map((a) => [a.status, a.headers.connection]),
        [[200, "close"]],
        what,
      );
    }
  } finally {
    await server.http.close(0);
  }
});

test("quick answers to pipelined requests all go out before the refusal of what follows them", async () => {
  const server = await heldServer({ open: true });
  const tails = {
    CONNECT: ["CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405],
    "unparsable bytes": ["GARBAGE\r\n\r\n", 400],
  } as const;
  try {
    for (const [what, [tail, status]] of Object.entries(tails)) {
      // Before, a refusal written while the next answer was being handed the socket cut the rest: 2 answers of 20.
      const answers = await rawExchange(server.http.port, `${GET.repeat(20)}${tail}`);
      assert.deepEqual(
        answers.map((a) => a.status),
        [...Array(20).fill(200), status],
        what,
      );
    }
  } finally {
    await server.http.close(0);
  }
});

test("a connection Node stopped reading for an answer backing up is read again once refused, and not reset", async () => {
  const answer = "x".repeat(beyondLoopbackBuffers());
  const http = await listenHttp(() => new Response(answer), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs: 5_000,
  });
  const accepted = once(http.server, "connection") as Promise<[Socket]>;
  const client = await rawConnection(http.port);
  try {
    const [serverSide] = await accepted;
    client.socket.pause(); // the answer backs up: Node stops reading the connection
    client.socket.write(GET);
    await sleep(100);
    const refused = "GET / HTTP/1.1\r\nHost: app\r\nHost: other\r\n\r\n";
    const junk = "j".repeat(4096);
    client.socket.write(refused);
    await sleep(50);
    client.socket.write(junk);
    // Before, the connection stayed unread under its lingering close, which then reset it under the answer.
    await waitFor(
      "the bytes after the refusal are read",
      async () => serverSide.bytesRead >= (GET + refused + junk).length,
      3_000,
    );
    client.socket.resume();
    await Promise.race([client.closed, sleep(5_000)]);
    const [whole, refusal] = client.answers();
    assert.deepEqual([whole?.status, whole?.body.length, refusal?.status], [200, answer.length, 400]);
    assert.equal(JSON.parse(refusal!.body).code, "malformed_http", "the refusal is whole: JSON with its code");
  } finally {
    client.socket.destroy();
    await http.close(0);
  }
});

test("a client that keeps its side open after a refusal, sending or not, is cut off about 2 s after it", async () => {
  const server = await heldServer({ open: true });
  // Refused by http-refusals.ts for its head (read and dropped after), and by Node's parser (the client sends nothing
  // more: before, that connection stayed open for good).
  const cases = [
    ["two Host lines", "GET / HTTP/1.1\r\nHost: app\r\nHost: other\r\n\r\n", true],
    ["unparsable bytes", "GARBAGE\r\n\r\n", false],
  ] as const;
  try {
    for (const [what, refused, keepsSending] of cases) {
      const accepted = once(server.http.server, "connection") as Promise<[Socket]>;
      const socket = connect({ port: server.http.port, host: "127.0.0.1", allowHalfOpen: true });
      socket.on("error", () => {});
      const sending = setInterval(() => keepsSending && socket.writable && socket.write("j".repeat(1024)), 50);
      try {
        await once(socket, "connect");
        const [serverSide] = await accepted;
        const closed = new Promise<void>((resolve) => serverSide.once("close", () => resolve()));
        socket.write(refused);
        const [answer] = (await once(socket, "data")) as [Buffer];
        assert.match(answer.toString("latin1"), /^HTTP\/1\.1 400 /, what);
        const refusedAt = performance.now();
        await Promise.race([closed, sleep(4_000)]);
        const after = performance.now() - refusedAt;
        assert.ok(serverSide.destroyed && after > 1_500 && after < 3_000, `${what}: closed ${Math.round(after)} ms after it`);
      } finally {
        clearInterval(sending);
        socket.destroy();
      }
    }
  } finally {
    await server.http.close(0);
  }
});

test("a drain waits for a refused pipeline's 429, not for the requests read after it, which get no answer", async () => {
  const holdMs = 1_200; // past the drain's 1 s grace for idle connections
  const http = await listenHttp(() => sleep(holdMs).then(() => new Response("ok")), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs: 60_000,
  });
  const idle = connect(http.port, "127.0.0.1");
  let closed: Promise<boolean> | undefined;
  try {
    await once(idle, "connect");
    idle.write(GET);
    await once(idle, "data");
    const deep = rawExchange(http.port, GET.repeat(DEEPEST + 10));
    await sleep(100);
    const started = performance.now();
    closed = http.close(6_000);
    // Before, the drain waited on the last request read, never to be answered, and left the idle connection open
    // until its grace ran out.
    assert.equal(await closed, false, "no answer cut");
    assert.ok(performance.now() - started < holdMs + 2_000, `drained in ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual((await deep).at(-1)?.status, 429);
  } finally {
    idle.destroy();
    await (closed ?? http.close(0));
  }
});
