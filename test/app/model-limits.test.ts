/**
 * What the model's window and Ollama's own stops do to an answer, against Ollama 0.13.5's behaviour as the fake
 * follows it: a prompt longer than the window, an answer that fills it, one that does not end, one that loops.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";
import { startApp, startStack, USER_KEY, type Stack } from "../support/app.ts";
import { type ApiResponse, api, parseSse } from "../support/http.ts";

let stack: Stack;
let user: ReturnType<typeof api>;

before(async () => {
  // Not under test here: the file sends more than the default 60 requests a minute with one key.
  stack = await startStack({ RATE_LIMIT_PER_MINUTE: "10000" });
  user = api(stack.url, USER_KEY);
  const documents = [{ id: "redis-intro", title: "Redis", text: "Redis is an in-memory key value store used for caching." }];
  assert.equal((await user.post("/api/v1/documents", { documents })).status, 201);
});
after(() => stack.stop());

test("a model that does not stop by itself is cut at MAX_ANSWER_TOKENS, answered whole or streamed", async () => {
  const limit = 64;
  const replica = await startApp({ ...stack.env, MAX_ANSWER_TOKENS: String(limit) });
  const { ollama } = stack.fakes;
  ollama.knobs.runawayWords = 3 * limit;
  try {
    const other = api(replica.url, USER_KEY);
    const words = (text: string) => text.trim().split(/\s+/).length;
    const question = { query: "Describe Redis at length, please", session_id: "long-answers" };
    const whole = await other.post("/api/v1/query", question);
    assert.equal(whole.status, 200, whole.text);
    assert.equal(words(whole.body.answer), limit);
    assert.deepEqual([whole.body.usage.completion_tokens, whole.body.truncated], [limit, true]);
    const again = await other.post("/api/v1/query", question);
    assert.deepEqual([again.body.cached, again.body.answer, again.body.truncated], [true, whole.body.answer, true]);
    const session = await other.get("/api/v1/sessions/long-answers");
    assert.deepEqual(
      session.body.turns.map((t: { truncated: boolean }) => t.truncated),
      [true, true],
    );

    const streamed = await other.post("/api/v1/query", { query: "Describe Ollama at length, please", stream: true });
    const events = parseSse(streamed.text);
    assert.equal(
      words(
        events
          .filter((e) => e.event === "token")
          .map((e) => e.data.content as string)
          .join(""),
      ),
      limit,
    );
    const done = events.at(-1)!;
    assert.deepEqual([done.event, done.data.usage.completion_tokens, done.data.truncated], ["done", limit, true]);
  } finally {
    ollama.knobs.runawayWords = null;
    await replica.stop();
  }
});

test("an answer Ollama stops for looping comes back cut, streamed to its end and stored, but not cached", async () => {
  const { ollama } = stack.fakes;
  ollama.knobs.repeatToken = "|";
  try {
    const bars = (text: string) => text.match(/\|/g)?.length ?? 0;
    const question = { query: "Describe Qdrant in a line", session_id: "looping" };
    const chats = ollama.calls["/api/chat"] ?? 0;
    const whole = await user.post("/api/v1/query", question);
    assert.equal(whole.status, 200, whole.text);
    assert.deepEqual([bars(whole.body.answer), whole.body.truncated], [31, true], "the token and its 30 repeats");
    const again = await user.post("/api/v1/query", question);
    assert.deepEqual([again.body.cached, ollama.calls["/api/chat"]], [false, chats + 2], "asked again, asked anew");
    const turns = (await user.get("/api/v1/sessions/looping")).body.turns;
    assert.deepEqual(
      turns.map((t: { truncated: boolean }) => t.truncated),
      [true, true],
    );

    const streamed = await user.post("/api/v1/query", { query: "Describe Redis in a line", stream: true });
    const events = parseSse(streamed.text);
    const done = events.at(-1)!;
    assert.equal(done.event, "done", streamed.text.slice(-300));
    const tokens = events.filter((e) => e.event === "token").map((e) => e.data.content as string);
    assert.deepEqual([bars(tokens.join("")), done.data.truncated], [31, true]);
    const chatsBefore = ollama.calls["/api/chat"] ?? 0;
    const streamedAgain = parseSse((await user.post("/api/v1/query", { query: "Describe Redis in a line", stream: true })).text);
    assert.deepEqual(
      [streamedAgain.at(-1)!.data.cached, ollama.calls["/api/chat"]],
      [false, chatsBefore + 1],
      "the streamed one was not cached either: asked again, asked anew",
    );
  } finally {
    ollama.knobs.repeatToken = null;
  }
});

test("many long sources still leave the model the question's context and room for the whole answer", async () => {
  const contextTokens = 3072;
  const answerTokens = 512;
  const replica = await startApp({
    ...stack.env,
    MODEL_CONTEXT_TOKENS: String(contextTokens),
    MAX_ANSWER_TOKENS: String(answerTokens),
  });
  const { ollama } = stack.fakes;
  ollama.knobs.contextLength = contextTokens;
  const ids = Array.from({ length: 20 }, (_, i) => `window-${i}`);
  const other = api(replica.url, USER_KEY);
  try {
    const documents = ids.map((id, i) => ({
      id,
      title: `Tide table ${i}`,
      text: `Tide table ${i}: high water and low water times by port. `.repeat(20).slice(0, 1_150),
      metadata: { team: "window" },
    }));
    assert.equal((await other.post("/api/v1/documents", { documents })).status, 201);
    const res = await other.post("/api/v1/query", { query: "When is high water?", top_k: 50, filter: { team: "window" } });
    assert.equal(res.status, 200, res.text);
    // The fake drops the system message, sources and all, from a prompt longer than its window (as Ollama 0.12 does).
    assert.match(res.body.answer, /^Based on \[1\]: Tide table/);
    assert.ok(res.body.sources.length > 1 && res.body.sources.length < 20, `${res.body.sources.length} sources`);
    const prompt = res.body.usage.prompt_tokens;
    assert.ok(prompt + answerTokens <= contextTokens, `${prompt} prompt tokens + ${answerTokens} answer tokens`);
  } finally {
    ollama.knobs.contextLength = 4096;
    for (const id of ids) await other.del(`/api/v1/documents/${id}`);
    await replica.stop();
  }
});

/** A query on the team's documents, and the sources (`[n]`) in each model call it made, refused ones included. */
type Ask = (body: Record<string, unknown>) => Promise<{ res: ApiResponse; asked: number[] }>;

