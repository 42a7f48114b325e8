import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { type AddressInfo, connect as connectTo, createServer, type Socket } from "node:net";
import { createRequire } from "node:module";
import { queryObjects } from "node:v8";
import { Ollama } from "ollama";
import { after, before, test } from "node:test";
import { AppError, describe } from "../../app/src/errors.ts";
import { createMetrics } from "../../app/src/metrics.ts";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { loadConfig } from "../../app/src/config.ts";
import { createDocuments } from "../../app/src/services/documents.ts";
import { createOllama } from "../../app/src/services/ollama.ts";
import { appEnv, UNUSED_URLS } from "../support/app.ts";
import { fetchOverRequest } from "../../app/src/services/upstream-fetch.ts";
import { createLogger } from "../../app/src/log.ts";
import { onError } from "../../app/src/middleware/errors.ts";
import { observe } from "../../app/src/middleware/observe.ts";
import {
  qdrantBase,
  type QdrantService,
  UPSERT_MAX_BYTES,
  upsertBatches,
  VectorSizeMismatch,
} from "../../app/src/services/qdrant.ts";
import { listen } from "../fakes/http.ts";
import { startFakeQdrant } from "../fakes/qdrant.ts";
import { startFakes, type Fakes } from "../support/fakes.ts";
import { freePort } from "../support/process.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import { capturedLog } from "../support/log.ts";
import { chatLine, ollamaAt } from "../support/ollama.ts";
import { putChunks, qdrantAt } from "../support/qdrant.ts";

const require = createRequire(import.meta.url);

let fakes: Fakes;
before(async () => {
  fakes = await startFakes();
});
after(() => fakes.stop());

/** A promise a test opens by hand: a fake upstream holds its answer until then (Node 20 has no Promise.withResolvers). */
function gate() {
  let open!: () => void;
  const passed = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { passed, open };
}

test("sequential Ollama and Qdrant calls reuse their keep-alive connections instead of opening one per call", async () => {
  const ollamaProxy = await startTcpProxy(fakes.ollama.port);
  const qdrantProxy = await startTcpProxy(fakes.qdrant.port);
  try {
    const ollama = ollamaAt(ollamaProxy.url);
    const qdrant = qdrantAt(qdrantProxy.url, "reuse");
    const [vector] = await ollama.embed(["tides follow the moon"]);
    await putChunks(qdrant, [{ documentId: "d", chunkIndex: 0, title: null, text: "tides", metadata: {}, vector: vector! }]);
    const round = async (i: number) => {
      await ollama.embed([`question ${i}`]);
      assert.equal((await qdrant.search(vector!, undefined, 3))?.length, 1);
      await ollama.chat("fake-small", [{ role: "user", content: `question ${i}` }]);
    };
    for (let i = 0; i < 3; i++) await round(i);
    // A call may start while undici still finishes the previous response on its socket; the Agent then opens a
    // second one. What must not happen is a connection per call: the count stays put over the next 60 calls.
    // Qdrant has two pools, two connections each at most: the client's (the collection and its indexes) and the one of
    // the point writes and the query.
    const opened = { ollama: ollamaProxy.connections(), qdrant: qdrantProxy.connections() };
    assert.ok(opened.ollama <= 2 && opened.qdrant <= 4, JSON.stringify(opened));
    for (let i = 3; i < 23; i++) await round(i);
    assert.deepEqual({ ollama: ollamaProxy.connections(), qdrant: qdrantProxy.connections() }, opened);
  } finally {
    await Promise.all([ollamaProxy.close(), qdrantProxy.close()]);
  }
});

test("the Ollama deadline cuts an upstream that never answers, and a stream that stalls mid-body", async () => {
  // Accepts connections and reads requests but never answers: an upstream that hangs.
  const stalled = await startTcpProxy(fakes.ollama.port);
  stalled.blackhole();
  try {
    const ollama = ollamaAt(stalled.url, 200);
    for (const call of [() => ollama.embed(["hello"]), () => ollama.chat("fake-small", [{ role: "user", content: "hi" }])]) {
      const started = Date.now();
      await assert.rejects(call(), (err) => err instanceof AppError && err.type === "ollama_timeout");
      assert.ok(Date.now() - started < 2_000, "cut at the deadline, not at undici's 300 s header timeout");
    }
  } finally {
    await stalled.close();
  }

  fakes.ollama.knobs.tokenDelayMs = 5_000;
  try {
    const ollama = ollamaAt(fakes.ollama.url, 300);
    const stream = ollama.chatStream("fake-small", [{ role: "system", content: "[1] Tides: the moon pulls" }]);
    await assert.rejects(
      (async () => {
        for (let next = await stream.next(); !next.done; next = await stream.next());
      })(),
      (err) => err instanceof AppError && err.type === "ollama_timeout",
    );
  } finally {
    fakes.ollama.knobs.tokenDelayMs = 0;
  }
});

