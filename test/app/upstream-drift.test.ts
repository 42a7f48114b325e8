// Ollama and Qdrant answering valid-looking but odd or malformed bodies (probe BP): each call ends in a clean 502,
// 503 or 504 within its deadline, and nothing odd is taken as a good answer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { AppError } from "../../app/src/errors.ts";
import { listen } from "../fakes/http.ts";
import { chatLine, ollamaAt } from "../support/ollama.ts";
import { qdrantAt } from "../support/qdrant.ts";

const word = (content: unknown, done = false) => chatLine({ message: { role: "assistant", content }, done });

/** Reads a chat stream to its end: its pieces and the result. */
async function readAll(answer: AsyncGenerator<string, unknown>) {
  const pieces: string[] = [];
  let next = await answer.next();
  for (; !next.done; next = await answer.next()) pieces.push(next.value);
  return { pieces, result: next.value };
}

const failsWith = (type: string, status: number) => (err: unknown) => {
  assert.ok(err instanceof AppError, String(err));
  assert.deepEqual([err.type, err.status], [type, status], err.message);
  return true;
};

test("an Ollama answer dripping bytes without ending a line is cut at the deadline, asked as a stream or not", async () => {
  let dripping = 0;
  // Typed ndjson, a byte every 50 ms for 3 s: to the embed (which asked for no stream) spaces; to the chat's stream one
  // line, then blank lines (review N18: each started the deadline over).
  const drip = (first: string, byte: string) => (c: { header: (k: string, v: string) => void }) => {
    c.header("Content-Type", "application/x-ndjson");
    return stream(c as never, async (s) => {
      dripping++;
      await s.write(first);
      for (let i = 0; i < 60 && !s.aborted; i++) {
        await s.write(byte);
        await sleep(50);
      }
    });
  };
  const upstream = new Hono().post("/api/embed", drip("", " ")).post("/api/chat", drip(word("the "), "\n"));
  const server = await listen(upstream);
  try {
    const ollama = ollamaAt(server.url, 400);
    let started = performance.now();
    // Before: each byte started the deadline over, and the call lasted as long as the drip.
    await assert.rejects(ollama.embed(["hello"]), failsWith("ollama_timeout", 504));
    assert.ok(performance.now() - started < 1_500, `embed cut after ${Math.round(performance.now() - started)} ms`);
    started = performance.now();
    await assert.rejects(readAll(ollama.chatStream("m", [{ role: "user", content: "hi" }])), failsWith("ollama_timeout", 504));
    assert.ok(performance.now() - started < 1_500, `stream cut after ${Math.round(performance.now() - started)} ms`);
    assert.equal(dripping, 2);
  } finally {
    await server.close();
  }
});

test("a streamed line that is not JSON, or content that is not text, fails the answer instead of leaving a piece out", async () => {
  const answers: Record<string, string[]> = {
    "not json": [word("before "), "not json at all\n", word("after", true)],
    object: [word({ x: 1 }), word(7, true)],
    // The last line, with no newline after it: ollama-js skipped it, and "before " was the whole answer.
    "not json, last": [word("before "), "not json at all"],
    // A line just past the 1 MiB a line may take, sent at once: its last read (up to 64 KiB) went unchecked.
    "too long": [word("x".repeat(2 ** 20), true)],
  };
  const upstream = new Hono().post("/api/chat", async (c) => {
    const body = await c.req.json<{ messages: Array<{ content: string }> }>();
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, async (s) => {
      // In one write: a bad line read in the same chunk as the done line reached ollama-js, which skipped it (review N18).
      await s.write(answers[body.messages[0]!.content]!.join(""));
    });
  });
  const server = await listen(upstream);
  try {
    const ollama = ollamaAt(server.url);
    // Before: "before " alone as the whole answer (ollama-js skips the line), and "[object Object]7".
    for (const content of Object.keys(answers)) {
      await assert.rejects(readAll(ollama.chatStream("m", [{ role: "user", content }])), failsWith("ollama_error", 502), content);
    }
  } finally {
    await server.close();
  }
});

test("an answer typed ndjson to an embed, which asked for no stream, is read whole: its lines do not restart the deadline", async () => {
  let lines = 0;
  const upstream = new Hono().post("/api/embed", (c) => {
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, async (s) => {
      for (let i = 0; i < 60 && !s.aborted; i++) {
        lines++;
        await s.write('{"embeddings":[[0.5]]}\n');
        await sleep(50);
      }
    });
  });
  const server = await listen(upstream);
  try {
    const started = performance.now();
    await assert.rejects(ollamaAt(server.url, 400).embed(["hello"]), failsWith("ollama_timeout", 504));
    assert.ok(performance.now() - started < 1_500, `embed cut after ${Math.round(performance.now() - started)} ms`);
    assert.ok(lines < 30, `${lines} lines read`);
  } finally {
    await server.close();
  }
});

