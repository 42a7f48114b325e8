// The HTTP listener: its connection timing (an idle keep-alive connection stays open for HTTP_KEEP_ALIVE_TIMEOUT_MS,
// which the stack sets above the ALB's idle timeout so that the ALB, not the app, closes idle connections), and the
// headers it sets on every response.
import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { listenHttp } from "../../app/src/http.ts";
import { createLogger } from "../../app/src/log.ts";
import { createMetrics } from "../../app/src/metrics.ts";
import { securityHeaders } from "../../app/src/server.ts";
import { rawExchange } from "../support/fuzz.ts";
import { beyondLoopbackBuffers } from "../support/http.ts";
import { capturedLog } from "../support/log.ts";
import { metricValue } from "../support/metrics.ts";
import { waitFor } from "../support/process.ts";

/** Sends one request on the socket and resolves with the status line of its response. */
async function requestOn(socket: Socket): Promise<string> {
  socket.write("GET / HTTP/1.1\r\nHost: app\r\n\r\n");
  const [chunk] = (await once(socket, "data")) as [Buffer];
  return chunk.toString().split("\r\n")[0]!;
}

/** The listener on a free port with `requestTimeoutMs` as its write deadline, and a keep-alive longer than any test. */
const listenWithDeadline = (app: Parameters<typeof listenHttp>[0], requestTimeoutMs: number, maxBytesWaiting?: number) =>
  listenHttp(app, {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs: 60_000,
    requestTimeoutMs,
    maxBytesWaiting,
  });

test("a port that cannot be listened on is named with its setting and HOST: both listeners' EADDRINUSE read alike", async () => {
  const taken = await listenWithDeadline(() => new Response("ok"), 1_000);
  try {
    const opts = { host: "127.0.0.1", metrics: undefined, log: createLogger("silent"), keepAliveTimeoutMs: 1_000 };
    await assert.rejects(
      listenHttp(() => new Response("ok"), { ...opts, port: taken.port, portSetting: "METRICS_PORT" }),
      new RegExp(`^Error: cannot listen on METRICS_PORT ${taken.port}, HOST 127\\.0\\.0\\.1: listen EADDRINUSE`),
    );
  } finally {
    await taken.close(1_000);
  }
});

test("an idle keep-alive connection stays open for HTTP_KEEP_ALIVE_TIMEOUT_MS, then the server closes it", async () => {
  const keepAliveTimeoutMs = 1_500;
  const http = await listenHttp(() => new Response("ok"), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs,
    // Shorter than the idle time below: a request's time runs from its first byte, not from the previous answer.
    requestTimeoutMs: 500,
  });
  const socket = connect(http.port, "127.0.0.1");
  try {
    await once(socket, "connect");
    let closedAt: number | undefined;
    socket.on("close", () => {
      closedAt = performance.now();
    });
    assert.equal(await requestOn(socket), "HTTP/1.1 200 OK");
    await sleep(keepAliveTimeoutMs - 700);
    assert.equal(await requestOn(socket), "HTTP/1.1 200 OK", "still open just before the timeout");
    const idleFrom = performance.now();
    // Node closes an idle connection a little after keepAliveTimeout (it adds a buffer, 1 s in Node 20.20).
    await sleep(keepAliveTimeoutMs + 2_000);
    assert.ok(closedAt !== undefined, "closed once idle past the timeout");
    assert.ok(closedAt - idleFrom >= keepAliveTimeoutMs - 100, `closed after ${Math.round(closedAt - idleFrom)} ms idle`);
  } finally {
    socket.destroy();
    await http.close(0);
  }
});

