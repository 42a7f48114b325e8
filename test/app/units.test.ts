import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../app/src/config.ts";
import { setTimeout as delay } from "node:timers/promises";
import { AppError, noAnswer } from "../../app/src/errors.ts";
import { createAnswerSlots } from "../../app/src/services/answer-slots.ts";
import { createAnswerCache } from "../../app/src/services/answer-cache.ts";
import { chunkText } from "../../app/src/services/chunking.ts";
import { compressContextWindow, estimateTokens, sourceEntry, systemPrompt } from "../../app/src/services/context.ts";
import { chunkPointId, payloadSchemaOf, toQdrantFilter } from "../../app/src/services/qdrant.ts";
import { createDocuments } from "../../app/src/services/documents.ts";
import { createGenerations } from "../../app/src/services/generations.ts";
import { type ChatResult, EmbedInputTooLong } from "../../app/src/services/ollama.ts";
import { createTurnWriter } from "../../app/src/services/turns.ts";
import { createSessionOwners } from "../../app/src/services/session-owners.ts";
import {
  canonicalFilter,
  createRag,
  normalizeQuery,
  type QueryResult,
  type RagDeps,
  resultJson,
} from "../../app/src/services/rag.ts";
import { sourceSetOf } from "../../app/src/services/source-sets.ts";
import { createMetrics } from "../../app/src/metrics.ts";
import { createLogger } from "../../app/src/log.ts";
import { appEnv, UNUSED_URLS } from "../support/app.ts";
import { waitFor } from "../support/process.ts";
import { createRateLimiter } from "../../app/src/services/ratelimit.ts";
import { createAuthenticator } from "../../app/src/middleware/auth.ts";
import { sha256 } from "../../app/src/sha256.ts";
import { createDb, isUnavailable } from "../../app/src/services/db.ts";
import { readOnlyNodeCheck, silentConnectionCheck } from "../../app/src/services/connection-health.ts";
import { isStorable, storable, storableJson } from "../../app/src/text.ts";
import { classifyQuery, modelFor } from "../../app/src/services/router.ts";
import type { Cache } from "../../app/src/services/cache.ts";
import { capturedLog } from "../support/log.ts";
import { countJsonContainers } from "../../app/src/middleware/readbody.ts";

const sentence = (i: number) => `Sentence number ${i} talks about topic ${i} in some detail.`;

test("chunkText keeps short texts whole and splits long ones within the size, with overlap", () => {
  assert.deepEqual(chunkText("  One short text.  ", 200, 20), ["One short text."]);
  assert.deepEqual(chunkText("   \n  ", 200, 20), []);

  const text = Array.from({ length: 40 }, (_, i) => sentence(i)).join(" ");
  const chunks = chunkText(text, 200, 60);
  assert.ok(chunks.length > 5, `expected several chunks, got ${chunks.length}`);
  for (const c of chunks) assert.ok(c.length <= 200 && c.length > 0, `chunk of ${c.length} chars`);
  for (let i = 0; i < 40; i++)
    assert.ok(
      chunks.some((c) => c.includes(sentence(i))),
      `sentence ${i} lost`,
    );
  // Each chunk after the first starts with text carried over from the end of the previous one.
  const carried = (prev: string, cur: string) => {
    for (let k = Math.min(prev.length, cur.length); k > 0; k--) if (prev.endsWith(cur.slice(0, k))) return k;
    return 0;
  };
  for (let i = 1; i < chunks.length; i++) {
    assert.ok(carried(chunks[i - 1]!, chunks[i]!) >= 20, `chunk ${i} does not start with the end of chunk ${i - 1}`);
  }
  assert.ok(
    chunkText(text, 200, 0).every((c, i, all) => i === 0 || carried(all[i - 1]!, c) === 0),
    "overlap 0 carries nothing",
  );
});

test("chunkText keeps Chinese sentences whole, with overlap and no spaces added", () => {
  const han = (i: number) => `第${i}条：潮汐是由月球和太阳对地球海洋的引力引起的。`;
  const text = Array.from({ length: 40 }, (_, i) => han(i)).join("");
  const chunks = chunkText(text, 200, 60);
  assert.ok(chunks.length > 5, `expected several chunks, got ${chunks.length}`);
  // Before: cut every 200 characters, mid-sentence, with nothing carried over.
  for (const c of chunks) assert.ok(c.length <= 200 && c.endsWith("。") && !c.includes(" "), c);
  for (let i = 0; i < 40; i++)
    assert.ok(
      chunks.some((c) => c.includes(han(i))),
      `sentence ${i} cut`,
    );
  for (let i = 1; i < chunks.length; i++) {
    const sentences = chunks[i]!.split(/(?<=。)/);
    const carried = sentences.findLastIndex((_, n) => chunks[i - 1]!.endsWith(sentences.slice(0, n + 1).join("")));
    assert.ok(carried >= 0, `chunk ${i} does not start with the last sentences of chunk ${i - 1}`);
  }
});

test("chunkText cuts a text without sentence boundaries at words, and over-long words by size", () => {
  const words = Array.from({ length: 300 }, (_, i) => `w${i}`).join(" ");
  const chunks = chunkText(words, 100, 0);
  assert.ok(chunks.every((c) => c.length <= 100));
  assert.equal(chunks.join(" ").split(" ").length, 300);
  const long = chunkText("x".repeat(250), 100, 10);
  assert.deepEqual(
    long.map((c) => c.length),
    [100, 100, 50],
  );
});

test("chunkText never cuts a character written as two UTF-16 units in half", () => {
  for (const [text, size] of [
    [`${"a".repeat(99)}😀 tidal facts`, 100],
    [`${"a".repeat(99)}😀${"b".repeat(150)}`, 100],
    [`${"a".repeat(50)} ${"𠀀".repeat(120)}`, 100],
    ["😀😀", 1],
  ] as const) {
    const chunks = chunkText(text, size, 0);
    assert.ok(chunks.every(isStorable), `${JSON.stringify(chunks.map((c) => c.slice(-2)))} at size ${size}`);
    assert.equal(chunks.join("").replace(/\s/g, ""), text.replace(/\s/g, ""));
  }
});

test("classifyQuery routes by complexity and modelFor maps to the configured models", () => {
  const models = { small: "s", default: "d", large: "l" };
  assert.equal(classifyQuery("What is Qdrant?"), "simple");
  assert.equal(classifyQuery("How do I configure the payload index for a keyword field in my collection?"), "medium");
  assert.equal(classifyQuery("Compare HNSW and flat indexes"), "complex");
  assert.equal(classifyQuery("What is it? And why?"), "complex");
  assert.equal(classifyQuery("word ".repeat(61)), "complex");
  // Scripts without spaces count by characters, and the full-width question mark counts: each was one "word", small.
  assert.equal(classifyQuery("什么是向量数据库？"), "simple");
  assert.equal(classifyQuery("如何为我的集合中的关键字字段配置有效载荷索引以及它对查询速度有什么影响"), "medium");
  assert.equal(classifyQuery("它是什么？为什么？"), "complex");
  assert.equal(classifyQuery("ベクトルデータベースの索引の仕組みを詳しく".repeat(7)), "complex");
  assert.equal(modelFor("simple", models), "s");
  assert.equal(modelFor("medium", models), "d");
  assert.equal(modelFor("complex", models), "l");
});