test("chunks without content count toward MAX_ANSWER_TOKENS: an upstream sending only those is cut there too", {
  timeout: 10_000,
}, async () => {
  let aborted = false;
  const upstream = new Hono().post("/api/chat", (c) => {
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, async (s) => {
      s.onAbort(() => {
        aborted = true;
      });
      await s.write(word("Hmm. "));
      while (!s.aborted) {
        await s.write(chatLine({ message: { role: "assistant", content: "", thinking: "t" }, done: false }));
        await sleep(1);
      }
    });
  });
  const server = await listen(upstream);
  try {
    const { pieces, result } = await readAll(ollamaAt(server.url, 5_000, 16).chatStream("m", [{ role: "user", content: "q" }]));
    assert.deepEqual(pieces, ["Hmm. "]);
    assert.equal((result as { truncated: boolean }).truncated, true);
    for (let i = 0; i < 100 && !aborted; i++) await sleep(20);
    assert.ok(aborted, "the upstream call was left running");
  } finally {
    await server.close();
  }
});

test("an Ollama or Qdrant answer past the size the app reads is a 502, not read whole into memory", async () => {
  // Answers of 256 MiB, made as they are read: past the 16 MiB an embed batch of 32 may take, and a Qdrant query's
  // 16 MiB. What each client read before it gave up is counted.
  const TOTAL = 256 * 2 ** 20;
  const served: Record<string, number> = {};
  const endless = (name: string, head: string, filler: string) => {
    served[name] = 0;
    const chunk = new TextEncoder().encode(filler.repeat(Math.floor(2 ** 20 / filler.length)));
    const body = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(new TextEncoder().encode(head)),
      pull(c) {
        if (served[name]! >= TOTAL) return c.close();
        served[name]! += chunk.length;
        c.enqueue(chunk);
      },
    });
    return new Response(body, { headers: { "Content-Type": "application/json" } });
  };
  const upstream = new Hono()
    .post("/api/embed", () => endless("ollama", '{"embeddings":[[', "0.5,"))
    .get("/collections/:name/exists", (c) => c.json({ result: { exists: true }, status: "ok", time: 0 }))
    .post("/collections/:name/points/query", () => endless("qdrant", '{"result":{"points":[]},"pad":"', "x"));
  const server = await listen(upstream);
  try {
    await assert.rejects(ollamaAt(server.url).embed(["hello"]), failsWith("ollama_error", 502));
    await assert.rejects(qdrantAt(server.url, "docs").search([1, 0, 0], undefined, 3), failsWith("qdrant_error", 502));
    // The limit and what the sockets held on the way: far from the whole answer.
    for (const [name, bytes] of Object.entries(served)) assert.ok(bytes < 48 * 2 ** 20, `${name}: ${bytes} bytes read`);
  } finally {
    await server.close();
  }
});

test("Qdrant: odd points are left out of a search, a status other than ok is a 502, its 429 a 503, an unapplied write a 502", async () => {
  const ok = (result: unknown) => ({ result, status: "ok", time: 0 });
  const good = { id: 1, score: 0.9, payload: { document_id: "doc", title: "T", text: "tides" } };
  const upstream = new Hono()
    .get("/collections/:name/exists", (c) => c.json(ok({ exists: true })))
    .post("/collections/odd/points/query", (c) => {
      const odd = [
        { id: 2, score: 0.8, payload: { document_id: "doc", text: { x: 1 } } },
        { id: 3, score: 0.7, payload: { text: "no document" } },
      ].map((p) => JSON.stringify(p));
      // 1e400 is valid JSON, and parses as Infinity.
      const points = [JSON.stringify(good), ...odd, '{"id":4,"score":1e400,"payload":{"document_id":"doc","text":"huge"}}'];
      return c.body(`{"result":{"points":[${points.join(",")}]},"status":"ok","time":0}`, 200, {
        "Content-Type": "application/json",
      });
    })
    .post("/collections/failed/points/query", (c) => c.json({ result: { points: [] }, status: { error: "broken" }, time: 0 }))
    .post("/collections/limited/points/query", (c) =>
      c.json({ status: { error: "Rate limiting exceeded" }, time: 0 }, 429, { "Retry-After": "7" }),
    )
    .post("/collections/queued/points/delete", (c) => c.json(ok({ operation_id: 1, status: "acknowledged" })));
  const server = await listen(upstream);
  try {
    // Before: "[object Object]" and "undefined" as sources, and a score of Infinity.
    const hits = await qdrantAt(server.url, "odd").search([1, 0, 0], undefined, 5);
    assert.deepEqual(hits, [{ documentId: "doc", score: 0.9, title: "T", text: "tides" }]);
    // Before: cached as "I do not know" for every later ask of the question.
    await assert.rejects(qdrantAt(server.url, "failed").search([1, 0, 0], undefined, 5), failsWith("qdrant_error", 502));
    await assert.rejects(qdrantAt(server.url, "limited").search([1, 0, 0], undefined, 5), (err) => {
      assert.ok(err instanceof AppError && err.status === 503, String(err));
      assert.equal(err.headers?.["Retry-After"], "1");
      return true;
    });
    // Before: deleted, while Qdrant had only queued it.
    await assert.rejects(qdrantAt(server.url, "queued").deleteChunks("doc", 1), failsWith("qdrant_error", 502));
  } finally {
    await server.close();
  }
});
