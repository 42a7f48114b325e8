import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { QdrantClient } from "@qdrant/js-client-rest";
import { Ollama } from "ollama";
import { waitFor } from "../support/process.ts";
import { embedText } from "./embedding.ts";
import { MODEL_FAILED_MID_ANSWER, startFakeOllama, type FakeOllama } from "./ollama.ts";
import { startFakeQdrant, type FakeQdrant } from "./qdrant.ts";

// The fakes are exercised through the official clients, as the app uses them.
let ollama: FakeOllama;
let qdrant: FakeQdrant;
let securedQdrant: FakeQdrant;

before(async () => {
  [ollama, qdrant, securedQdrant] = await Promise.all([
    startFakeOllama({ models: ["tiny", "embedder"] }),
    startFakeQdrant(),
    startFakeQdrant({ apiKey: "qdrant-secret" }),
  ]);
});
after(async () => {
  await Promise.all([ollama.close(), qdrant.close(), securedQdrant.close()]);
});

const cosine = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

test("fake embeddings: deterministic, unit length, similar texts closer than unrelated ones", () => {
  const a = embedText("The cat sat on the warm mat", 256);
  assert.deepEqual(embedText("The cat sat on the warm mat", 256), a);
  assert.ok(Math.abs(cosine(a, a) - 1) < 1e-9);
  const near = cosine(a, embedText("A cat sat on a mat", 256));
  const far = cosine(a, embedText("Quarterly revenue grew in Europe", 256));
  assert.ok(near > 0.6 && far < 0.3, `near=${near} far=${far}`);
});

test("fake Ollama: /api/embed (batched), /api/chat (plain and NDJSON stream), /api/tags, /api/version", async () => {
  const client = new Ollama({ host: ollama.url });
  const embedded = await client.embed({ model: "embedder", input: ["one text", "another text"] });
  assert.equal(embedded.embeddings.length, 2);
  assert.equal(embedded.embeddings[0]!.length, 256);

  const messages = [
    { role: "system", content: "Context:\n[1] Qdrant stores vectors.\n\n[2] Other." },
    { role: "user", content: "What stores vectors?" },
  ];
  const plain = await client.chat({ model: "tiny", messages, stream: false });
  assert.equal(plain.message.content, "Based on [1]: Qdrant stores vectors.");
  assert.ok(plain.prompt_eval_count > 0 && plain.eval_count > 0);

  const parts: string[] = [];
  let last: { done: boolean; eval_count?: number } | undefined;
  for await (const part of await client.chat({ model: "tiny", messages, stream: true })) {
    parts.push(part.message.content);
    last = part;
  }
  assert.ok(parts.length > 3, "streamed in several chunks");
  assert.equal(parts.join(""), plain.message.content);
  assert.equal(last?.done, true);
  assert.equal(last?.eval_count, plain.eval_count);

  assert.deepEqual(
    (await client.list()).models.map((m) => m.name),
    ["tiny", "embedder"],
  );
  assert.match((await client.version()).version, /^\d+\.\d+\.\d+$/);
});

test("fake Ollama: errors use Ollama's {error} body and status; knobs add latency and failures", async () => {
  const client = new Ollama({ host: ollama.url });
  await assert.rejects(client.chat({ model: "missing", messages: [] }), (err: { status_code: number; error: string }) => {
    assert.equal(err.status_code, 404);
    assert.match(err.error, /model "missing" not found/);
    return true;
  });
  const raw = await fetch(`${ollama.url}/api/chat`, { method: "POST", body: "{not json" });
  assert.equal(raw.status, 400);
  assert.ok(typeof ((await raw.json()) as { error: string }).error === "string");

  ollama.knobs.failStatus = 500;
  await assert.rejects(
    client.embed({ model: "embedder", input: "x" }),
    (err: { status_code: number }) => err.status_code === 500,
  );
  ollama.knobs.failStatus = null;
  ollama.knobs.latencyMs = 200;
  const started = Date.now();
  await client.version();
  assert.ok(Date.now() - started >= 190);
  ollama.knobs.latencyMs = 0;

  // A failure after the answer began: chunks, then Ollama's {"error"} line, which ollama-js throws as an Error.
  ollama.knobs.failAfterChunks = 2;
  const received: string[] = [];
  try {
    await assert.rejects(async () => {
      for await (const part of await client.chat({
        model: "tiny",
        messages: [{ role: "user", content: "a b c d" }],
        stream: true,
      }))
        received.push(part.message.content);
    }, new Error(MODEL_FAILED_MID_ANSWER));
  } finally {
    ollama.knobs.failAfterChunks = null;
  }
  assert.equal(received.length, 2);
});