test("a connection that takes none of its answer within requestTimeoutMs is closed, though it sends", async () => {
  const requestTimeoutMs = 800;
  // Larger than the loopback connection's socket buffers: most of it waits in the server for the client to read.
  const answer = "x".repeat(32 * 1024 * 1024);
  const http = await listenWithDeadline(() => new Response(answer), requestTimeoutMs);
  let serverClosedAt: number | undefined;
  http.server.on("connection", (s: Socket) => s.on("close", () => (serverClosedAt = performance.now())));
  try {
    // Alone; with a CONNECT pipelined behind it, whose refusal waits for this answer on a socket Node handed over; and
    // with the client sending a byte every 100 ms (each restarted the socket's idle timeout: held for good).
    const cases = [
      ["", false],
      ["CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", false],
      ["", true],
    ] as const;
    for (const [after, trickles] of cases) {
      serverClosedAt = undefined;
      const socket = connect(http.port, "127.0.0.1");
      socket.on("error", () => {});
      const trickle = setInterval(() => trickles && socket.writable && socket.write("x"), 100);
      try {
        await once(socket, "connect");
        socket.pause(); // never reads
        const sentAt = performance.now();
        socket.write(`GET / HTTP/1.1\r\nHost: app\r\n\r\n${after}`);
        for (const until = sentAt + requestTimeoutMs + 2_500; serverClosedAt === undefined && performance.now() < until; )
          await sleep(50);
        const what = JSON.stringify({ after, trickles });
        assert.ok(serverClosedAt !== undefined, `the connection was still open, holding its answer (${what})`);
        assert.ok(
          serverClosedAt - sentAt >= requestTimeoutMs,
          `closed ${Math.round(serverClosedAt - sentAt)} ms after the request (${what})`,
        );
      } finally {
        clearInterval(trickle);
        socket.destroy();
      }
    }
  } finally {
    await http.close(0);
  }
});

test("a client reading a large answer steadily is not cut, though the whole takes longer than requestTimeoutMs", async () => {
  const requestTimeoutMs = 800;
  const size = 8 * 1024 * 1024; // one write, read at about 2 MB/s: 4 s
  const http = await listenWithDeadline(() => new Response("x".repeat(size)), requestTimeoutMs);
  const socket = connect(http.port, "127.0.0.1");
  socket.on("error", () => {});
  let closed = false;
  socket.on("close", () => (closed = true));
  try {
    await once(socket, "connect");
    socket.pause();
    socket.write("GET / HTTP/1.1\r\nHost: app\r\n\r\n");
    let got = 0;
    while (!closed && got < size) {
      const chunk = socket.read(32 * 1024) as Buffer | null;
      if (chunk) got += chunk.length;
      await sleep(16);
    }
    assert.ok(got >= size, `cut after ${got} of ${size} bytes`);
  } finally {
    socket.destroy();
    await http.close(0);
  }
});

test("past maxBytesWaiting, the connections whose answers have waited the longest are closed until the rest fit", async () => {
  // Larger than the loopback connection's socket buffers: most of each answer waits in the server. One buffer for all.
  const answer = new Uint8Array(32 * 1024 * 1024).fill(120);
  // The write deadline is far off: only the cap closes a connection within this test. Two answers fit, three do not.
  const http = await listenWithDeadline(() => new Response(answer), 60_000, 80 * 1024 * 1024);
  const closed: number[] = [];
  let accepted = 0;
  http.server.on("connection", (s: Socket) => {
    const i = accepted++;
    s.on("close", () => closed.push(i));
  });
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const socket = connect(http.port, "127.0.0.1");
      sockets.push(socket);
      socket.on("error", () => {});
      await once(socket, "connect");
      socket.pause(); // reads nothing
      socket.write("GET / HTTP/1.1\r\nHost: app\r\n\r\n");
      await sleep(1_100); // a sweep apart
    }
    await sleep(1_100);
    assert.deepEqual(closed, [0, 1, 2], "the connections waiting the longest go first, until two answers are left");

    // Answers queued behind the one being sent (pipelined) wait in the process too: two on one connection.
    closed.length = 0;
    const pipelining = connect(http.port, "127.0.0.1");
    sockets.push(pipelining);
    pipelining.on("error", () => {});
    await once(pipelining, "connect");
    pipelining.pause();
    pipelining.write("GET / HTTP/1.1\r\nHost: app\r\n\r\n".repeat(2));
    await waitFor("a connection closed", async () => closed.length > 0, 3_000);
    await sleep(1_100);
    assert.deepEqual(closed.sort(), [3, 4], "the two waiting longer go, and the pipelining one's two answers fit");
  } finally {
    for (const socket of sockets) socket.destroy();
    await http.close(0);
  }
});