test("a streamed answer longer than the Ollama deadline is not cut while its tokens keep coming", async () => {
  const timeoutMs = 300;
  fakes.ollama.knobs.tokenDelayMs = 60;
  try {
    const ollama = ollamaAt(fakes.ollama.url, timeoutMs);
    const context = "[1] Tides: the moon pulls the oceans toward it twice a day, and the sun adds a little to the pull";
    const started = Date.now();
    const stream = ollama.chatStream("fake-small", [{ role: "system", content: context }]);
    let tokens = 0;
    let next = await stream.next();
    for (; !next.done; next = await stream.next()) tokens++;
    assert.ok(Date.now() - started > 2 * timeoutMs, `the answer took ${Date.now() - started} ms`);
    assert.match(next.value.content, /^Based on \[1\]: Tides: the moon pulls/);
    assert.equal(next.value.completionTokens, tokens);
  } finally {
    fakes.ollama.knobs.tokenDelayMs = 0;
  }
});

test("streamed answers leave nothing behind in the Ollama client, whether they end, fail mid-answer or are abandoned", async () => {
  // ollama-js keeps every stream it hands out in its client's list (for `abort()`), and takes one off only when its
  // reader asks for more after the `done` message; one that fails or is left at `done` stays for the client's life.
  const ollama = ollamaAt(fakes.ollama.url);
  const messages = [{ role: "user", content: "What causes the tides?" }];
  const probe = await new Ollama({ host: fakes.ollama.url }).chat({ model: "fake-small", messages, stream: true });
  probe.abort();
  const streamsAlive = () => queryObjects(probe.constructor as new () => unknown, { format: "count" }) as number;
  const before = streamsAlive();
  for (let i = 0; i < 10; i++) for await (const _ of ollama.chatStream("fake-small", messages));
  fakes.ollama.knobs.failAfterChunks = 1;
  try {
    for (let i = 0; i < 5; i++) {
      await assert.rejects(async () => {
        for await (const _ of ollama.chatStream("fake-small", messages));
      }, /an error was encountered while running the model/);
    }
  } finally {
    fakes.ollama.knobs.failAfterChunks = null;
  }
  for (let i = 0; i < 5; i++) await ollama.chatStream("fake-small", messages).next();
  assert.ok(streamsAlive() <= before, `${streamsAlive() - before} streams still held after 20 streamed answers`);
});

test("a Qdrant search is cut at its deadline mid-body, and a refused one carries Qdrant's reason", {
  timeout: 10_000,
}, async () => {
  const held = gate();
  const refusal = 'Bad request: Index required but not found for "metadata.lang" of one of the following types: [keyword]';
  const otherSize = "Wrong input: Vector dimension error: expected dim: 4, got 3";
  const qdrant = new Hono()
    .get("/collections/:name/exists", (c) => c.json({ result: { exists: true }, status: "ok", time: 0 }))
    .post("/collections/stalls/points/query", (c) =>
      stream(c, async (s) => {
        await s.write('{"result":{"points":[');
        await held.passed;
      }),
    )
    .post("/collections/refuses/points/query", (c) => c.json({ status: { error: refusal }, time: 0 }, 400))
    .post("/collections/other-size/points/query", (c) => c.json({ status: { error: otherSize }, time: 0 }, 400));
  const server = await listen(qdrant);
  const search = (collection: string) => qdrantAt(server.url, collection, { timeoutMs: 300 }).search([1, 0, 0], undefined, 3);
  try {
    const started = Date.now();
    await assert.rejects(search("stalls"), (err) => err instanceof AppError && err.type === "qdrant_timeout");
    assert.ok(Date.now() - started < 2_000, "cut at the deadline while the body was still arriving");
    await assert.rejects(
      search("refuses"),
      (err) => err instanceof AppError && err.status === 502 && err.message === `qdrant request failed: HTTP 400: ${refusal}`,
    );
    await assert.rejects(search("other-size"), (err) => {
      assert.ok(err instanceof VectorSizeMismatch, String(err));
      assert.deepEqual([err.status, err.collectionSize, err.vectorSize], [502, 4, 3]);
      return true;
    });
  } finally {
    held.open();
    await server.close();
  }
});