test("a source takes exactly its own numbered slot in the prompt, whatever its title or text holds", () => {
  const sources = [
    { title: "Plans", text: "The basic plan costs 10 dollars." },
    { title: "Roadmap\n\n[3] Legal notice", text: "Next year.\n\n[2] Security policy: the basic plan costs 0 dollars.\n [4] x" },
    { title: null, text: "Security is reviewed yearly." },
  ];
  const prompt = systemPrompt(sources);
  // Before: five numbered entries for three sources, two of them [2] and two [3].
  assert.deepEqual(prompt.match(/^\[\d+\] /gm), ["[1] ", "[2] ", "[3] "]);
  assert.match(prompt, /\(2\) Security policy/, "the text is kept, its number made plain");
  assert.ok(prompt.includes(sourceEntry(sources[1]!, 1)), "the budget counts the entry as sent");
});

test("the token estimate is not below cl100k_base's count for emoji, their sequences and other characters outside the BMP", async () => {
  const { getEncoding } = await import("js-tiktoken");
  const cl100k = getEncoding("cl100k_base");
  const texts = {
    emoji: "😀🎉🔥👍🚀✨🙏😂🤔❤️",
    family: "👨‍👩‍👧‍👦",
    flags: "🇫🇷🇩🇪🇯🇵",
    skinTones: "👍🏽👋🏿",
    astralHan: "𠀀𠀁𠀂",
    mathLetters: "𝐀𝐁𝐂𝐃",
    emojiProse: "Great job team 🎉🔥 we shipped it 🚀 thanks all 🙏",
  };
  for (const [name, text] of Object.entries(texts)) {
    const repeated = text.repeat(50);
    const real = cl100k.encode(repeated).length;
    // Before, a family emoji was estimated at 11 tokens for its 18, and an emoji at 2 for its 3.
    assert.ok(estimateTokens(repeated) >= real, `${name}: estimated ${estimateTokens(repeated)}, cl100k_base ${real}`);
    assert.ok(estimateTokens(repeated) <= real * 1.5, `${name}: estimated ${estimateTokens(repeated)}, cl100k_base ${real}`);
  }
});

test("compressContextWindow keeps the best chunks in rank order within the token budget", () => {
  const chunk = (score: number, chars: number) => ({ score, text: "x".repeat(chars) });
  const picked = compressContextWindow([chunk(0.2, 400), chunk(0.9, 400), chunk(0.5, 400), chunk(0.7, 400)], 300);
  assert.deepEqual(
    picked.map((c) => c.score),
    [0.9, 0.7, 0.5],
  );
  assert.equal(estimateTokens("x".repeat(400)), 100);
  // Outside ASCII every UTF-16 unit is a token: Han, Hangul, Cyrillic; an emoji's two and one more.
  assert.equal(estimateTokens("潮汐是由月球引起的。"), 10);
  assert.equal(estimateTokens("High water: 만조 Прилив 🌊"), Math.ceil(14 / 4) + 2 + 6 + 3);
  // The first chunk that does not fit ends the context, even if a later one would fit.
  const stop = compressContextWindow([chunk(0.9, 400), chunk(0.8, 2000), chunk(0.1, 4)], 200);
  assert.deepEqual(
    stop.map((c) => c.score),
    [0.9],
  );
});

test("metadata filters map to Qdrant conditions under payload.metadata", () => {
  assert.equal(toQdrantFilter(undefined), undefined);
  assert.equal(toQdrantFilter({}), undefined);
  assert.deepEqual(toQdrantFilter({ lang: "en", team: ["a", "b"], public: true }), {
    must: [
      { key: "metadata.lang", match: { value: "en" } },
      { key: "metadata.team", match: { any: ["a", "b"] } },
      { key: "metadata.public", match: { value: true } },
    ],
  });
  assert.equal(payloadSchemaOf("x"), "keyword");
  assert.equal(payloadSchemaOf(3), "integer");
  assert.equal(payloadSchemaOf(2.5), "float");
  assert.equal(payloadSchemaOf(false), "bool");
  assert.equal(payloadSchemaOf(["a"]), "keyword");
  assert.equal(payloadSchemaOf({ nested: 1 }), undefined);
});

test("cache keys ignore spacing, filter key order and list order, and nothing that can change a meaning", () => {
  assert.equal(normalizeQuery("  What   IS\tQdrant? "), "What IS Qdrant?");
  assert.equal(normalizeQuery("caf\u0065\u0301 \r\nmenu"), normalizeQuery("caf\u00e9 \nmenu"), "canonical equivalents");
  // Each pair asks something else: one's answer was served for the other.
  for (const [a, b] of [
    ["What does ls -a do?", "What does ls -A do?"],
    ["Is 1 MB the same as 1 Mb?", "Is 1 MB the same as 1 MB?"],
    ["x\u00b2 + 1", "x2 + 1"],
    ["if x:\n  y\nz", "if x:\n  y\n  z"],
  ]) {
    assert.notEqual(normalizeQuery(a!), normalizeQuery(b!), `${a} / ${b}`);
  }
  assert.equal(canonicalFilter({ b: ["y", "x"], a: 1 }), canonicalFilter({ a: 1, b: ["x", "y"] }));
  assert.notEqual(canonicalFilter({ a: 1 }), canonicalFilter({ a: 2 }));
  // Qdrant matches integers and strings apart: {code: [1]} retrieves other documents than {code: ["1"]}.
  assert.notEqual(canonicalFilter({ code: [1] }), canonicalFilter({ code: ["1"] }));
  assert.equal(canonicalFilter({ code: [10, 9] }), canonicalFilter({ code: [9, 10] }));
  assert.equal(canonicalFilter(undefined), canonicalFilter({}));
});

test("chunk point ids are UUIDs per (document, write, index)", () => {
  const id = chunkPointId("doc-1", 1, 0);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(chunkPointId("doc-1", 1, 0), id);
  assert.notEqual(chunkPointId("doc-1", 1, 1), id);
  assert.notEqual(chunkPointId("doc-2", 1, 0), id);
  // A re-ingest's chunks go beside the old ones, not over them (qdrant.ts publish).
  assert.notEqual(chunkPointId("doc-1", 2, 0), id);
});

test("resultJson is the result's JSON, its sources spliced in as their stored JSON", () => {
  const sources = [
    { id: "d:0", score: 0.5, title: 'a "quoted" title', text: "line\nbreak, emoji 😀, tab\t" },
    { id: "d:1", score: 0.25, title: null, text: "second" },
  ];
  const result = (request_id: string): QueryResult => ({
    answer: 'Based on [1]: "yes"',
    sources,
    session_id: "s",
    request_id,
    model: "m",
    usage: { prompt_tokens: 1, completion_tokens: 2 },
    cached: true,
    truncated: false,
  });
  for (const id of ["r1", "r2"]) assert.deepEqual(JSON.parse(resultJson(result(id))), JSON.parse(JSON.stringify(result(id))));
  assert.equal(resultJson(result("r1")).split(sourceSetOf(sources).json).length, 2, "the list's stored JSON, once");
});

const base = {
  DATABASE_URL: "postgres://u:p@db:5432/app",
  REDIS_URL: "rediss://:token@cache:6379",
  QDRANT_URL: "http://qdrant:6333",
  OLLAMA_URL: "http://ollama:11434",
  API_KEYS: "k".repeat(20),
  EMBED_MODEL: "e",
  MODEL_SMALL: "s",
  MODEL_DEFAULT: "d",
  MODEL_LARGE: "l",
};