test("a stream whose client stops reading is closed once it takes none of it for requestTimeoutMs; a slow one read is not", async () => {
  const requestTimeoutMs = 800;
  let cancelled = 0;
  // /flood writes 256 KB every 10 ms for as long as it is read; /slow, a short chunk every 300 ms for 2.4 s: a model
  // thinking between tokens, nothing waiting to be taken.
  const http = await listenWithDeadline((req) => {
    const slow = new URL(req.url).pathname === "/slow";
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await sleep(slow ? 300 : 10);
        if (slow && sent === 8) return controller.close();
        sent++;
        controller.enqueue(new Uint8Array(slow ? 16 : 256 * 1024).fill(120));
      },
      cancel: () => void cancelled++,
    });
    return new Response(body);
  }, requestTimeoutMs);
  let closedAt: number | undefined;
  http.server.on("connection", (s: Socket) => s.on("close", () => (closedAt = performance.now())));
  const socket = connect(http.port, "127.0.0.1");
  socket.on("error", () => {});
  try {
    await once(socket, "connect");
    socket.write("GET /flood HTTP/1.1\r\nHost: app\r\n\r\n");
    await once(socket, "data");
    socket.pause(); // reads no more, and keeps its side open
    const pausedAt = performance.now();
    for (const until = pausedAt + requestTimeoutMs + 5_000; closedAt === undefined && performance.now() < until; )
      await sleep(50);
    assert.ok(closedAt !== undefined, "the stream's connection was still open, its stream still running");
    assert.ok(closedAt - pausedAt >= requestTimeoutMs, `closed ${Math.round(closedAt - pausedAt)} ms after it stopped reading`);
    await waitFor("the stream's body cancelled", async () => cancelled === 1, 2_000);

    const [slow] = await rawExchange(http.port, "GET /slow HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
    assert.equal(slow?.status, 200);
    assert.equal(slow.body.match(/x{16}/g)?.length, 8, "the slow stream was cut");
  } finally {
    socket.destroy();
    await http.close(0);
  }
});

test("a stream waiting on its model past requestTimeoutMs is not cut for the answer queued behind it", async () => {
  // Nothing is waiting on the socket: only the pipelined answer, held in the process until the stream ends.
  const http = await listenWithDeadline((req) => {
    if (new URL(req.url).pathname !== "/think") return new Response("quick");
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode("a"));
        await sleep(800); // twice requestTimeoutMs
        controller.enqueue(new TextEncoder().encode("b"));
        controller.close();
      },
    });
    return new Response(body);
  }, 400);
  try {
    const answers = await rawExchange(
      http.port,
      "GET /think HTTP/1.1\r\nHost: app\r\n\r\nGET /quick HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    );
    assert.deepEqual(
      answers.map((a) => [a.status, a.body]),
      [
        [200, "ab"],
        [200, "quick"],
      ],
    );
  } finally {
    await http.close(0);
  }
});

test("every response carries Hono's secureHeaders() defaults once, and a header the app sets wins", async () => {
  const headers = await securityHeaders();
  assert.ok(headers.length >= 10, `Hono's defaults: ${JSON.stringify(headers)}`);
  const http = await listenHttp(
    (req) =>
      new URL(req.url).pathname === "/framed"
        ? new Response("ok", { headers: { "x-frame-options": "DENY" } })
        : Response.json({ error: "not found" }, { status: 404 }),
    {
      port: 0,
      host: "127.0.0.1",
      metrics: createMetrics(),
      log: createLogger("silent"),
      keepAliveTimeoutMs: 5_000,
      responseHeaders: headers,
    },
  );
  try {
    const base = `http://127.0.0.1:${http.port}`;
    const missing = await fetch(`${base}/missing`);
    assert.equal(missing.status, 404);
    for (const [name, value] of headers) assert.equal(missing.headers.get(name), value, name);
    assert.equal(missing.headers.get("x-content-type-options"), "nosniff");
    assert.equal(missing.headers.get("content-type"), "application/json");
    const framed = await fetch(`${base}/framed`);
    assert.equal(framed.headers.get("x-frame-options"), "DENY");
    assert.equal(framed.headers.get("referrer-policy"), "no-referrer");
    // Refused before the app, as Node would answer it itself: with them too.
    const [expect] = await rawExchange(http.port, "POST /x HTTP/1.1\r\nHost: app\r\nExpect: x\r\nContent-Length: 0\r\n\r\n");
    assert.equal(expect?.status, 417);
    for (const [name, value] of headers) assert.equal(expect.headers[name.toLowerCase()], value, `417: ${name}`);
  } finally {
    await http.close(0);
  }
});