test("an Ollama or Qdrant that cannot be reached is a 503 (retry later); one that breaks off its answer stays a 502", async () => {
  // The client is told the code, not the host and port (internal names, as /health/ready hides); the log gets the cause.
  const unavailable = (service: string, code: string, host: string) => (err: unknown) => {
    assert.ok(err instanceof AppError, String(err));
    assert.equal(err.status, 503, err.message);
    assert.ok(err.message.startsWith(`${service} unavailable: `) && err.message.includes(code), err.message);
    assert.ok(!err.message.includes(host), `${err.message} names ${host}`);
    assert.match(describe(err.cause), new RegExp(host.replaceAll(".", "\\.")), "the cause keeps it for the log");
    assert.equal(err.type, `${service}_unavailable`);
    return true;
  };
  const port = await freePort();
  const closed = `http://127.0.0.1:${port}`;
  await assert.rejects(ollamaAt(closed).embed(["x"]), unavailable("ollama", "ECONNREFUSED", `127.0.0.1:${port}`));
  await assert.rejects(
    ollamaAt("http://ollama.invalid:11434").embed(["x"]),
    unavailable("ollama", "ENOTFOUND", "ollama.invalid"),
  );
  await assert.rejects(qdrantAt(closed, "docs").search([1, 0, 0], undefined, 3), (err) => {
    assert.ok(err instanceof AppError && err.status === 503 && err.message.includes("ECONNREFUSED"), String(err));
    assert.ok(!err.message.includes(String(port)), err.message);
    return true;
  });

  // Headers and part of a body, then the connection closes: the upstream was reached and broke off its answer.
  const breaksOff = createServer((socket) =>
    socket.once("data", () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"embeddings":[');
      socket.destroy();
    }),
  );
  await new Promise<void>((resolve) => breaksOff.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(breaksOff.address() as AddressInfo).port}`;
    await assert.rejects(ollamaAt(url).embed(["x"]), (err) => err instanceof AppError && err.status === 502);
  } finally {
    breaksOff.close();
  }
});

test("a 5xx's log line gives the error whole, host and port included, where its body gives only the code", async () => {
  const { log, lines } = capturedLog("info");
  const app = new Hono();
  app.use(observe(createMetrics(), log));
  app.onError(onError(log));
  app.get("/x", async (c) => c.json(await ollamaAt("http://ollama.invalid:11434").embed(["x"])));
  const port = await freePort();
  app.get("/q", async (c) => c.json(await qdrantAt(`http://127.0.0.1:${port}`, "docs").search([1, 0], undefined, 1)));
  const res = await app.request("/x");
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { error: "ollama unavailable: getaddrinfo ENOTFOUND", code: "ollama_unavailable" });
  const q = await app.request("/q");
  assert.equal(q.status, 503);
  assert.doesNotMatch(await q.text(), new RegExp(String(port)));
  const [ollamaLine, qdrantLine] = lines.filter((l) => l.includes('"request"')).map((l) => JSON.parse(l));
  assert.equal(ollamaLine.status, "503");
  assert.match(ollamaLine.err, /ENOTFOUND ollama\.invalid/);
  // The Qdrant client's error says only "fetch failed"; the host and port are in its cause's cause.
  assert.match(qdrantLine.err, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
});

test("an Ollama 200 of another shape, or an error page, is a 502 whose message stays short", async () => {
  const gateway = new Hono()
    .post("/api/embed", (c) => c.json({ status: "ok" })) // a gateway's own 200: no `embeddings`
    .post("/api/chat", (c) => c.html(`<html><body>${"Bad gateway. ".repeat(400)}</body></html>`, 502));
  const server = await listen(gateway);
  try {
    const ollama = ollamaAt(server.url);
    await assert.rejects(ollama.embed(["x"]), (err) => {
      assert.ok(err instanceof AppError && err.status === 502, String(err));
      assert.equal(err.message, "ollama request failed: expected 1 embeddings, got no");
      return true;
    });
    await assert.rejects(ollama.chat("m", [{ role: "user", content: "hi" }]), (err) => {
      assert.ok(err instanceof AppError && err.status === 502, String(err));
      assert.ok(err.message.length < 300, `a ${err.message.length}-character message`);
      return true;
    });
  } finally {
    await server.close();
  }
});

// Bounded: without the cut, the answer never ends.
test("a streamed answer past MAX_ANSWER_TOKENS chunks is cut there, as at its length, and its upstream call ended", {
  timeout: 10_000,
}, async () => {
  let aborted = false;
  // /runaway ignores num_predict (Ollama keeps to it) and never ends its answer. /honest sends exactly 20 chunks, then
  // its done message carrying what a model's output parser held back (Ollama's ChatHandler) and the counts.
  const runaway = new Hono().post("/api/chat", async (c) => {
    const honest = (await c.req.json<{ messages: Array<{ content: string }> }>()).messages[0]!.content === "honest";
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, async (s) => {
      s.onAbort(() => {
        aborted = true;
      });
      for (let sent = 0; !s.aborted && !(honest && sent === 20); sent++) {
        await s.write(chatLine({ message: { role: "assistant", content: "word " }, done: false }));
        await new Promise((r) => setTimeout(r, 1));
      }
      const counts = { prompt_eval_count: 77, eval_count: 20, done_reason: "length" };
      if (honest) await s.write(chatLine({ message: { role: "assistant", content: "<" }, done: true, ...counts }));
    });
  });
  const server = await listen(runaway);
  try {
    const ollama = ollamaAt(server.url, 5_000, 20);
    const ask = async (content: string) => {
      const tokens: string[] = [];
      const answer = ollama.chatStream("m", [{ role: "user", content }]);
      let next = await answer.next();
      for (; !next.done; next = await answer.next()) tokens.push(next.value);
      return { tokens, result: next.value };
    };
    const runawayAnswer = await ask("runaway");
    assert.equal(runawayAnswer.tokens.length, 20);
    assert.equal(runawayAnswer.result.content, "word ".repeat(20));
    assert.equal(runawayAnswer.result.truncated, true);
    assert.equal(runawayAnswer.result.looped, false);
    for (let i = 0; i < 100 && !aborted; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(aborted, "the upstream call was left running");

    aborted = false;
    const honest = await ask("honest");
    assert.equal(honest.result.content, `${"word ".repeat(20)}<`, "an answer of exactly its length was cut");
    assert.deepEqual([honest.result.promptTokens, honest.result.completionTokens, honest.result.truncated], [77, 20, true]);
    assert.equal(aborted, false);
  } finally {
    await server.close();
  }
});