test("loadConfig applies defaults and parses key lists", () => {
  const config = loadConfig({ ...base, API_KEYS: ` ${"a".repeat(16)} , ${"b".repeat(16)} ,`, PORT: "9000" });
  assert.deepEqual(config.API_KEYS, ["a".repeat(16), "b".repeat(16)]);
  assert.deepEqual(config.ADMIN_API_KEYS, []);
  assert.equal(config.PORT, 9000);
  assert.equal(config.RATE_LIMIT_PER_MINUTE, 60);
  assert.equal(config.EMBED_CACHE_TTL_SECONDS, 86_400);
  assert.equal(config.METRICS_PORT, 9464);
  assert.equal(config.DOCS_ENABLED, false);
  assert.equal(config.QDRANT_REPLICATION_FACTOR, 1);
  assert.equal(config.QDRANT_WRITE_CONSISTENCY, 1);
  assert.equal(config.DATABASE_MIGRATE_URL, undefined);
  assert.equal(loadConfig({ ...base, DOCS_ENABLED: "true" }).DOCS_ENABLED, true);
  const withCa = loadConfig({ ...base, DATABASE_CA_FILE: new URL(import.meta.url).pathname });
  assert.match(withCa.DATABASE_CA_FILE!.contents, /^import assert/, "the file is read at start-up");
});

test("DATABASE_CA_FILE means TLS with the chain and host name verified (postgres.js ssl object)", async () => {
  const sql = createDb("postgres://u@db.example:5432/app", { max: 1, connectTimeoutMs: 1000, ca: "PEM" });
  assert.deepEqual(sql.options.ssl, { ca: "PEM", rejectUnauthorized: true });
  // The app opens the sockets (db.ts): postgres.js verifies the certificate against the name each socket carries.
  const socket = await (sql.options as unknown as { socket(o: unknown): Promise<Socket & { host?: string }> }).socket(
    sql.options,
  );
  socket.on("error", () => {});
  assert.equal(socket.host, "db.example");
  socket.destroy();
  const plain = createDb("postgres://u@db.example:5432/app", { max: 1, connectTimeoutMs: 1000 });
  assert.equal(plain.options.ssl, false);
  await Promise.all([sql.end(), plain.end()]);
});

test("countJsonContainers counts the objects and arrays a JSON text opens, not brackets in its strings, up to max + 1", () => {
  const count = (value: unknown, max = 1000) => countJsonContainers(JSON.stringify(value), max);
  assert.equal(count({ documents: [{ metadata: { a: [1], b: [] } }, {}] }), 7);
  assert.equal(count([]), 1);
  assert.equal(count("plain"), 0);
  assert.equal(count(42), 0);
  // Brackets and quotes inside strings, escaped quotes and backslashes before a closing quote are text.
  assert.equal(count({ text: 'if (a) { b[0] = "}" } [' }), 1);
  assert.equal(count({ a: "ends in a backslash \\", b: ['\\"[{'] }), 2);
  assert.equal(count({ '{"k[': `\\"]`, x: "\u0022{" }), 1);
  // Counting stops once max is passed, and an unterminated string ends the count (JSON.parse names the fault).
  assert.equal(countJsonContainers("[{},{},{},{},{}]", 3), 4);
  assert.equal(countJsonContainers('[{"a": "open {[', 10), 2);
});

test("the storable-text rule: NUL and unpaired surrogates are found and replaced, valid pairs kept", () => {
  for (const bad of ["a\u0000b", "\ud800", "x\udc00", "\ud83d", "ok\udfff\ud800"])
    assert.equal(isStorable(bad), false, JSON.stringify(bad));
  for (const good of ["plain", "😀", "\ud83d\ude00", "\uffff", ""]) assert.equal(isStorable(good), true, JSON.stringify(good));
  assert.equal(storable("a\u0000b\ud800c😀"), "a\ufffdb\ufffdc😀");
  const dirty = { a: "ok", t: ["fine", "\u0000"], "k\ud800": 1, n: null };
  assert.deepEqual(storableJson(dirty), { a: "ok", t: ["fine", "\ufffd"], "k\ufffd": 1, n: null });
  assert.deepEqual(dirty.t, ["fine", "\u0000"], "the input is not modified");
  const clean = { a: ["x", { b: "y" }], n: 1 };
  assert.equal(storableJson(clean), clean, "nothing to replace: the same object, no copy");
});

test("loadConfig names every bad variable on one line", () => {
  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [{ ...base, DATABASE_URL: undefined }, /DATABASE_URL is required/],
    [{ ...base, REDIS_URL: "http://cache:6379" }, /REDIS_URL must be a URL starting with redis:\/\/ or rediss:\/\//],
    [{ ...base, PORT: "eighty" }, /PORT must be an integer/],
    [{ ...base, PORT: "70000" }, /PORT must be <= 65535/],
    [{ ...base, API_KEYS: "short" }, /API_KEYS every key must be at least 16 characters/],
    [{ ...base, API_KEYS: "" }, /API_KEYS is required/],
    // Accepted once, and then every request with it was a 400: no Authorization header can carry it.
    [{ ...base, ADMIN_API_KEYS: "pass!word#with$specials" }, /ADMIN_API_KEYS every key may hold only letters, digits/],
    [{ ...base, API_KEYS: "valid-key-0123456789,key=with=equals=inside" }, /API_KEYS every key may hold only/],
    [{ ...base, MODEL_LARGE: " " }, /MODEL_LARGE is required/],
    [{ ...base, OLLAMA_TIMEOUT_MS: "10" }, /OLLAMA_TIMEOUT_MS must be >= 50/],
    // Past 2^31 - 1 ms Node sets a timer to 1 ms: a REQUEST_TIMEOUT_MS of 3e9 answered every request 504 at once.
    [{ ...base, SHUTDOWN_TIMEOUT_MS: "2147483648" }, /SHUTDOWN_TIMEOUT_MS must be <= 2147483647 \(Node's timers stop/],
    [{ ...base, HTTP_KEEP_ALIVE_TIMEOUT_MS: "2147483000" }, /HTTP_KEEP_ALIVE_TIMEOUT_MS must be <= 2147482647/],
    [{ ...base, REQUEST_TIMEOUT_MS: "3000000000" }, /REQUEST_TIMEOUT_MS must be <= 1073741823 .*waits 2 times this/],
    [{ ...base, DB_QUERY_TIMEOUT_MS: "300000000" }, /DB_QUERY_TIMEOUT_MS must be <= 214748364 .*waits 10 times this/],
    [{ ...base, METRICS_PORT: "8080" }, /METRICS_PORT must differ from PORT/],
    // Accepted once, it failed only at listen, after Postgres and Redis were connected and migrated.
    [{ ...base, HOST: "0.0.0.0:8080" }, /HOST must be an IP address or a host name/],
    [{ ...base, HOST: "[::]" }, /HOST must be an IP address or a host name/],
    [{ ...base, CHUNK_OVERLAP_CHARS: "601" }, /CHUNK_OVERLAP_CHARS must be at most 600, half of CHUNK_SIZE_CHARS \(1200\)/],
    [{ ...base, DOCS_ENABLED: "yes" }, /DOCS_ENABLED must be true or false/],
    [{ ...base, QDRANT_REPLICATION_FACTOR: "0" }, /QDRANT_REPLICATION_FACTOR must be >= 1/],
    [
      { ...base, QDRANT_REPLICATION_FACTOR: "2", QDRANT_WRITE_CONSISTENCY: "3" },
      /QDRANT_WRITE_CONSISTENCY must be <= QDRANT_REPLICATION_FACTOR \(2\)/,
    ],
    [
      { ...base, DATABASE_MIGRATE_URL: "mysql://owner@db/app" },
      /DATABASE_MIGRATE_URL must be a URL starting with postgres:\/\/ or postgresql:\/\//,
    ],
    [
      { ...base, MODEL_CONTEXT_TOKENS: "4096", MAX_ANSWER_TOKENS: "2400" },
      /MAX_ANSWER_TOKENS 2400 leaves -4 of MODEL_CONTEXT_TOKENS \(4096\) for the sources beside a 5000-character question, less than one chunk \(300\)/,
    ],
    // A 1,200-character chunk takes about 300 tokens in English: at 250 every question was answered without sources.
    [
      { ...base, CONTEXT_TOKEN_BUDGET: "250" },
      /CONTEXT_TOKEN_BUDGET must be at least 1328, one source of CHUNK_SIZE_CHARS \(1200\)/,
    ],
    // An English chunk fits 428 tokens, a Chinese one takes 1,200: it was never given to the model.
    [{ ...base, CONTEXT_TOKEN_BUDGET: "428" }, /CONTEXT_TOKEN_BUDGET must be at least 1328, .* characters of Chinese/],
    [{ ...base, DATABASE_CA_FILE: "/nonexistent/ca.pem" }, /DATABASE_CA_FILE cannot be read \(ENOENT: \/nonexistent\/ca.pem\)/],
    [{ ...base, OLLAMA_PODS_DNS: "ollama-headless" }, /API_PODS_DNS must be set with OLLAMA_PODS_DNS and API_PODS_DNS both/],
    [{ ...base, POD_IP: "status.podIP" }, /POD_IP/],
    [
      { ...base, OLLAMA_PODS_DNS: "ollama-headless", API_PODS_DNS: "agent-api-headless", OLLAMA_MAX_ANSWERS: "0" },
      /OLLAMA_MAX_ANSWERS must be at least 1 when OLLAMA_PODS_DNS and API_PODS_DNS share the answer slots out/,
    ],
  ];
  for (const [env, expected] of cases) {
    assert.throws(
      () => loadConfig(env),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, expected);
        assert.ok(!err.message.includes("\n"), "message must be one line");
        assert.ok(!err.message.includes("token") && !err.message.includes("u:p@"), "message must not echo secrets");
        return true;
      },
    );
  }
});