test("a request still arriving after requestTimeoutMs gets a JSON 408; a slow answer to a whole request does not", {
  timeout: 10_000,
}, async () => {
  const requestTimeoutMs = 1_000;
  const http = await listenHttp(
    async (req) => {
      if (req.method === "POST") return new Response(await req.text());
      await sleep(requestTimeoutMs + 500);
      return new Response("slow but whole");
    },
    {
      port: 0,
      host: "127.0.0.1",
      metrics: createMetrics(),
      log: createLogger("silent"),
      keepAliveTimeoutMs: 5_000,
      requestTimeoutMs,
    },
  );
  const trickling = connect(http.port, "127.0.0.1");
  // A connection that never sends a byte is closed at the same deadline, without an answer: it made no request.
  const silent = connect(http.port, "127.0.0.1");
  let toSilent = "";
  silent.on("data", (d: Buffer) => {
    toSilent += d.toString();
  });
  const silentClosed = once(silent, "close");
  try {
    await once(trickling, "connect");
    let answer = "";
    trickling.on("data", (d: Buffer) => {
      answer += d.toString();
    });
    const started = performance.now();
    trickling.write("POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\n0123456789");
    const slow = fetch(`http://127.0.0.1:${http.port}/`);
    await once(trickling, "close");
    const closedAfter = performance.now() - started;
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/, answer);
    assert.ok(answer.endsWith('"}') && answer.includes('{"error":"malformed HTTP request: '), answer);
    assert.ok(closedAfter >= requestTimeoutMs && closedAfter < requestTimeoutMs * 2, `closed after ${closedAfter} ms`);
    assert.equal(await (await slow).text(), "slow but whole");
    await silentClosed;
    assert.equal(toSilent, "");
  } finally {
    silent.destroy();
    trickling.destroy();
    await http.close(0);
  }
});

test("an error that escapes the app is a JSON 500, logged, and counted where the 5xx alert looks", async () => {
  const metrics = createMetrics();
  const { log, records } = capturedLog("error");
  const http = await listenHttp(
    () => {
      throw new Error("escaped the app");
    },
    { port: 0, host: "127.0.0.1", metrics, log, keepAliveTimeoutMs: 5_000 },
  );
  try {
    const res = await fetch(`http://127.0.0.1:${http.port}/api/v1/query`);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: "internal error", code: "internal_error" });
    assert.equal(metricValue(await metrics.registry.metrics(), "http_requests_total", { status: "500" }), 1);
    assert.deepEqual(
      records().map(({ msg, err }) => ({ msg, err })),
      [{ msg: "request failed in the HTTP adapter", err: "escaped the app" }],
    );
  } finally {
    await http.close(0);
  }
});

test("a request refused before the app is logged with its status and reason, as the app logs each request", async () => {
  const { log, records } = capturedLog("info");
  const http = await listenHttp(() => new Response("ok"), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log,
    keepAliveTimeoutMs: 5_000,
  });
  try {
    const refusals = [
      "NOT HTTP AT ALL\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
      `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: ${"x".repeat(4_000)}\r\n\r\n`,
      // Refused by the adapter (@hono/node-server's RequestError), after Node's parser took it.
      "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    const statuses = [];
    for (const bytes of refusals) statuses.push((await rawExchange(http.port, bytes))[0]?.status);
    assert.deepEqual(statuses, [400, 405, 417, 400]);
    const lines = records().filter((r) => r.msg === "refused before the app");
    assert.deepEqual(
      lines.map(({ method, route, status }) => ({ method, route, status })),
      [
        { method: "other", route: "unmatched", status: "400" },
        { method: "other", route: "unmatched", status: "405" },
        { method: "POST", route: "unmatched", status: "417" },
        // Its method, though the adapter's refusal is not given the request: counted as "other" before.
        { method: "GET", route: "unmatched", status: "400" },
      ],
    );
    assert.match(lines[3]!.error, /^malformed request: /);
    assert.match(lines[0]!.error, /^malformed HTTP request: .*\(HPE_/);
    assert.match(lines[1]!.error, /^CONNECT is not supported/);
    assert.match(
      lines[2]!.error,
      /^unsupported Expect header: x+\.\.\. \(4\d\d\d characters\)$/,
      "the client's bytes are clipped",
    );
  } finally {
    await http.close(0);
  }
});

test("a request without a Host header (HTTP/1.0) is served on an IPv6 HOST too, its URL's host the address bracketed", async (t) => {
  if (!Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.address === "::1")))
    return t.skip("no IPv6 loopback on this machine");
  const urls: string[] = [];
  const http = await listenHttp(
    (req) => {
      urls.push(req.url);
      return new Response("ok");
    },
    { port: 0, host: "::1", metrics: createMetrics(), log: createLogger("silent"), keepAliveTimeoutMs: 5_000 },
  );
  try {
    // An HTTP/1.0 health checker (HAProxy's httpchk sends no Host): the URL `http://::1/health` was a 400.
    const [answer] = await rawExchange(http.port, "GET /health HTTP/1.0\r\n\r\n", 5_000, "::1");
    assert.equal(answer?.status, 200, answer?.body);
    assert.deepEqual(urls, ["http://[::1]/health"]);
  } finally {
    await http.close(0);
  }
});

