import assert from "node:assert/strict";
import { test } from "node:test";
import { mapCache, ragOverRedis } from "../../support/cache-stubs.ts";
import type { AppError } from "../../../app/src/errors.ts";
import { createAnswerCache } from "../../../app/src/services/answer-cache.ts";
import { createSessionOwners } from "../../../app/src/services/session-owners.ts";

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