/**
 * Runs `check` against a replica whose model window is 3,072 tokens (`MAX_ANSWER_TOKENS` 512) unless `env` says
 * otherwise, with the fake Ollama counting the prompt with a real tokenizer (cl100k_base) and refusing or truncating
 * as 0.13.5 does, after ingesting `texts` as documents of team `team`.
 */
async function withTokenizedWindow(
  team: string,
  texts: string[],
  check: (ask: Ask, client: ReturnType<typeof api>) => Promise<void>,
  env: Record<string, string> = {},
) {
  const contextTokens = Number(env.MODEL_CONTEXT_TOKENS ?? 3072);
  const replica = await startApp({ ...stack.env, MODEL_CONTEXT_TOKENS: "3072", MAX_ANSWER_TOKENS: "512", ...env });
  const { ollama } = stack.fakes;
  Object.assign(ollama.knobs, { contextLength: contextTokens, tokenizer: "cl100k" });
  const client = api(replica.url, USER_KEY);
  const documents = texts.map((text, i) => ({ id: `${team}-${i}`, text, metadata: { team } }));
  try {
    assert.equal((await client.post("/api/v1/documents", { documents })).status, 201);
    await check(async (body) => {
      const before = ollama.chatSources.length;
      const res = await client.post("/api/v1/query", { filter: { team }, ...body });
      return { res, asked: ollama.chatSources.slice(before) };
    }, client);
  } finally {
    Object.assign(ollama.knobs, { contextLength: 4096, tokenizer: "chars" });
    for (const { id } of documents) await client.del(`/api/v1/documents/${id}`);
    await replica.stop();
  }
}