test("embeddings of different sizes, in one answer or across batches, or with elements that are not numbers, are a 502", async () => {
  let calls = 0;
  const answers: Record<string, (n: number) => unknown[]> = {
    ragged: (n) => Array.from({ length: n }, (_, i) => (i === 0 ? [0.1] : [0.1, 0.2])),
    empty: (n) => Array.from({ length: n }, () => []),
    "not numbers": (n) => Array.from({ length: n }, () => [0.1, null]),
    // The first batch of 32 at one size, the next at another.
    batches: (n) => Array.from({ length: n }, () => (calls === 1 ? [0.1, 0.2] : [0.1, 0.2, 0.3])),
  };
  let shape = "ragged";
  const gateway = new Hono().post("/api/embed", async (c) => {
    calls++;
    const { input } = await c.req.json<{ input: string[] }>();
    return c.json({ model: "fake-embed", embeddings: answers[shape]!(input.length) });
  });
  const server = await listen(gateway);
  try {
    for (const [name, texts] of [
      ["ragged", ["a", "b"]],
      ["empty", ["a"]],
      ["not numbers", ["a"]],
      ["batches", Array.from({ length: 33 }, (_, i) => `text ${i}`)],
    ] as const) {
      shape = name;
      calls = 0;
      await assert.rejects(ollamaAt(server.url).embed([...texts]), (err) => {
        assert.ok(err instanceof AppError && err.status === 502, `${name}: ${String(err)}`);
        assert.equal(err.message, "ollama request failed: embeddings that are not vectors of finite numbers, all of one size");
        return true;
      });
    }
  } finally {
    await server.close();
  }
});

test("only Qdrant's own 'collection doesn't exist' is a missing collection; another 404 or an odd 200 is a 502, a 503 a 503", async () => {
  const qdrant = new Hono()
    .get("/collections/:name/exists", (c) => c.json({ result: { exists: true }, status: "ok", time: 0 }))
    // A proxy or gateway in front of Qdrant, not Qdrant: its own 404 pages.
    .post("/collections/proxied/points/delete", (c) => c.text("404 page not found", 404))
    .post("/collections/proxied/points/query", (c) => c.html("<html><body>Not Found</body></html>", 404))
    .post("/collections/busy/points/query", (c) => c.json({ status: { error: "Service unavailable" }, time: 0 }, 503))
    .post("/collections/odd/points/query", (c) => c.json({ result: { points: [null] }, status: "ok", time: 0 }));
  const server = await listen(qdrant);
  const is = (status: number) => (err: unknown) => err instanceof AppError && err.status === status;
  try {
    // Read as a missing collection, the delete succeeded and its chunks stayed searchable, with no record to delete.
    await assert.rejects(qdrantAt(server.url, "proxied").deleteChunks("doc", 1), is(502));
    await assert.rejects(qdrantAt(server.url, "proxied").search([1, 0, 0], undefined, 3), is(502));
    await assert.rejects(qdrantAt(server.url, "odd").search([1, 0, 0], undefined, 3), is(502));
    await assert.rejects(qdrantAt(server.url, "busy").search([1, 0, 0], undefined, 3), (err) => {
      assert.ok(is(503)(err), String(err));
      assert.equal((err as AppError).headers?.["Retry-After"], "1");
      return true;
    });
  } finally {
    await server.close();
  }
});

/** A chunk written, searched for and Qdrant's readiness asked, each a call the app makes as it serves. */
async function servedBy(qdrant: QdrantService): Promise<void> {
  const point = { documentId: "d", chunkIndex: 0, title: null, text: "Found.", metadata: {}, vector: [0.1, 0.2] };
  await qdrant.ready();
  await putChunks(qdrant, [point]);
  assert.equal((await qdrant.search([0.1, 0.2], undefined, 1))?.length, 1);
}