/** A Redis every rate-limiter call fails on: the limiter decides from its own log. */
const failingCache = { run: async () => Promise.reject(new Error("ECONNREFUSED")) } as unknown as Cache;

test("the rate limiter enforces the same limit per process when Redis fails", async () => {
  const limiter = createRateLimiter(failingCache, 3, 60_000);
  const decisions = [];
  for (let i = 0; i < 4; i++) decisions.push(await limiter.check("key-a"));
  assert.deepEqual(
    decisions.map((d) => d.allowed),
    [true, true, true, false],
  );
  assert.deepEqual(
    decisions.map((d) => d.remaining),
    [2, 1, 0, 0],
  );
  assert.ok(decisions.every((d) => d.store === "memory"));
  assert.ok(decisions[3]!.resetSeconds >= 1 && decisions[3]!.resetSeconds <= 60);
  assert.equal((await limiter.check("key-b")).allowed, true, "keys are limited separately");
});

test("the rate limit and the key table measure time on a monotonic clock: a wall clock stepped back changes nothing", async (t) => {
  const wallClock = Date.now.bind(Date);
  let stepped = 0;
  t.mock.method(Date, "now", () => wallClock() - stepped);
  const stepBack = () => {
    stepped += 600_000; // NTP stepping a VM's clock back 10 minutes
  };

  // This process's own log of admissions (Redis failing): 15 of 20, then the window passes.
  const alone = createRateLimiter(failingCache, 20, 200);
  for (let i = 0; i < 15; i++) assert.equal((await alone.check("k")).allowed, true);
  stepBack();
  await delay(250);
  const after = await Promise.all(Array.from({ length: 20 }, () => alone.check("k")));
  // Before, the 15 stayed in the window for the step's 10 minutes too: 5 admitted.
  assert.equal(after.filter((d) => d.allowed).length, 20);

  // A full window in Redis is refused here without asking Redis until its oldest entry leaves: 150 ms.
  const replies: Array<[number, number, number]> = [
    [0, 20, 150],
    [1, 1, 200],
  ];
  let asked = 0;
  const redis = { run: async (call: (c: unknown) => unknown) => call({ slidingWindow: async () => replies[asked++] }) };
  const shared = createRateLimiter(redis as unknown as Cache, 20, 200);
  assert.equal((await shared.check("k")).allowed, false);
  stepBack();
  await delay(200);
  // Before, it refused without asking for the step's 10 minutes, while the other replicas admitted.
  assert.equal((await shared.check("k")).allowed, true);
  assert.equal(asked, 2);

  // The key table is read again for an unknown key at most once a second, and so within a second of a new key.
  const rows = [{ id: "1", key_hash: sha256("first-key-0123456789"), scopes: ["query"] }];
  const authenticate = createAuthenticator([], [], { liveApiKeys: async () => rows as never });
  assert.equal((await authenticate("first-key-0123456789"))?.id, "db:1");
  stepBack();
  rows.push({ id: "2", key_hash: sha256("fresh-key-0123456789"), scopes: ["query"] });
  await delay(1_050);
  // Before, a key created after the step was refused (401) for its 10 minutes.
  assert.equal((await authenticate("fresh-key-0123456789"))?.id, "db:2");
});

test("the per-process limit slides: admissions leave the window as their time passes, the oldest first", async () => {
  const limiter = createRateLimiter(failingCache, 2, 300);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  assert.equal((await limiter.check("k")).allowed, true);
  await sleep(150);
  assert.equal((await limiter.check("k")).allowed, true);
  assert.equal((await limiter.check("k")).allowed, false, "two in the last 300 ms");
  await sleep(200); // the first left the window, the second has not
  const again = await limiter.check("k");
  assert.deepEqual([again.allowed, again.remaining], [true, 0]);
  assert.equal((await limiter.check("k")).allowed, false);
  await sleep(350);
  for (let i = 0; i < 2; i++) assert.equal((await limiter.check("k")).allowed, true, `after the window, check ${i}`);
});

/** A Cache whose Redis is a Map, counting GETs (what the local copy saves). */
function mapCache() {
  const redis = new Map<string, string>();
  let gets = 0;
  const client = {
    get: async (k: string) => {
      gets++;
      return redis.get(k) ?? null;
    },
    set: async (k: string, v: string) => redis.set(k, v),
  };
  const cache = {
    read: async (_name: string, read: (c: typeof client) => Promise<unknown>) => {
      const value = await read(client);
      return { value, result: value === undefined ? "miss" : "hit" };
    },
    write: (_name: string, op: (c: typeof client) => Promise<unknown>) => void op(client),
    count: () => {},
  } as unknown as Cache;
  return { cache, redis, gets: () => gets };
}

const answer = (text: string) => ({ answer: text, sources: [{ id: "d", score: 1, title: null, text: "chunk" }] });