const HAN_SENTENCES = [
  "潮汐是由月球和太阳对地球海洋的引力引起的。",
  "高潮大约每天出现两次，潮差随月相的变化而变化。",
  "大潮发生在新月和满月前后，小潮发生在上弦月和下弦月前后。",
  "港口的潮汐表列出了每天高潮和低潮的时间与高度。",
  "船只进出港口时必须考虑水深和潮流的方向。",
];

/** `chars` characters of hex, a sha256 chain from `seed`. */
function hexOf(seed: string, chars: number): string {
  let hex = "";
  while (hex.length < chars) hex += createHash("sha256").update(`${seed}:${hex.length}`).digest("hex");
  return hex.slice(0, chars);
}

/** About `chars` characters of Chinese prose after an English label (the fake's embedding reads only ASCII words). */
function hanText(label: string, i: number, chars: number): string {
  let text = `${label}: `;
  for (let k = i; text.length < chars; k++) text += HAN_SENTENCES[k % HAN_SENTENCES.length];
  return text;
}

test("sources in Chinese fit the window: each character counts a token, and the model gets them", async () => {
  const texts = Array.from({ length: 20 }, (_, i) => hanText(`Tide table ${i} high water`, i, 600));
  await withTokenizedWindow("han", texts, async (ask) => {
    const { res, asked } = await ask({ query: "High water: 高潮什么时候出现？", top_k: 50 });
    assert.equal(res.status, 200, res.text);
    // Counted at 4 characters a token, 14 sources went and the model was left with the question alone.
    assert.match(res.body.answer, /^Based on \[1\]: Tide table/);
    assert.deepEqual(asked, [res.body.sources.length], "one model call, with every source");
    assert.ok(res.body.usage.prompt_tokens + 512 <= 3072, `${res.body.usage.prompt_tokens} prompt tokens`);
  });
});

test("text that takes more tokens than estimated is refused by the model, and asked again with the better half", async () => {
  // Hex: 1.8 characters a token in cl100k_base, estimated at 4.
  const texts = Array.from({ length: 20 }, (_, i) => `Checksum ${i} high water: ${hexOf(String(i), 1_100)}`.slice(0, 1_100));
  await withTokenizedWindow("hex", texts, async (ask, client) => {
    const question = { query: "Which checksum is for high water?", top_k: 50 };
    const { res, asked } = await ask({ ...question, session_id: "hex-sources" });
    assert.equal(res.status, 200, res.text);
    assert.equal(asked.length, 2, `sources per model call: ${asked}`);
    assert.deepEqual(asked[1], Math.floor(asked[0]! / 2));
    assert.match(res.body.answer, /^Based on \[1\]: Checksum/);
    assert.equal(res.body.sources.length, asked[1], "the response lists the sources the model was given");
    const turn = (await client.get("/api/v1/sessions/hex-sources")).body.turns[0];
    assert.equal(turn.sources.length, asked[1], "and so does the stored turn");
    const { res: again } = await ask(question);
    assert.deepEqual([again.body.cached, again.body.sources.length], [true, asked[1]]);
    // After an ingest elsewhere, the same retrieval reuses the answer (its question's latest), with the same sources.
    const elsewhere = { id: "hex-elsewhere", text: "Unrelated.", metadata: { team: "elsewhere" } };
    assert.equal((await client.post("/api/v1/documents", { documents: [elsewhere] })).status, 201);
    const { res: reused, asked: none } = await ask(question);
    assert.deepEqual([reused.body.cached, reused.body.sources.length, none], [true, asked[1], []]);
    await client.del("/api/v1/documents/hex-elsewhere");

    const { res: streamed, asked: tries } = await ask({ ...question, query: "Which checksum is it?", stream: true });
    const events = parseSse(streamed.text);
    const [meta, done] = [events[0]!, events.at(-1)!];
    assert.deepEqual([meta.event, done.event], ["meta", "done"]);
    const shown = tries.at(-1);
    assert.ok(tries.length > 1, `refused first: ${tries}`);
    assert.deepEqual([meta.data.sources.length, done.data.sources.length], [shown, shown]);
  });
});