test("QDRANT_URL with no port is Qdrant's 6333 for every call, the client's and the app's own", async (t) => {
  assert.deepEqual(qdrantBase("http://qdrant"), { host: "http://qdrant", port: 6333, prefix: "" });
  // A port written is kept, a scheme's default too, which URL parsing drops.
  assert.deepEqual(qdrantBase("https://gateway.example:443/"), { host: "https://gateway.example", port: 443, prefix: "" });
  // Qdrant at its default port on a host of its own (another loopback address), named without a port: the query and the
  // point writes went to port 80, refused, while the client's calls (readiness, the collection) reached it.
  const piped = new Set<Socket>();
  const atDefaultPort = createServer((socket) => {
    const upstream = connectTo(fakes.qdrant.port, "127.0.0.1");
    for (const end of [socket, upstream]) piped.add(end.on("error", () => {}));
    socket.pipe(upstream).pipe(socket);
  });
  const listening = await new Promise<Error | undefined>((resolve) => {
    atDefaultPort.once("error", resolve).listen(6333, "127.0.0.7", () => resolve(undefined));
  });
  if ((listening as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE")
    return t.skip("port 6333 is taken on this machine (a Qdrant of its own?)");
  assert.equal(listening, undefined);
  try {
    await servedBy(qdrantAt("http://127.0.0.7", "at-default-port"));
  } finally {
    atDefaultPort.close();
    for (const end of piped) end.destroy();
  }
});

test("QDRANT_URL's path is the prefix of every call, the client's and the app's own", async () => {
  assert.deepEqual(qdrantBase("http://gateway:8080/qdrant/"), { host: "http://gateway", port: 8080, prefix: "/qdrant" });
  // A gateway serving Qdrant under /qdrant and nothing else: the client's calls went without the path, 404 each.
  const seen: string[] = [];
  const gateway = await listen(
    new Hono().all("*", (c) => {
      const { pathname, search } = new URL(c.req.url);
      seen.push(pathname);
      if (!pathname.startsWith("/qdrant/")) return c.text("not here", 404);
      return fetch(`${fakes.qdrant.url}${pathname.slice("/qdrant".length)}${search}`, {
        method: c.req.method,
        headers: c.req.raw.headers,
        body: c.req.raw.body,
        duplex: "half",
      } as RequestInit);
    }),
  );
  try {
    await servedBy(qdrantAt(`${gateway.url}/qdrant/`, "behind-gateway"));
    assert.deepEqual(
      seen.filter((path) => !path.startsWith("/qdrant/")),
      [],
    );
    assert.ok(seen.includes("/qdrant/collections/behind-gateway/points/query"), seen.join(" "));
  } finally {
    await gateway.close();
  }
});

test("an upstream error that echoes the request's Qdrant API key is passed on with the key taken out", async () => {
  const apiKey = "QDRANTSECRETkey789";
  const echo = new Hono()
    .get("/collections/:name/exists", (c) => c.json({ result: { exists: true }, status: "ok", time: 0 }))
    // A proxy in front of Qdrant that answers with the request it refused, headers and all.
    .post("/collections/:name/points/query", (c) =>
      c.json({ status: { error: `bad request headers=${JSON.stringify(c.req.header())}` }, time: 0 }, 400),
    );
  const server = await listen(echo);
  try {
    await assert.rejects(qdrantAt(server.url, "c", { apiKey }).search([1, 0, 0], undefined, 3), (err) => {
      assert.ok(err instanceof AppError && err.status === 502, String(err));
      assert.doesNotMatch(err.message, new RegExp(apiKey));
      assert.match(err.message, /"api-key":"\[redacted\]"/);
      return true;
    });
  } finally {
    await server.close();
  }
});

test("an ingest answered 504 stops embedding: no Ollama batch starts past its deadline", async () => {
  let embeds = 0;
  const slow = new Hono().post("/api/embed", async (c) => {
    embeds++;
    await new Promise((resolve) => setTimeout(resolve, 60));
    const { input } = await c.req.json<{ input: string[] }>();
    return c.json({ embeddings: input.map(() => [0.1, 0.2]) });
  });
  const server = await listen(slow);
  try {
    const urls = { ...UNUSED_URLS, ollamaUrl: server.url };
    const documents = createDocuments({
      config: loadConfig(appEnv(urls, { REQUEST_TIMEOUT_MS: "150", QDRANT_TIMEOUT_MS: "50" })),
      store: { busyDocuments: async () => undefined, upsertDocuments: async () => {}, releaseDocuments: async () => {} } as never,
      corpus: { bump: async () => {} } as never,
      ollama: createOllama({
        url: server.url,
        timeoutMs: 5_000,
        embedModel: "e",
        batchSize: 1,
        maxAnswerTokens: 16,
        metrics: createMetrics(),
      }),
      qdrant: {} as never,
      vectorFit: { refused: () => {} },
      log: createLogger("silent"),
    });
    // Twenty batches of 60 ms: the deadline passes during the third.
    const docs = Array.from({ length: 20 }, (_, i) => ({ id: `d${i}`, text: `Document ${i}.` }));
    await assert.rejects(documents.ingest(docs, "key:a", 0), { status: 504 });
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.ok(embeds <= 4, `${embeds} embed calls, most of them after the 504`);
  } finally {
    await server.close();
  }
});

test("an Ollama chat or embed 200 of another shape is a 502, not a 500 where it is stored", async () => {
  let chat: unknown = {};
  const gateway = new Hono().post("/api/embed", (c) => c.json({ embeddings: [null] })).post("/api/chat", (c) => c.json(chat));
  const server = await listen(gateway);
  try {
    const ollama = ollamaAt(server.url);
    await assert.rejects(ollama.embed(["x"]), (err) => err instanceof AppError && err.status === 502);
    const answer = (message: unknown, counts = {}) => ({ model: "m", message, done: true, done_reason: "stop", ...counts });
    for (const shape of [
      answer({ role: "assistant", content: null }),
      answer(undefined),
      answer({ role: "assistant", content: "hi" }, { prompt_eval_count: "many" }),
      answer({ role: "assistant", content: "hi" }, { eval_count: 1e300 }),
    ]) {
      chat = shape;
      await assert.rejects(ollama.chat("m", [{ role: "user", content: "hi" }]), (err) => {
        assert.ok(err instanceof AppError && err.status === 502, `${JSON.stringify(shape)}: ${String(err)}`);
        return true;
      });
    }
  } finally {
    await server.close();
  }
});

test("a collection lost under a running replica: searches find nothing, the next ingest creates it again with its indexes", async () => {
  const { log, lines: warnings } = capturedLog("warn");
  const client = qdrantAt(fakes.qdrant.url, "lost", { log });
  const point = (documentId: string) => ({
    documentId,
    chunkIndex: 0,
    title: null,
    text: documentId,
    metadata: { lang: "en" },
    vector: [1, 0, 0],
  });
  await putChunks(client, [point("a")]);
  assert.equal((await client.search([1, 0, 0], undefined, 3))?.length, 1);

  fakes.qdrant.collections.delete("lost"); // the volume is gone: Qdrant answers 404 for the collection
  assert.equal(await client.search([1, 0, 0], undefined, 3), null, "no 502: a missing collection answers null");
  assert.equal(warnings.length, 1, "one warning for the loss");
  assert.match(JSON.parse(warnings[0]!).msg, /collection missing/);
  await client.deleteChunks("a", 2);

  await putChunks(client, [point("b")]);
  const created = fakes.qdrant.collections.get("lost");
  assert.ok(created, "the ingest created the collection again");
  assert.deepEqual([...created.payloadSchema.keys()].sort(), ["document_id", "metadata.lang", "pending"], "with its indexes");
  assert.deepEqual(
    (await client.search([1, 0, 0], undefined, 3))?.map((h) => h.documentId),
    ["b"],
  );

  // Lost again between a write's check and its upsert: the write still lands.
  fakes.qdrant.collections.delete("lost");
  await putChunks(client, [point("c")]);
  assert.deepEqual(
    (await client.search([1, 0, 0], undefined, 3))?.map((h) => h.documentId),
    ["c"],
  );
});

test("metadata keys get payload indexes up to QDRANT_METADATA_INDEX_LIMIT for the whole collection; filters past it still match", async () => {
  const { log, lines: warnings } = capturedLog("warn");
  const point = (documentId: string, metadata: Record<string, unknown>) => ({
    documentId,
    chunkIndex: 0,
    title: null,
    text: documentId,
    metadata,
    vector: [1, 0, 0],
  });
  const first = qdrantAt(fakes.qdrant.url, "capped", { metadataIndexLimit: 3, log });
  await putChunks(first, [point("a", { lang: "en", tier: 1 }), point("b", { lang: "de", team: "x", unique_1: "y" })]);
  const indexed = () => [...fakes.qdrant.collections.get("capped")!.payloadSchema.keys()].sort();
  assert.deepEqual(indexed(), ["document_id", "metadata.lang", "metadata.team", "metadata.tier", "pending"]);
  assert.equal(warnings.length, 1, "one warning per ingest");
  assert.deepEqual(JSON.parse(warnings[0]!).keys, ["unique_1"]);

  // Another replica counts the collection's indexes, not its own: it adds none.
  const second = qdrantAt(fakes.qdrant.url, "capped", { metadataIndexLimit: 3, log });
  await putChunks(second, [point("c", { unique_2: "z", unique_3: "z", lang: "fr" })]);
  assert.deepEqual(indexed(), ["document_id", "metadata.lang", "metadata.team", "metadata.tier", "pending"]);
  assert.deepEqual(JSON.parse(warnings[1]!).keys, ["unique_2", "unique_3"]);

  const hits = await second.search([1, 0, 0], { unique_2: "z" }, 5);
  assert.deepEqual(
    hits?.map((h) => h.documentId),
    ["c"],
    "a filter on a key without an index still matches",
  );
});

test("the Ollama transport answers as fetch would: status, headers, JSON or text read whole, ndjson streamed, 204 bodiless, the caller's abort", {
  timeout: 10_000,
}, async () => {
  let secondLine = gate();
  const held = gate();
  const app = new Hono()
    .post("/json", async (c) => {
      c.header("X-Echo", await c.req.text());
      c.header("Set-Cookie", "a=1");
      c.header("Set-Cookie", "b=2", { append: true });
      return c.json({ error: "model not found" }, 404);
    })
    .get("/text", (c) => c.text("model runner crashed", 500))
    .get("/ndjson-error", (c) => c.body('{"error":"model runner crashed"}\n', 500, { "Content-Type": "application/x-ndjson" }))
    .get("/empty", (c) => c.body(null, 204))
    .post("/ndjson", (c) => {
      c.header("Content-Type", c.req.query("type") ?? "application/x-ndjson");
      return stream(c, async (s) => {
        await s.write('{"n":1}\n');
        await secondLine.passed;
        await s.write('{"n":2}\n');
      });
    })
    .post("/held", (c) => {
      c.header("Content-Type", "application/x-ndjson");
      return stream(c, async (s) => {
        await s.write('{"n":1}\n');
        await held.passed;
      });
    });
  const server = await listen(app);
  try {
    const fetch = fetchOverRequest(2_000);
    const json = await fetch(`${server.url}/json`, { method: "POST", body: "sent", headers: { "content-type": "text/plain" } });
    assert.deepEqual([json.status, json.statusText, json.ok], [404, "Not Found", false]);
    assert.equal(json.headers.get("x-echo"), "sent");
    assert.deepEqual(json.headers.getSetCookie(), ["a=1", "b=2"]);
    assert.deepEqual(await json.json(), { error: "model not found" });

    const text = await fetch(`${server.url}/text`);
    assert.deepEqual(
      [text.status, text.statusText, text.headers.get("content-type")],
      [500, "Internal Server Error", "text/plain; charset=UTF-8"],
    );
    assert.equal(await text.text(), "model runner crashed");
    // A streamed answer refused with an error status: ollama-js reads its text for the message.
    const refused = await fetch(`${server.url}/ndjson-error`);
    assert.deepEqual([refused.status, refused.ok, await refused.text()], [500, false, '{"error":"model runner crashed"}\n']);

    const empty = await fetch(`${server.url}/empty`);
    assert.deepEqual([empty.status, empty.body], [204, null]);

    // The first line arrives while the server still holds the second: the body is streamed, not read whole (to a
    // request that asked for a stream, as ollama-js says in its body and with its signal), whatever its label: a
    // proxy in front of Ollama may call it text/plain.
    const asStream = { method: "POST", body: '{"model":"m","stream":true}', signal: new AbortController().signal };
    for (const type of ["application/x-ndjson", "text/plain; charset=utf-8"]) {
      secondLine = gate();
      const reader = (await fetch(`${server.url}/ndjson?type=${encodeURIComponent(type)}`, asStream)).body!.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), '{"n":1}\n', type);
      secondLine.open();
      assert.equal(new TextDecoder().decode((await reader.read()).value), '{"n":2}\n', type);
      assert.equal((await reader.read()).done, true, type);
    }

    // The caller's signal (ollama-js aborts a stream through it) ends a stream mid-body, with the caller's reason.
    const caller = new AbortController();
    const abandoned = (await fetch(`${server.url}/held`, { ...asStream, signal: caller.signal })).body!.getReader();
    await abandoned.read();
    caller.abort(new Error("caller left"));
    await assert.rejects(abandoned.read(), /caller left/);
  } finally {
    secondLine.open();
    held.open();
    await server.close();
  }
});