test("fake Ollama: num_predict ends an answer with done_reason length; a prompt past the window loses its system message", async () => {
  const client = new Ollama({ host: ollama.url });
  ollama.knobs.runawayWords = 500;
  try {
    const capped = await client.chat({
      model: "tiny",
      messages: [{ role: "user", content: "go" }],
      options: { num_predict: 20 },
    });
    assert.equal(capped.message.content.trim().split(" ").length, 20);
    assert.deepEqual([capped.eval_count, capped.done_reason], [20, "length"]);
    let streamed = 0;
    for await (const part of await client.chat({
      model: "tiny",
      messages: [{ role: "user", content: "go" }],
      options: { num_predict: 7 },
      stream: true,
    }))
      if (part.message.content) streamed++;
    assert.equal(streamed, 7);
    const unbounded = await client.chat({ model: "tiny", messages: [{ role: "user", content: "go" }] });
    assert.deepEqual([unbounded.eval_count, unbounded.done_reason], [500, "stop"]);
  } finally {
    ollama.knobs.runawayWords = null;
  }

  const system = { role: "system", content: `Context:\n[1] ${"tides ".repeat(300)}` };
  const question = { role: "user", content: "What moves the tides?" };
  const fits = await client.chat({ model: "tiny", messages: [system, question] });
  assert.match(fits.message.content, /^Based on \[1\]/);
  ollama.knobs.contextLength = 400;
  try {
    const tooLong = await client.chat({ model: "tiny", messages: [system, question] });
    assert.equal(tooLong.message.content, "I do not know the answer to: What moves the tides?");
    assert.ok(tooLong.prompt_eval_count < 20, `the question alone, got ${tooLong.prompt_eval_count} tokens`);
  } finally {
    ollama.knobs.contextLength = 4096;
  }
});

test("fake Ollama: past OLLAMA_NUM_PARALLEL answers wait in order without limit; one whose client left stops waiting", async () => {
  Object.assign(ollama.knobs, { parallel: 2, generationMs: 300 });
  Object.assign(ollama.load, { generated: 0, peak: 0 });
  try {
    const chat = (signal?: AbortSignal) =>
      fetch(`${ollama.url}/api/chat`, {
        method: "POST",
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: false }),
        signal,
      });
    const arrived = (n: number) => waitFor(`${n} chats arrived`, async () => (ollama.calls["/api/chat"] ?? 0) >= n);
    const before = ollama.calls["/api/chat"] ?? 0;
    const answers = [chat(), chat(), chat(), chat()];
    await arrived(before + 4);
    const left = new AbortController();
    const leaving = chat(left.signal);
    await arrived(before + 5); // waiting behind two answers and two others
    left.abort();
    const results = await Promise.allSettled([...answers, leaving]);
    assert.deepEqual(
      results.map((r) => (r.status === "fulfilled" ? r.value.status : "aborted")),
      [200, 200, 200, 200, "aborted"],
    );
    // The request that left gave up its place: four answers generated, never more than two at once.
    assert.deepEqual([ollama.load.generated, ollama.load.peak], [4, 2]);
  } finally {
    Object.assign(ollama.knobs, { parallel: null, generationMs: 0 });
  }
});