test("an answer that fills the model's window ends there, cut, rather than answering on without its sources", async () => {
  // Hex is estimated at 4 characters a token and takes 1.8: a prompt the model accepts can leave less than the answer.
  const texts = Array.from({ length: 4 }, (_, i) => `Checksum ${i} high water: ${hexOf(`fill-${i}`, 1_150)}`);
  await withTokenizedWindow("fill", texts, async (ask) => {
    const { ollama } = stack.fakes;
    ollama.knobs.runawayWords = 1_000;
    try {
      const { res, asked } = await ask({ query: "Which checksum is for high water?", top_k: 4 });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(asked, [4], "accepted whole");
      const { prompt_tokens: prompt, completion_tokens: answer } = res.body.usage;
      assert.ok(prompt + 512 > 3072, `${prompt} prompt tokens leave room for a whole answer: not the case under test`);
      assert.equal(prompt + answer, 3072, "the answer ends where the window does");
      assert.equal(res.body.truncated, true);
    } finally {
      ollama.knobs.runawayWords = null;
    }
  });
});

test("a question the model's window cannot hold is a 400 naming the query", async () => {
  await withTokenizedWindow("long-question", [hanText("Tide table high water", 0, 600)], async (ask) => {
    const { ollama } = stack.fakes;
    const embeds = ollama.calls["/api/embed"] ?? 0;
    const { res: han } = await ask({ query: hanText("High water", 0, 2_500) });
    assert.equal(han.status, 400, han.text);
    assert.match(han.body.error, /^invalid body: query: about 2\d{3} tokens, too long for the model's window/);
    assert.equal(ollama.calls["/api/embed"] ?? 0, embeds, "refused before any model call");
  });
  // Estimated to fit (4 characters a token) but not: the model refuses it with every source, and then with none.
  await withTokenizedWindow(
    "long-hex-question",
    [hanText("Tide table high water", 0, 600)],
    async (ask) => {
      const query = createHash("sha512").update("q").digest("hex").repeat(40).slice(0, 5_000);
      // An embedding window that takes it whole: here the chat model's window is the limit under test.
      stack.fakes.ollama.knobs.embedContextLength = 8_192;
      const { res: hex, asked } = await ask({ query }).finally(() => {
        stack.fakes.ollama.knobs.embedContextLength = 2048;
      });
      assert.equal(hex.status, 400, hex.text);
      assert.match(hex.body.error, /^invalid body: query: too long for the model's window/);
      assert.equal(asked.at(-1), 0, `sources per model call: ${asked}`);
    },
    { MODEL_CONTEXT_TOKENS: "2048", MAX_ANSWER_TOKENS: "256", CHUNK_SIZE_CHARS: "1000" },
  );
});

test("a question longer than the embedding model's window is a 400 naming the query, not retrieved by its head alone", async () => {
  const { ollama } = stack.fakes;
  const texts = ["The Zanzibar tide table lists high and low water at Stone Town harbour.", "Mombasa's harbour tides."];
  const documents = texts.map((text, i) => ({ id: `embed-window-${i}`, text, metadata: { team: "embed-window" } }));
  const client = api(stack.url, USER_KEY);
  assert.equal((await client.post("/api/v1/documents", { documents })).status, 201);
  ollama.knobs.embedContextLength = 256; // 1,024 characters at the fake's count
  try {
    const dump = "0123456789abcdef".repeat(80);
    const res = await client.post("/api/v1/query", {
      query: `${dump}\nWhich harbour is this Zanzibar tide table for?`,
      filter: { team: "embed-window" },
    });
    // Before: embedded by its first 1,024 characters, the dump alone, and answered from whatever that retrieved.
    assert.equal(res.status, 400, res.text);
    assert.match(res.body.error, /^invalid body: query: too long for the embedding model's window: shorten it/);
    const short = await client.post("/api/v1/query", {
      query: "Which harbour is this Zanzibar tide table for?",
      filter: { team: "embed-window" },
    });
    assert.equal(short.body.sources[0].id, "embed-window-0");
  } finally {
    ollama.knobs.embedContextLength = 2048;
    for (const { id } of documents) await client.del(`/api/v1/documents/${id}`);
  }
});

/**
 * `documents` ingested on a replica with chunks of up to 4,000 characters and an embedding window of 256 tokens (1,024
 * characters at the fake's count), then `check` with its client and how many embed calls the ingest made; deleted after.
 */
async function withLongChunks(
  documents: Array<{ id: string; text: string; metadata: Record<string, string> }>,
  check: (client: ReturnType<typeof api>, ingested: ApiResponse, embedCalls: number) => Promise<void>,
): Promise<void> {
  const replica = await startApp({
    ...stack.env,
    CHUNK_SIZE_CHARS: "4000",
    CHUNK_OVERLAP_CHARS: "0",
    CONTEXT_TOKEN_BUDGET: "4200",
  });
  const { ollama } = stack.fakes;
  ollama.knobs.embedContextLength = 256;
  const client = api(replica.url, USER_KEY);
  const embeds = () => ollama.calls["/api/embed"] ?? 0;
  try {
    const before = embeds();
    const ingested = await client.post("/api/v1/documents", { documents });
    assert.equal(ingested.status, 201, ingested.text);
    await check(client, ingested, embeds() - before);
  } finally {
    ollama.knobs.embedContextLength = 2048;
    for (const { id } of documents) await client.del(`/api/v1/documents/${id}`);
    await replica.stop();
  }
}

const tideTable = (lines: number) =>
  Array.from({ length: lines }, (_, i) => `Tide table ${i} lists high and low water for the harbour.`).join(" ");

test("a chunk too long for the embedding window costs its own batch a few calls, not every chunk of the ingest one each", async () => {
  // A 4,000-character chunk first, then 40 one-line documents: two batches of EMBED_BATCH_SIZE (32). The long chunk is
  // refused, then its halves, and its quarters fit.
  const documents = [
    { id: "batch-long", text: tideTable(70).slice(0, 4_000), metadata: { team: "batch" } },
    ...Array.from({ length: 40 }, (_, i) => ({
      id: `batch-${i}`,
      text: `Harbour note ${i}: the gulls came back.`,
      metadata: { team: "batch" },
    })),
  ];
  await withLongChunks(documents, async (client, _ingested, calls) => {
    // Halving the refused batch of 32 down to the long chunk: 6 refused and 5 accepted calls; the long chunk's halves
    // refused and quarters accepted: 6; the second batch: 1. One call per chunk after the refusal was 48.
    assert.ok(calls <= 20, `${calls} embed calls`);
    // Chunks of the halved first batch: each found by its own text, so each kept its own vector.
    for (const n of [0, 20, 30]) {
      const res = await client.post("/api/v1/query", {
        query: `Harbour note ${n}: the gulls came back.`,
        top_k: 1,
        filter: { team: "batch" },
      });
      assert.equal(res.body.sources[0].id, `batch-${n}`, "each chunk kept its own vector");
    }
  });
});

test("a chunk longer than the embedding model's window is split and embedded whole, so its end can be found", async () => {
  const documents = [
    { id: "long-log", text: `${tideTable(60)} The lighthouse keeper logs every zephyr.`, metadata: { team: "embed" } },
    { id: "lighthouses", text: "The lighthouse keeper of the north tower.", metadata: { team: "embed" } },
  ];
  await withLongChunks(documents, async (client, ingested) => {
    assert.ok(ingested.body.documents[0].chunks > 1, `the long text in ${ingested.body.documents[0].chunks} chunk(s)`);
    const res = await client.post("/api/v1/query", {
      query: "Which lighthouse keeper logs every zephyr?",
      top_k: 1,
      filter: { team: "embed" },
    });
    assert.equal(res.status, 200, res.text);
    // Embedded by its first 1,024 characters, the long text's last sentence could not be found.
    assert.equal(res.body.sources[0].id, "long-log");
    assert.match(res.body.sources[0].text, /zephyr/);
  });
});