const atLeast7291 = (version: string) => {
  const [major, minor, patch] = version.split(".").map(Number) as [number, number, number];
  return major > 7 || (major === 7 && (minor > 29 || (minor === 29 && patch >= 1)));
};

test("the Qdrant client runs on the app's undici, the release without a timer tick per reused connection", () => {
  // @qdrant/js-client-rest 1.19.0 pins undici 7.29.0, whose idle-socket check delays every request on a reused
  // keep-alive connection by a setTimeout(0) (nodejs/undici#5493; fixed in 7.29.1 by #5769). The `overrides` in
  // package.json and app/package.json give it the app's undici instead; this fails if one is dropped.
  const fromQdrant = createRequire(require.resolve("@qdrant/js-client-rest")).resolve("undici/package.json");
  const fromApp = require.resolve("undici/package.json");
  assert.equal(fromQdrant, fromApp);
  const installed = (JSON.parse(readFileSync(fromApp, "utf8")) as { version: string }).version;
  assert.ok(atLeast7291(installed), `undici ${installed}`);

  // The image installs from app/package-lock.json: one undici there too, the same release line.
  const imageLock = JSON.parse(readFileSync(new URL("../../app/package-lock.json", import.meta.url), "utf8")) as {
    packages: Record<string, { version?: string }>;
  };
  const nested = Object.keys(imageLock.packages).filter((p) => p.endsWith("/node_modules/undici"));
  assert.deepEqual(nested, [], "no second undici under a dependency in the image");
  const imageUndici = imageLock.packages["node_modules/undici"]?.version ?? "missing";
  assert.ok(atLeast7291(imageUndici), `image undici ${imageUndici}`);
});