test("fake Qdrant: collections, payload index, upsert, filtered cosine query, delete by filter, snapshots", async () => {
  const client = new QdrantClient({ url: qdrant.url, checkCompatibility: false });
  assert.equal((await client.collectionExists("docs")).exists, false);
  await client.createCollection("docs", { vectors: { size: 3, distance: "Cosine" } });
  assert.equal((await client.collectionExists("docs")).exists, true);
  await assert.rejects(client.createCollection("docs", { vectors: { size: 3, distance: "Cosine" } }));
  await client.createPayloadIndex("docs", { field_name: "meta.lang", field_schema: "keyword", wait: true });
  assert.equal(
    (await client.getCollection("docs")).config.params.vectors && qdrant.collections.get("docs")!.payloadSchema.get("meta.lang"),
    "keyword",
  );

  await client.upsert("docs", {
    wait: true,
    points: [
      { id: 1, vector: [1, 0, 0], payload: { meta: { lang: "en", tags: ["a", "b"], n: 1 } } },
      { id: 2, vector: [0.9, 0.1, 0], payload: { meta: { lang: "de", tags: ["b"], n: 2 } } },
      { id: "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", vector: [0, 1, 0], payload: { meta: { lang: "en", tags: ["c"], n: 3 } } },
    ],
  });

  const ids = async (filter?: Record<string, unknown>) =>
    (await client.query("docs", { query: [1, 0, 0], filter, limit: 10, with_payload: true })).points.map((p) => p.id);
  assert.deepEqual(await ids(), [1, 2, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"], "ranked by cosine");
  assert.deepEqual(await ids({ must: [{ key: "meta.lang", match: { value: "en" } }] }), [
    1,
    "5c56c793-69f3-4fbf-87e6-c4bf54c28c26",
  ]);
  assert.deepEqual(await ids({ must: [{ key: "meta.tags", match: { any: ["b"] } }] }), [1, 2]);
  assert.deepEqual(
    await ids({
      should: [
        { key: "meta.n", match: { value: 2 } },
        { key: "meta.n", match: { value: 3 } },
      ],
    }),
    [2, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"],
  );
  assert.deepEqual(await ids({ must_not: [{ key: "meta.lang", match: { value: "en" } }] }), [2]);
  assert.deepEqual(await ids({ must: [{ key: "meta.lang", match: { except: ["en"] } }] }), [2]);
  assert.deepEqual(await ids({ must: [{ key: "meta.n", range: { gte: 2 } }] }), [2, "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]);
  assert.deepEqual(await ids({ must: [{ must: [{ has_id: [1, 2] }] }, { key: "meta.lang", match: { value: "de" } }] }), [2]);
  const top = await client.query("docs", { query: [1, 0, 0], limit: 1, with_payload: true });
  assert.equal(top.points[0]!.score, 1);
  assert.deepEqual(top.points[0]!.payload, { meta: { lang: "en", tags: ["a", "b"], n: 1 } });

  await client.delete("docs", { wait: true, filter: { must: [{ key: "meta.tags", match: { any: ["b"] } }] } });
  assert.deepEqual(await ids(), ["5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]);

  const snapshot = await client.createSnapshot("docs");
  assert.match(snapshot!.name, /^docs-\d+\.snapshot$/);
  assert.equal((await client.listSnapshots("docs")).length, 1);
  assert.equal((await fetch(`${qdrant.url}/readyz`)).status, 200);
});

test("fake Qdrant: errors use Qdrant's {status: {error}} body; bad ids and dimensions are refused; api-key enforced", async () => {
  const client = new QdrantClient({ url: qdrant.url, checkCompatibility: false });
  const missing = await fetch(`${qdrant.url}/collections/nope`);
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as { status: { error: string } }).status.error, /Collection `nope` doesn't exist/);

  await client.createCollection("dims", { vectors: { size: 2, distance: "Dot" } });
  assert.equal(qdrant.collections.get("dims")!.replicationFactor, 1, "Qdrant's default");
  await assert.rejects(
    client.createCollection("bad-rf", { vectors: { size: 2, distance: "Dot" }, replication_factor: 0 }),
    /400|Bad Request/,
  );
  await client.createCollection("replicated", {
    vectors: { size: 2, distance: "Dot" },
    replication_factor: 3,
    write_consistency_factor: 2,
  });
  const params = (await client.getCollection("replicated")).config.params;
  assert.deepEqual([params.replication_factor, params.write_consistency_factor], [3, 2]);
  await assert.rejects(client.upsert("dims", { wait: true, points: [{ id: 1, vector: [1, 2, 3] }] }), /400|Bad Request/);
  await assert.rejects(client.upsert("dims", { wait: true, points: [{ id: "not-a-uuid", vector: [1, 2] }] }), /400|Bad Request/);

  await assert.rejects(new QdrantClient({ url: securedQdrant.url, checkCompatibility: false }).collectionExists("x"));
  const secured = new QdrantClient({ url: securedQdrant.url, apiKey: "qdrant-secret", checkCompatibility: false });
  assert.equal((await secured.collectionExists("x")).exists, false);
});