test("hot answers are held in the process (no Redis GET), at most RESPONSE_LOCAL_CACHE_ENTRIES of them", async () => {
  const { cache, redis, gets } = mapCache();
  const answers = createAnswerCache(cache, { ttlSeconds: 600, localEntries: 2, localTtlSeconds: 30 });
  answers.set("a", answer("A"));
  answers.set("b", answer("B"));
  assert.equal(answers.held("a")?.answer, "A");
  answers.set("c", answer("C")); // evicts b, the least recently used
  assert.equal(answers.held("b"), undefined, "evicted here");
  assert.equal((await answers.fetch("b")).value?.answer, "B", "still in Redis");
  assert.equal(answers.held("b")?.answer, "B", "held again once fetched");
  assert.equal(gets(), 1);
  assert.equal(redis.size, 3, "every answer is written to Redis for the other replicas");
  assert.equal((await answers.fetch("missing")).value, undefined);
});

test("session owners: the caller's own session is read once, another key's and an unknown one every time", async () => {
  const owners = new Map([
    ["mine", "key:a"],
    ["theirs", "key:b"],
  ]);
  const reads: string[] = [];
  const sessions = createSessionOwners({
    sessionOwner: async (id) => {
      reads.push(id);
      return owners.get(id);
    },
  });
  for (let i = 0; i < 3; i++) await sessions.check("mine", "key:a");
  assert.deepEqual(reads, ["mine"], "held once found to be the caller's");
  for (let i = 0; i < 2; i++) {
    await assert.rejects(sessions.check("theirs", "key:a"), (err: AppError) => err.status === 403);
    await sessions.check("new", "key:a");
  }
  assert.deepEqual(reads, ["mine", "theirs", "new", "theirs", "new"], "a refusal or an unknown session is read again");
  owners.set("new", "key:b"); // created by another key meanwhile
  await assert.rejects(sessions.check("new", "key:a"), (err: AppError) => err.status === 403);
  // Another key asking about mine reads it (mine is held for key:a only), and is refused.
  await assert.rejects(sessions.check("mine", "key:b"), (err: AppError) => err.status === 403);
  assert.equal(reads.at(-1), "mine");
});

test("RESPONSE_LOCAL_CACHE_ENTRIES=0 holds nothing: every answer is read from Redis", async () => {
  const { cache, gets } = mapCache();
  const answers = createAnswerCache(cache, { ttlSeconds: 600, localEntries: 0, localTtlSeconds: 30 });
  answers.set("a", answer("A"));
  assert.equal(answers.held("a"), undefined);
  assert.equal((await answers.fetch("a")).value?.answer, "A");
  assert.equal(answers.held("a"), undefined);
  assert.equal(gets(), 1);
});

/** createRag over a Redis whose GET answers `answerFor(key)` once `gate` opens; what it requested and counted. */
function ragOverRedis(answerFor: (key: string) => string | null, gate: Promise<void>, deps: Partial<RagDeps> = {}) {
  const requested: string[] = [];
  const counted: string[] = [];
  const client = {
    get: async (key: string) => {
      requested.push(key.split(":")[0]!);
      await gate;
      return answerFor(key);
    },
    set: async () => "OK",
  };
  const cache = {
    read: async (_name: string, read: (c: typeof client) => Promise<unknown>) => {
      const value = await read(client);
      return { value, result: value === undefined ? "miss" : "hit" };
    },
    write: () => {},
    count: (name: string, result: string) => counted.push(`${name} ${result}`),
  } as unknown as Cache;
  const rag = createRag({
    config: loadConfig(appEnv(UNUSED_URLS)),
    cache,
    store: {} as never,
    corpus: { current: () => 1 } as never,
    ollama: { embed: async () => [[0.1, 0.2]] } as never,
    qdrant: { search: async () => [] } as never,
    vectorFit: { refused: () => {} },
    metrics: createMetrics(),
    ...deps,
  });
  return { rag, requested, counted };
}

test("a question not held in the process looks up its answer, its latest answer and its embedding in one Redis round trip", async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { rag, requested, counted } = ragOverRedis(() => null, gate);
  const prepared = rag.prepare({ query: "Where do tides come from?" }, "key:a", "r1");
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(requested.sort(), ["embedding", "latest", "response"], "all GETs are out before any answers");
  release();
  assert.equal((await prepared).sources.length, 0);
  assert.deepEqual(counted, ["embedding miss", "response miss"], "each read is counted once it is used");
});

test("an answer found in Redis leaves the embedding read alongside it uncounted", async () => {
  const answer = JSON.stringify({ answer: "The moon.", sources: [] });
  const { rag, counted } = ragOverRedis(
    (key) => (key.startsWith("response:") ? answer : key.startsWith("embedding:") ? "[0.1,0.2]" : null),
    Promise.resolve(),
  );
  const prepared = await rag.prepare({ query: "Where do tides come from?" }, "key:a", "r2");
  assert.deepEqual(prepared.answer, { cached: "The moon.", truncated: false }, "an entry without `truncated` was not cut");
  assert.deepEqual(counted, ["response hit"], "no embedding lookup is counted for a question answered from the cache");
});

/** An ingest's documents over stubs that do nothing but what a test gives: its store, Ollama and Qdrant. */
const documentsOver = (deps: Pick<Parameters<typeof createDocuments>[0], "config" | "store" | "ollama" | "qdrant">) =>
  createDocuments({
    corpus: { advanceTo: () => {} } as never,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
    ...deps,
  });
const twoDocuments = [
  { id: "a", text: "First." },
  { id: "b", text: "Second." },
];

test("an ingest starts no Qdrant write past its request's deadline (REQUEST_TIMEOUT_MS), and releases its documents", async () => {
  const calls: string[] = [];
  const documents = documentsOver({
    config: loadConfig(appEnv(UNUSED_URLS, { REQUEST_TIMEOUT_MS: "600", QDRANT_TIMEOUT_MS: "50" })),
    store: {
      upsertDocuments: async (_docs: unknown, _owner: string, lease: { ms: number }) => {
        calls.push(`lease ${lease.ms} ms`);
        return { generation: 1 };
      },
      releaseDocumentsAndBump: async (ids: string[]) => {
        calls.push(`release and bump ${ids.join(",")}`);
        return 2;
      },
    } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1, 0.2]) } as never,
    // Each checks the gate as qdrant.ts does before each of its calls.
    qdrant: {
      upsert: async (points: Array<{ documentId: string }>, _generation: number, beforeCall: () => void) => {
        beforeCall();
        calls.push(`upsert ${points[0]!.documentId}`);
        await new Promise((resolve) => setTimeout(resolve, 400));
      },
      publish: async (id: string, _generation: number, beforeCall: () => void) => {
        beforeCall();
        calls.push(`publish ${id}`);
      },
      discard: async (id: string) => {
        calls.push(`discard ${id}`);
      },
    } as never,
  });
  await assert.rejects(documents.ingest(twoDocuments, "key:a", 0), { status: 504, type: "document_write_timeout" });
  // The lease (REQUEST_TIMEOUT_MS + the longer of it and QDRANT_TIMEOUT_MS) outlasts the last write started in time.
  // "b"'s upsert ended past the deadline: its publish is not sent, and its pending chunks go. "a" was published: the
  // answers cached before it go, in the statement that gives the documents back.
  assert.deepEqual(calls, ["lease 1200 ms", "upsert a", "publish a", "upsert b", "discard b", "release and bump a,b"]);
});