test("a CONNECT is answered with a JSON 405, and clients resetting one at once do not end the process", async () => {
  const http = await listenHttp(() => new Response("ok"), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs: 5_000,
  });
  const crashes: unknown[] = [];
  const onUncaught = (err: unknown) => crashes.push(err);
  process.on("uncaughtException", onUncaught);
  try {
    const socket = connect(http.port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    const [chunk] = (await once(socket, "data")) as [Buffer];
    assert.match(chunk.toString(), /^HTTP\/1\.1 405 Method Not Allowed\r\n[\s\S]*\r\n\r\n\{"error":"CONNECT is not supported/);
    assert.match(
      chunk.toString(),
      /\r\nAllow: GET, HEAD, POST, DELETE\r\n/,
      "a 405 says which methods are served (RFC 9110 15.5.6)",
    );
    socket.destroy();
    // The server writes its answer to a socket the client already reset: ECONNRESET on a socket Node handed over.
    for (let i = 0; i < 200; i++) {
      const resetting = connect(http.port, "127.0.0.1");
      resetting.on("error", () => {});
      resetting.on("connect", () => {
        resetting.write("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        resetting.resetAndDestroy();
      });
      if (i % 20 === 19) await sleep(10);
    }
    await sleep(300);
    assert.deepEqual(crashes, []);
    assert.equal((await fetch(`http://127.0.0.1:${http.port}/`)).status, 200);
  } finally {
    process.off("uncaughtException", onUncaught);
    await http.close(0);
  }
});

test("a CONNECT pipelined behind a request is refused after that request's answer, and its connection does not hold a drain", async () => {
  const http = await listenHttp(async () => sleep(200).then(() => new Response("first")), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs: 5_000,
  });
  const connectRequest = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
  let closed: Promise<boolean> | undefined;
  let kept: Socket | undefined;
  try {
    // Before, the 405 went out at once and ended the connection: the request's own answer was never sent.
    const answers = await rawExchange(http.port, `GET /slow HTTP/1.1\r\nHost: app\r\n\r\n${connectRequest}`);
    assert.deepEqual(
      answers.map((a) => [a.status, a.body.slice(0, 30)]),
      [
        [200, "first"],
        [405, '{"error":"CONNECT is not suppo'],
      ],
    );
    // A client that keeps a refused CONNECT's connection open: Node no longer tracks it, and the drain waited for it.
    kept = connect({ port: http.port, host: "127.0.0.1", allowHalfOpen: true });
    kept.on("error", () => {});
    await once(kept, "connect");
    kept.write(connectRequest);
    await once(kept, "data");
    const started = performance.now();
    closed = http.close(100);
    await Promise.race([closed, sleep(1_500)]);
    assert.ok(performance.now() - started < 1_500, "the drain still waits for the refused CONNECT's connection");
  } finally {
    kept?.destroy();
    await (closed ?? http.close(0));
  }
});

test("a drain tells requests in flight on keep-alive connections to close, and ends once they are answered", async () => {
  const slowMs = 1_500; // past the drain's 1 s grace for idle connections
  const http = await listenHttp(
    async (req) => {
      if (new URL(req.url).pathname === "/json") return sleep(slowMs).then(() => Response.json({ ok: true }));
      const body = new ReadableStream({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("first "));
          await sleep(slowMs);
          controller.enqueue(new TextEncoder().encode("last"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/plain" } });
    },
    { port: 0, host: "127.0.0.1", metrics: createMetrics(), log: createLogger("silent"), keepAliveTimeoutMs: 60_000 },
  );
  const agent = new Agent({ keepAlive: true });
  const get = (path: string) =>
    new Promise<{ connection: string | undefined; body: string }>((resolve, reject) => {
      request(`http://127.0.0.1:${http.port}${path}`, { agent }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d));
        res.on("end", () => resolve({ connection: res.headers.connection, body }));
      })
        .on("error", reject)
        .end();
    });
  try {
    const json = get("/json");
    const stream = get("/stream");
    await sleep(300); // both in flight; the stream has sent its headers
    const started = performance.now();
    const timedOut = await http.close(10_000);
    const drainMs = performance.now() - started;
    assert.equal((await json).connection, "close", "the answer in flight closes its connection");
    assert.equal((await stream).body, "first last", "the stream in flight is answered whole");
    assert.equal(timedOut, false);
    assert.ok(drainMs < 4_000, `drained in ${Math.round(drainMs)} ms: a connection stayed open to the deadline`);
  } finally {
    agent.destroy();
  }
});

test("a drain answers pipelined requests whole, each in turn, and a big answer to a slow reader to its last byte", async () => {
  const http = await listenHttp(
    async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/big") return new Response("x".repeat(4 * 1024 * 1024));
      await sleep(path === "/slow" ? 1_500 : 50);
      return Response.json({ path });
    },
    { port: 0, host: "127.0.0.1", metrics: createMetrics(), log: createLogger("silent"), keepAliveTimeoutMs: 60_000 },
  );
  const open = async () => {
    const socket = connect(http.port, "127.0.0.1");
    await once(socket, "connect");
    const received = { text: "", bytes: 0, closed: once(socket, "close") };
    socket.on("data", (d: Buffer) => {
      received.text += d.toString("latin1");
      received.bytes += d.length;
    });
    return { socket, received };
  };
  const answers = (text: string) =>
    [...text.matchAll(/Connection: (\S+)[\s\S]*?\{"path":"([^"]+)"\}/g)].map((m) => `${m[2]} ${m[1]}`);
  // In flight as the drain starts: two pipelined requests, the fast one queued behind the slow one.
  const inFlight = await open();
  inFlight.socket.write("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
  // Kept alive before it, then two pipelined requests within its first second.
  const kept = await open();
  kept.socket.write("GET /warm HTTP/1.1\r\nHost: a\r\n\r\n");
  // A slow reader: about 2 MB/s.
  const reader = await open();
  reader.socket.on("data", (d: Buffer) => {
    reader.socket.pause();
    setTimeout(() => reader.socket.resume(), Math.ceil(d.length / 2_000));
  });
  reader.socket.write("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  await sleep(300);
  const started = performance.now();
  const closing = http.close(10_000);
  await sleep(100);
  kept.socket.write("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(await closing, false, "drained before the deadline");
  assert.ok(performance.now() - started < 6_000, `drained in ${Math.round(performance.now() - started)} ms`);
  await Promise.all([inFlight.received.closed, kept.received.closed, reader.received.closed]);
  // The fast answer was written (queued) before the drain: both keep-alive, and the drain closes the connection after.
  assert.deepEqual(answers(inFlight.received.text), ["/slow keep-alive", "/fast keep-alive"]);
  assert.deepEqual(answers(kept.received.text), ["/warm keep-alive", "/a keep-alive", "/b close"]);
  const body = reader.received.text.slice(reader.received.text.indexOf("\r\n\r\n") + 4);
  assert.equal(body.length, 4 * 1024 * 1024, "the big answer arrived whole");
});

test("a drain does not cut an ended answer still being written to a client that stopped reading past the idle grace", async () => {
  const size = beyondLoopbackBuffers();
  const http = await listenHttp(async () => new Response("x".repeat(size)), {
    port: 0,
    host: "127.0.0.1",
    metrics: createMetrics(),
    log: createLogger("silent"),
    keepAliveTimeoutMs: 60_000,
  });
  let written = false;
  http.server.on("request", (_req, res) => res.on("finish", () => (written = true)));
  const socket = connect(http.port, "127.0.0.1");
  await once(socket, "connect");
  let bytes = 0;
  socket.pause(); // reads nothing until resumed
  socket.on("data", (d: Buffer) => {
    bytes += d.length;
  });
  const closed = once(socket, "close");
  const requested = once(http.server, "request");
  socket.write("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  await requested;
  await sleep(100); // the answer's first writes
  const closing = http.close(10_000);
  try {
    assert.equal(written, false, "the answer does not fit the kernel's buffers: it is still being written");
    await sleep(1_200); // past the drain's 1 s grace for idle connections
    socket.resume();
    assert.equal(await closing, false, "drained before the deadline");
    await closed;
  } finally {
    socket.destroy();
  }
  assert.ok(bytes > size, `the answer arrived whole: ${bytes} bytes of ${size} and its head`);
});