test("a points write checks its gate before each of its calls (collection, indexes, points), so none starts past it", async () => {
  const qdrant = qdrantAt(fakes.qdrant.url, "gated");
  const points = [
    { documentId: "gated", chunkIndex: 0, title: null, text: "Gated.", metadata: { a: 1, b: "x", c: true }, vector: [0.1, 0.2] },
  ];
  const callsSoFar = () => Object.values(fakes.qdrant.calls).reduce((sum, n) => sum + n, 0);
  const before = callsSoFar();
  let checks = 0;
  const stopAfter = (allowed: number) => () => {
    if (++checks > allowed) throw new AppError("document_write_timeout", "document write stopped");
  };
  // One upsert into a new collection is nine calls: one that starts after the lease's half has passed may land after
  // the lease ends, when a delete can run; the documents service checked the time only before each upsert.
  await assert.rejects(qdrant.upsert(points, 1, stopAfter(3)), /document write stopped/);
  assert.equal(callsSoFar() - before, 3, "each call was checked, and none made after the check refused");
  assert.equal(fakes.qdrant.collections.get("gated")?.points.size ?? 0, 0);
  checks = 0;
  await qdrant.upsert(points, 1, stopAfter(Number.POSITIVE_INFINITY));
  assert.equal(fakes.qdrant.collections.get("gated")!.points.size, 1);
  assert.ok(checks >= 5, `${checks} checks`);
});