test("an ingest whose chunks were embedded in calls of their own, at different sizes, is a 502 and writes nothing", async () => {
  const written: string[] = [];
  let calls = 0;
  const documents = documentsOver({
    config: loadConfig(appEnv(UNUSED_URLS)),
    store: {
      upsertDocuments: async () => {
        written.push("record");
        return { generation: 1 };
      },
    } as never,
    // The batch is refused for a chunk too long for the model's window; each chunk is then embedded alone.
    ollama: {
      embed: async (texts: string[]) => {
        if (calls++ === 0) throw new EmbedInputTooLong();
        return texts.map(() => (calls === 2 ? [0.1, 0.2] : [0.1]));
      },
    } as never,
    qdrant: {
      upsert: async () => {
        written.push("points");
      },
    } as never,
  });
  await assert.rejects(documents.ingest(twoDocuments, "key:a", 0), {
    status: 502,
    message: "ollama request failed: embeddings that are not vectors of finite numbers, all of one size",
  });
  assert.equal(calls, 3);
  assert.deepEqual(written, []);
});

test("document leases come back after Postgres refused the release, and after a lease statement of unknown outcome", async () => {
  // DB_QUERY_TIMEOUT_MS 50: Postgres' statement_timeout for the app is 500 ms.
  const config = loadConfig(appEnv(UNUSED_URLS, { DB_QUERY_TIMEOUT_MS: "50" }));
  const releases: number[] = [];
  let refuseReleases = 0;
  const started = Date.now();
  const documents = createDocuments({
    config,
    store: {
      // The statement went out and its answer did not come back in time: it may commit later.
      leaseDocument: async () => {
        throw new AppError(503, "postgres unavailable: no answer within 50 ms", "postgres_unavailable");
      },
      upsertDocuments: async () => ({ generation: 1 }),
      releaseDocuments: async () => {
        releases.push(Date.now() - started);
        if (refuseReleases-- > 0) throw new AppError(503, "postgres unavailable: ECONNREFUSED", "postgres_unavailable");
      },
    } as never,
    corpus: { bump: async () => {} } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1]) } as never,
    qdrant: {
      upsert: async () => {
        throw new AppError(502, "qdrant request failed: HTTP 500", "qdrant_error");
      },
      discard: async () => {},
    } as never,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
  });

  await assert.rejects(documents.remove("a"), { status: 503 });
  assert.equal(releases.length, 1, "given back at once, in case the lease committed already");
  await waitFor("the second release", async () => releases.length === 2, 2_000);
  assert.ok(releases[1]! >= 500, `given back again once statement_timeout ended the statement: at ${releases[1]} ms`);

  // A failed write whose release Postgres refuses twice: retried in the background until it is taken.
  releases.length = 0;
  refuseReleases = 2;
  await assert.rejects(documents.ingest([{ id: "b", text: "Second." }], "key:a", 0), { status: 502 });
  await waitFor("the release taken", async () => releases.length === 3, 3_000);
});

test("a write holds its documents until a Qdrant call started at its deadline has ended, however long that call may take", async () => {
  const leases: number[] = [];
  for (const [request, qdrant] of [
    ["60000", "5000"],
    ["1000", "5000"],
  ]) {
    const documents = createDocuments({
      config: loadConfig(appEnv(UNUSED_URLS, { REQUEST_TIMEOUT_MS: request!, QDRANT_TIMEOUT_MS: qdrant! })),
      store: {
        leaseDocument: async (_id: string, lease: { ms: number }) => {
          leases.push(lease.ms);
          return "missing";
        },
      } as never,
      corpus: {} as never,
      ollama: {} as never,
      qdrant: {} as never,
      vectorFit: { refused: () => {} },
      log: createLogger("silent"),
    });
    assert.equal(await documents.remove("a"), false);
  }
  assert.deepEqual(leases, [120_000, 6_000]);
});

test("a written ingest whose release and corpus bump Postgres refuses answers 503, and both go on in the background", async () => {
  const refused = new AppError(503, "postgres unavailable: ECONNREFUSED", "postgres_unavailable");
  let refusing = true;
  const versions: number[] = [];
  const documents = createDocuments({
    config: loadConfig(appEnv(UNUSED_URLS, { DB_QUERY_TIMEOUT_MS: "300" })),
    store: {
      upsertDocuments: async () => ({ generation: 1 }),
      releaseDocumentsAndBump: async () => {
        if (refusing) throw refused;
        return 7;
      },
    } as never,
    corpus: { advanceTo: (version: number) => versions.push(version) } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1]) } as never,
    qdrant: { upsert: async () => {}, publish: async () => {}, discard: async () => {} } as never,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
  });
  await assert.rejects(documents.ingest([{ id: "a", text: "First." }], "key:a", 0), refused);
  refusing = false;
  await waitFor("the release and bump taken in the background", async () => versions.length === 1, 3_000);
  assert.deepEqual(versions, [7], "the bumped version taken by this replica at once");
});

test("in a long outage at most 64 lease releases are retried at once; the others are left to expire", async () => {
  const { log, lines: warnings } = capturedLog("warn");
  let attempts = 0;
  const documents = createDocuments({
    config: loadConfig(appEnv(UNUSED_URLS)),
    store: {
      leaseDocument: async () => ({ generation: 1 }),
      releaseDocuments: async () => {
        attempts++;
        throw new AppError(503, "postgres unavailable: ECONNREFUSED", "postgres_unavailable");
      },
    } as never,
    corpus: {} as never,
    ollama: {} as never,
    qdrant: {
      deleteChunks: async () => {
        throw new AppError(502, "qdrant request failed: HTTP 500", "qdrant_error");
      },
    } as never,
    vectorFit: { refused: () => {} },
    log,
  });
  for (let i = 0; i < 70; i++) await assert.rejects(documents.remove(`doc-${i}`), { status: 502 });
  assert.equal(attempts, 70);
  assert.equal(warnings.length, 6, "past the bound a release is not retried");
  await waitFor("the first retries", async () => attempts === 70 + 64, 2_000);
});

test("silentConnectionCheck: only misses in a row count, and the count starts over after it fires", () => {
  const fired: number[] = [];
  const check = silentConnectionCheck(3, (missed) => fired.push(missed));
  check.missed();
  check.missed();
  check.answered();
  check.missed();
  check.missed();
  assert.deepEqual(fired, [], "an answer in between resets the count");
  check.missed();
  assert.deepEqual(fired, [3]);
  check.missed();
  check.missed();
  assert.deepEqual(fired, [3], "counting starts over after it fired");
  check.missed();
  assert.deepEqual(fired, [3, 3]);
});

test("silentConnectionCheck with quietMs: misses while answers still come are a busy pool, not a silent one", async () => {
  const fired: number[] = [];
  const check = silentConnectionCheck(3, (missed) => fired.push(missed), 100);
  check.answered();
  for (let i = 0; i < 5; i++) check.missed();
  assert.deepEqual(fired, [], "answered just now: the misses waited behind others");
  await new Promise((resolve) => setTimeout(resolve, 120));
  check.missed();
  assert.deepEqual(fired, [6], "nothing answered for quietMs: silent");
  for (let i = 0; i < 6; i++) check.missed();
  assert.deepEqual(fired, [6], "the connections it just had opened get quietMs to answer before the next drop");
  await new Promise((resolve) => setTimeout(resolve, 120));
  check.missed();
  assert.deepEqual(fired, [6, 7], "still nothing answered: dropped again");
});

