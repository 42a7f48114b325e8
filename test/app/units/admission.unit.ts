import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { AppError } from "../../../app/src/errors.ts";
import { createAnswerSlots } from "../../../app/src/services/answer-slots.ts";
import { createRateLimiter } from "../../../app/src/services/ratelimit.ts";
import { createAuthenticator } from "../../../app/src/middleware/auth.ts";
import { sha256 } from "../../../app/src/sha256.ts";
import type { Cache } from "../../../app/src/services/cache.ts";

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
  // A timer fires late, never early: the second admission stays in the window unless the checks after it are 750 ms
  // late (this process also loads the other check modules meanwhile; 100 ms of margin failed a CI run).
  const limiter = createRateLimiter(failingCache, 2, 1_000);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  assert.equal((await limiter.check("k")).allowed, true);
  await sleep(800);
  assert.equal((await limiter.check("k")).allowed, true);
  assert.equal((await limiter.check("k")).allowed, false, "two in the last second");
  await sleep(250); // the first left the window, the second has not
  const again = await limiter.check("k");
  assert.deepEqual([again.allowed, again.remaining], [true, 0]);
  assert.equal((await limiter.check("k")).allowed, false);
  await sleep(1_050);
  for (let i = 0; i < 2; i++) assert.equal((await limiter.check("k")).allowed, true, `after the window, check ${i}`);
});

test("the per-process log forgets a full window's admissions once they leave it, however many it held", async () => {
  // Over 64 admissions that all left the window: the log is compacted, and counting must restart from its new start.
  const limiter = createRateLimiter(failingCache, 100, 200);
  const admitted = async () =>
    (await Promise.all(Array.from({ length: 101 }, () => limiter.check("k")))).filter((d) => d.allowed).length;
  assert.equal(await admitted(), 100);
  await delay(250);
  assert.equal(await admitted(), 100, "the limit again, not more, in the next window");
});

test("while Redis fails, the per-process log holds 10,000 keys at most, forgetting the least recently used", async () => {
  // A client cycling through made-up keys must not grow this replica's memory for as long as the outage lasts.
  const limiter = createRateLimiter(failingCache, 1, 60_000);
  const allowed = async (key: string) => (await limiter.check(key)).allowed;
  assert.equal(await allowed("first"), true);
  assert.equal(await allowed("second"), true);
  for (let i = 0; i < 9_998; i++) await allowed(`other-${i}`);
  assert.equal(await allowed("first"), false, "10,000 keys: every one still counted");
  await allowed("one-more"); // the 10,001st: "second" is now the least recently used
  assert.equal(await allowed("first"), false, "used a moment ago: kept");
  assert.equal(await allowed("second"), true, "the least recently used is forgotten");
});

test("a busy key's leases grow to LEASE_SHARE (5 %) of its limit, no larger", async () => {
  const sizes: number[] = [];
  let count = 0;
  const slidingWindow = async (_key: string, _window: string, limit: string, _prefix: string, size: string) => {
    sizes.push(Number(size));
    const granted = Math.min(Number(size), Number(limit) - count);
    count += granted;
    return [granted, count, 60_000];
  };
  const redis = { run: async (call: (c: unknown) => unknown) => call({ slidingWindow }) };
  const limiter = createRateLimiter(redis as unknown as Cache, 1_000);
  for (let i = 0; i < 300; i++) assert.equal((await limiter.check("k")).allowed, true);
  assert.equal(Math.max(...sizes), 50, `lease sizes asked for: ${sizes.join(", ")}`);
});

/** Answer slots of model `m` whose average hold is about `holdMs`: one answer held that long first. */
async function slotsHolding(opts: Parameters<typeof createAnswerSlots>[0], holdMs: number) {
  const slots = createAnswerSlots(opts);
  const timed = await slots.acquire("m", "t");
  await delay(holdMs);
  timed.release();
  return slots;
}

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

test("answer slots: with no wait allowed (OLLAMA_SLOT_WAIT_MS 0), a busy model is a 503 to retry, not the request's 504", async () => {
  const slots = createAnswerSlots({ slots: 1, maxWaitMs: 0 });
  const held = await slots.acquire("m", "a");
  const passed = () => ({ status: 504, type: "request_timeout" }) as unknown as AppError;
  // Before: the request's own 504, 22 ms into a 60 s deadline (probe BR).
  await assert.rejects(slots.acquire("m", "b", undefined, { at: performance.now() + 60_000, passed }), (err: AppError) => {
    assert.equal(err.status, 503, err.message);
    assert.match(err.message, /every answer slot of m is busy/);
    return true;
  });
  held.release();
});

test("answer slots: a question's wait is estimated from the questions served before it, not every key's backlog", async () => {
  const slots = await slotsHolding({ slots: 2, maxWaitMs: 240 }, 100);
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

test("answer slots: a question whose deadline comes before its expected wait is a 503 at once, not a 504 after waiting", async () => {
  const slots = await slotsHolding({ slots: 1, maxWaitMs: 1_000 }, 100);
  const held = await slots.acquire("m", "k");
  const passed = () => ({ status: 504, type: "request_timeout" }) as unknown as AppError;
  // Waiting, it would end at its deadline: a 504.
  await assert.rejects(slots.acquire("m", "k", undefined, { at: performance.now() + 50, passed }), (err: AppError) => {
    assert.equal(err.status, 503, err.message);
    assert.match(err.message, /0 waiting ahead, about \d+ ms/);
    return true;
  });
  held.release();
});

test("answer slots: another key's question waiting at the same hold level counts as ahead: it is served first", async () => {
  // b's wait, one hold, fits in maxWaitMs; two holds do not.
  const slots = await slotsHolding({ slots: 1, maxWaitMs: 350 }, 200);
  const held = await slots.acquire("m", "a");
  const waiting = slots.acquire("m", "b"); // about 200 ms: queued
  // c's key and b's both hold none, and b came first: c waits for a's slot and b's, about 400 ms.
  const refused = assert.rejects(slots.acquire("m", "c"), /1 waiting ahead, about \d+ ms/);
  held.release();
  (await waiting).release();
  await refused;
});

test("answer slots: the expected wait uses the running average of timed holds; a slot given back unused does not count", async (t) => {
  let now = 0;
  t.mock.method(performance, "now", () => now);
  const hold = async (slots: ReturnType<typeof createAnswerSlots>, ms: number, how: "release" | "unused" = "release") => {
    const slot = await slots.acquire("m", "t");
    now += ms;
    slot[how]();
  };
  const slots = createAnswerSlots({ slots: 1, maxWaitMs: 1_000 });
  await hold(slots, 500);
  await hold(slots, 1_500); // the average moves a fifth of the way: 500 + 0.2 x 1,000 = 700 ms
  await hold(slots, 60_000, "unused"); // freed without a model call: the average stays 700 ms
  const held = await slots.acquire("m", "a");
  const waiting = slots.acquire("m", "b"); // one hold ahead of it, 700 ms: within maxWaitMs, queued
  await assert.rejects(slots.acquire("m", "c"), /1 waiting ahead, about 1400 ms/);
  held.release();
  (await waiting).release();
});