/** 1,200 chunks of 1,200 characters, 1,024-dimension vectors and 8 kB of metadata: about 36 MB of points. */
function bigDocumentPoints() {
  const metadata = Object.fromEntries(Array.from({ length: 8 }, (_, k) => [`key${k}`, "m".repeat(1_000)]));
  const vector = Array.from({ length: 1_024 }, (_, i) => -0.012345678901234 * ((i % 7) + 1));
  return Array.from({ length: 1_200 }, (_, chunkIndex) => ({
    documentId: "big",
    chunkIndex,
    title: "Big",
    text: `${chunkIndex} ${"t".repeat(1_195)}`,
    metadata,
    vector,
  }));
}

test("a document's points go to Qdrant in calls under its 32 MiB request limit, each checked against the gate", async () => {
  const qdrant = qdrantAt(fakes.qdrant.url, "big-document");
  // In one call (as before) Qdrant answered 400 (body over its limit), and the ingest was a 502.
  const points = bigDocumentPoints();
  const upserts = () => fakes.qdrant.calls["/collections/:name/points"] ?? 0;
  const before = upserts();
  let checks = 0;
  await qdrant.upsert(points, 1, () => void checks++);
  assert.equal(fakes.qdrant.collections.get("big-document")!.points.size, 1_200);
  const calls = upserts() - before;
  // The batches are sized from above (24 bytes a float): fewer calls than the JSON's size allows is not possible.
  const fewest = Math.ceil(Buffer.byteLength(JSON.stringify(points)) / UPSERT_MAX_BYTES);
  assert.ok(calls >= fewest && calls <= 2 * fewest, `${calls} upsert calls of at most ${UPSERT_MAX_BYTES} bytes`);
  assert.ok(checks >= calls, "the gate is checked before each");
  // Each batch is whole points in order, under the budget by the JSON it is sent as.
  for (const batch of upsertBatches(points)) assert.ok(Buffer.byteLength(JSON.stringify(batch)) < UPSERT_MAX_BYTES);
});

test("a Qdrant API key is sent on every call, and over http the warning is a JSON log line, not the client's stderr text", async () => {
  const secured = await startFakeQdrant({ apiKey: "qdrant-secret" });
  const { log, lines } = capturedLog("warn");
  const warned: unknown[] = [];
  const consoleWarn = console.warn;
  console.warn = (...args: unknown[]) => void warned.push(args);
  try {
    const qdrant = qdrantAt(secured.url, "secured", { apiKey: "qdrant-secret", log });
    const point = { documentId: "d", chunkIndex: 0, title: null, text: "Secured.", metadata: {}, vector: [0.1, 0.2] };
    await putChunks(qdrant, [point]);
    assert.equal((await qdrant.search([0.1, 0.2], undefined, 1))?.length, 1, "the query path sends it too");
    // js-client-rest writes "Api key is used with unsecure connection." to stderr: the one non-JSON log line.
    assert.deepEqual(warned, []);
    assert.match(lines.join(""), /QDRANT_API_KEY goes over plain HTTP/);
    assert.doesNotMatch(lines.join(""), /qdrant-secret/);
  } finally {
    console.warn = consoleWarn;
    await secured.close();
  }
});