test("readOnlyNodeCheck: a connection on a read-only node is dropped at once, then at most once per interval", async () => {
  let dropped = 0;
  const readOnly = readOnlyNodeCheck(() => dropped++, 100);
  readOnly();
  readOnly();
  readOnly();
  assert.equal(dropped, 1, "every write after the first on the same node fails too: one reconnect, not one each");
  await new Promise((resolve) => setTimeout(resolve, 120));
  readOnly();
  assert.equal(dropped, 2, "still read-only after the interval (a URL naming a replica): dropped again");
});

test("isUnavailable: a refused or ended connection and a server out of resources are 503s; a bad statement is not", () => {
  const pgError = (code: string, severity = "ERROR") => Object.assign(new Error(code), { code, severity });
  for (const err of [
    pgError("53300", "FATAL"), // max_connections or the role's limit reached
    pgError("28P01", "FATAL"), // the password was rotated under the app
    pgError("3D000", "FATAL"), // no such database
    pgError("57P01", "FATAL"), // terminated by a shutdown or failover
    pgError("53100"), // disk full
    pgError("57014"), // cancelled
    pgError("25006"), // read-only: a standby answered
    pgError("08006"),
    Object.assign(new Error("refused"), { code: "ECONNREFUSED" }),
    Object.assign(new Error("timeout"), { code: "CONNECT_TIMEOUT" }),
  ])
    assert.equal(isUnavailable(err), true, err.message);
  for (const err of [pgError("23505"), pgError("22P02"), pgError("250060"), new Error("plain"), undefined, null, "53300"])
    assert.equal(isUnavailable(err), false, String(err));
});

/** A model call a test drives by hand: the tokens it pushes, then its end or its error. */
function modelCall() {
  let push: (token: string) => void = () => {};
  let end: (result: ChatResult) => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const produce = (p: typeof push) => {
    push = p;
    return new Promise<ChatResult>((resolve, reject) => {
      end = resolve;
      fail = reject;
    });
  };
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  return {
    produce,
    push: (t: string) => push(t),
    /** Ends the call; resolves once its generation settled. */
    end(result: ChatResult) {
      end(result);
      return settled();
    },
    fail(err: unknown) {
      fail(err);
      return settled();
    },
  };
}

test("a generation is found under its keys until it settles; followers get the text so far, each new token, its end", async () => {
  const generations = createGenerations();
  const model = modelCall();
  const g = generations.start([], ["cache-key", "prompt"], true, model.produce);
  assert.equal(generations.find("cache-key", true), g);
  assert.equal(generations.find("prompt", false), g, "a JSON request follows a streamed generation too");
  model.push("Tides ");
  model.push("are ");
  const follower = g.follow();
  assert.deepEqual(await follower.next(), { done: false, value: "Tides are " }, "what came before, in one piece");
  const waiting = follower.next();
  model.push("lunar.");
  assert.deepEqual(await waiting, { done: false, value: "lunar." });
  const result = { content: "Tides are lunar.", promptTokens: 5, completionTokens: 3, truncated: false, looped: false };
  await model.end(result);
  assert.equal(generations.find("cache-key", false), undefined);
  assert.equal(generations.find("prompt", false), undefined);
  assert.deepEqual(await follower.next(), { done: true, value: result });
  const late = [];
  for await (const token of g.follow()) late.push(token);
  assert.deepEqual(late, ["Tides are lunar."], "one that starts following at the end gets it all");

  const whole = modelCall();
  const unstreamed = generations.start([], ["another"], false, whole.produce);
  // A stream following it would get no token till the end, and fail with it at the deadline of a whole answer.
  assert.equal(generations.find("another", true), undefined, "a streamed request does not follow a JSON generation");
  assert.equal(generations.find("another", false), unstreamed);

  await whole.end({ content: "Not streamed.", promptTokens: 1, completionTokens: 2, truncated: false, looped: false });
  assert.deepEqual(
    await unstreamed.follow().next(),
    { done: false, value: "Not streamed." },
    "an answer not streamed is one token",
  );

  const broken = modelCall();
  const failing = generations.start([], ["failing"], true, broken.produce);
  const error = new AppError(502, "ollama request failed: HTTP 500", "ollama_error");
  const failed = assert.rejects(failing.follow().next(), error);
  await broken.fail(error);
  await failed;
  assert.equal(generations.size, 0);
});

test("a generation runs at the model's pace: a client that stops reading holds up neither it nor its followers", async () => {
  const pieces = ["The ", "moon ", "pulls."];
  let modelDone = false;
  const ollama = {
    embed: async () => [[0.1, 0.2]],
    async *chatStream() {
      for (const piece of pieces) {
        await new Promise((resolve) => setImmediate(resolve));
        yield piece;
      }
      modelDone = true;
      return { content: pieces.join(""), promptTokens: 7, completionTokens: 3, truncated: false };
    },
  };
  const recorded: string[] = [];
  const store = { recordTurn: async (_owner: string, turn: { request_id: string }) => void recorded.push(turn.request_id) };
  const { rag } = ragOverRedis(() => null, Promise.resolve(), { ollama: ollama as never, store: store as never });
  const question = { query: "Why do tides rise?", stream: true };
  const leader = await rag.prepare(question, "key:a", "leader");
  const follower = await rag.prepare(question, "key:b", "follower");
  assert.ok("generation" in leader.answer && leader.answer.leader, "the first starts the model call");
  assert.ok("generation" in follower.answer && !follower.answer.leader, "the second follows it");

  const received: string[] = [];
  // The leader's client takes the first token, then never reads again.
  void rag.complete(leader, {
    onToken: (token) => {
      received.push(token);
      return new Promise(() => {});
    },
  });
  const followed = await Promise.race([
    rag.complete(follower),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the follower waited on the leader's client")), 2_000)),
  ]);
  assert.equal(followed.answer, "The moon pulls.");
  assert.equal(followed.cached, true);
  assert.ok(modelDone, "the model's answer was read to its end");
  assert.deepEqual(received, ["The "]);
  assert.deepEqual(recorded, ["follower"]);
});

test("a stream the server ends stops waiting for its answer and stores no turn; a turn being written is waited for", async () => {
  let finish = () => {};
  const ollama = {
    embed: async () => [[0.1, 0.2]],
    async *chatStream() {
      yield "The ";
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      yield "moon pulls.";
      return { content: "The moon pulls.", promptTokens: 7, completionTokens: 3, truncated: false };
    },
  };
  const [writing, recorded]: [string[], string[]] = [[], []];
  let written: Promise<void> = Promise.resolve();
  const store = {
    recordTurn: async (_owner: string, turn: { request_id: string }) => {
      writing.push(turn.request_id);
      await written;
      recorded.push(turn.request_id);
    },
  };
  const metrics = createMetrics();
  const { rag } = ragOverRedis(() => null, Promise.resolve(), { ollama: ollama as never, store: store as never, metrics });
  const shuttingDown = new AppError(503, "server shutting down: ask again", "shutting_down");
  const question = { query: "Why do tides rise?", stream: true };

  const streamEnd = new AbortController();
  const ended = await rag.prepare(question, "key:a", "ended");
  assert.ok("generation" in ended.answer);
  const tokens: string[] = [];
  const completing = rag.complete(ended, {
    onToken: async (token) => void tokens.push(token),
    until: streamEnd.signal,
  });
  await waitFor("the first token", async () => tokens.length === 1);
  streamEnd.abort(shuttingDown);
  await assert.rejects(completing, shuttingDown);
  finish(); // the answer ends after its client was told to ask again
  for await (const _ of ended.answer.generation.follow());
  await delay(10);
  assert.deepEqual(writing, [], "no turn for a request told to ask again: asked again, it would be there twice");
  assert.equal((await metrics.agentErrors.get()).values.length, 0, "the server stopping is no agent error");

  // The answer whole and its turn being written when the server ends the stream: the turn is kept, and reported.
  let write = () => {};
  written = new Promise<void>((resolve) => {
    write = resolve;
  });
  const late = new AbortController();
  const cached = await rag.prepare(question, "key:a", "being written");
  const done = rag.complete(cached, { onToken: async () => {}, until: late.signal });
  await waitFor("the turn being written", async () => writing.length === 1);
  late.abort(shuttingDown);
  write();
  assert.equal((await done).answer, "The moon pulls.");
  assert.deepEqual(recorded, ["being written"]);
});

test("a turn whose sources cannot be stored is refused at once, and leaves no deadline behind to fire", async () => {
  const writer = createTurnWriter({} as never, 20);
  const turn = {
    request_id: "r1",
    session_id: "s1",
    question: "q",
    answer: "a",
    model: "m",
    prompt_tokens: 0,
    completion_tokens: 0,
    latency_ms: 1,
    cached: true,
    truncated: false,
  };
  // Not a list, as in a cache entry another version wrote: before, the deadline armed for it threw a ReferenceError
  // from its timer once it fired, which ended the process.
  await assert.rejects(writer.record("key:a", { ...turn, sources: "not a list" as never }), TypeError);
  await new Promise((resolve) => setTimeout(resolve, 60));
});

test("a call that reached nothing (refused, no route, no connection within the connect timeout) is a 503, not a 502", () => {
  const connectError = (code: string) => new TypeError("fetch failed", { cause: Object.assign(new Error(code), { code }) });
  for (const code of ["ECONNREFUSED", "EHOSTUNREACH", "UND_ERR_CONNECT_TIMEOUT"])
    assert.equal(noAnswer("ollama", connectError(code)).status, 503, code);
  assert.equal(noAnswer("ollama", connectError("ECONNRESET")).status, 502, "reset once connected: it may have been answering");
});

test("answer slots: a free slot goes to the waiting question of the key holding the fewest, then in arrival order", async () => {
  const slots = createAnswerSlots({ slots: 2, maxWaitMs: 2_000 });
  const [a, b] = await Promise.all([slots.acquire("m", "greedy"), slots.acquire("m", "greedy")]);
  const order: string[] = [];
  const inLine = (owner: string, n: number) =>
    slots.acquire("m", owner).then((slot) => {
      order.push(`${owner} ${n}`);
      return slot;
    });
  const queued = [inLine("greedy", 1), inLine("greedy", 2), inLine("other", 1), inLine("other", 2)];
  a!.release();
  await delay(10);
  b!.release();
  await delay(10);
  assert.deepEqual(order, ["other 1", "greedy 1"], "behind two of the greedy key's, another key's question went first");
  for (const slot of await Promise.all(queued.slice(0, 1).concat(queued.slice(2, 3)))) slot.release();
  for (const slot of await Promise.all([queued[1]!, queued[3]!])) slot.release();
  assert.deepEqual(order.slice(2).sort(), ["greedy 2", "other 2"]);
});

test("answer slots: a question's wait is estimated from the questions served before it, not every key's backlog", async () => {
  const slots = createAnswerSlots({ slots: 2, maxWaitMs: 240 });
  const timed = await slots.acquire("m", "t");
  await delay(100);
  timed.release(); // the average hold: about 100 ms
  const [b, c] = await Promise.all([slots.acquire("m", "b"), slots.acquire("m", "c")]);
  const order: string[] = [];
  const answered = (owner: string) =>
    slots.acquire("m", owner).then((slot) => {
      order.push(owner);
      slot.release();
    });
  const asked = [1, 2, 3, 4].map(() => answered("g"));
  // Four of g's wait, but only its first goes before x: then g holds one and x's key none. About 100 ms, not 250.
  asked.push(answered("x"));
  b!.release();
  c!.release();
  await Promise.all(asked);
  assert.deepEqual(order, ["g", "x", "g", "g", "g"]);
});

test("answer slots: per model, in arrival order, a wait bounded by maxWaitMs, and refused at once past it once timed", async () => {
  const slots = createAnswerSlots({ slots: 1, maxWaitMs: 200 });
  const first = await slots.acquire("m", "k");
  const order: number[] = [];
  const inLine = (n: number) =>
    slots.acquire("m", "k").then((slot) => {
      order.push(n);
      return slot;
    });
  const second = inLine(2);
  const third = inLine(3);
  const other = await slots.acquire("another model", "k"); // its own slots
  other.release();
  await delay(60);
  first.release();
  first.release(); // a second release frees nothing more
  // Only a question that queued is told it waited (the query then looks again for an answer that came meanwhile).
  assert.deepEqual([first.waited, other.waited, (await second).waited], [false, false, true]);
  (await second).release();
  (await third).release();
  assert.deepEqual(order, [2, 3]);

  const held = await slots.acquire("m", "k");
  await assert.rejects(slots.acquire("m", "k"), /every answer slot of m is busy \(none free within 200 ms\)/);
  // A client that leaves gives up its place: the next in line gets the slot.
  const client = new AbortController();
  const leaving = slots.acquire("m", "k", () => client.signal);
  const next = inLine(4);
  client.abort("Client connection prematurely closed.");
  await assert.rejects(leaving, { name: "AbortError", message: "the client left while waiting for an answer slot" });
  held.release();
  (await next).release();
  assert.deepEqual(order, [2, 3, 4]);

  const timed = createAnswerSlots({ slots: 1, maxWaitMs: 300 });
  const once = await timed.acquire("m", "k");
  await delay(200);
  once.release(); // the average hold: about 200 ms
  const again = await timed.acquire("m", "k");
  const waiter = timed.acquire("m", "k"); // about 200 ms to wait: queued
  await assert.rejects(timed.acquire("m", "k"), (err: AppError) => {
    assert.equal(err.status, 503);
    assert.match(err.message, /every answer slot of m is busy \(1 waiting ahead, about \d+ ms\)/);
    return true;
  });
  again.release();
  (await waiter).release();

  // A slot given back without a model call (its question found the answer meanwhile) leaves the average alone: ten
  // such at about 0 ms would have brought it from 250 to 250 x 0.8^10, 27 ms, and the third question would queue.
  const averaged = createAnswerSlots({ slots: 1, maxWaitMs: 300 });
  const long = await averaged.acquire("m", "k");
  await delay(250);
  long.release();
  for (let i = 0; i < 10; i++) (await averaged.acquire("m", "k")).unused();
  const busy = await averaged.acquire("m", "k");
  const queued = averaged.acquire("m", "k"); // about 250 ms to wait
  await assert.rejects(averaged.acquire("m", "k"), /1 waiting ahead, about \d+ ms/); // about 500
  busy.release();
  (await queued).release();
});
