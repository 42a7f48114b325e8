import assert from "node:assert/strict";
import { ragOverRedis } from "../../support/cache-stubs.ts";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { AppError } from "../../../app/src/errors.ts";
import { createGenerations } from "../../../app/src/services/generations.ts";
import type { ChatResult } from "../../../app/src/services/ollama.ts";
import { createTurnWriter } from "../../../app/src/services/turns.ts";
import { createMetrics } from "../../../app/src/metrics.ts";
import { waitFor } from "../../support/process.ts";

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
  const error = new AppError("ollama_error", "ollama request failed: HTTP 500");
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
  const store = {
    confirmReachable: async () => {},
    recordTurn: async (_owner: string, turn: { request_id: string }) => void recorded.push(turn.request_id),
  };
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
    confirmReachable: async () => {},
    recordTurn: async (_owner: string, turn: { request_id: string }) => {
      writing.push(turn.request_id);
      await written;
      recorded.push(turn.request_id);
    },
  };
  const metrics = createMetrics();
  const { rag } = ragOverRedis(() => null, Promise.resolve(), { ollama: ollama as never, store: store as never, metrics });
  const shuttingDown = new AppError("shutting_down", "server shutting down: ask again");
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

test("a generation that settles leaves a newer one under its keys, and a watch that ended hears of no more", async () => {
  const generations = createGenerations();
  const json = modelCall();
  const streamed = modelCall();
  const first = generations.start([], ["cache-key"], false, json.produce);
  // A streamed request does not follow a JSON request's generation: it starts its own under the same key.
  assert.equal(generations.find("cache-key", true), undefined);
  const second = generations.start([], ["cache-key"], true, streamed.produce);
  const result = { content: "Tides.", promptTokens: 5, completionTokens: 1, truncated: false, looped: false };
  await json.end(result);
  assert.equal(generations.find("cache-key", true), second, "a third ask would call the model again");
  assert.notEqual(second, first);
  await streamed.end(result);

  const heard: string[] = [];
  const unwatch = generations.watch(["cache-key"], false, () => heard.push("first"));
  unwatch();
  generations.start([], ["cache-key"], false, modelCall().produce);
  assert.deepEqual(heard, [], "a question that stopped waiting is not called again");
});

test("a question waiting for a slot hears only of a generation it can follow; a stream waiting makes one stream", () => {
  const generations = createGenerations();
  const heard: string[] = [];
  const unwatchJson = generations.watch(["question", "prompt"], false, (g) => heard.push(`json:${g.streamed}`));
  assert.equal(generations.streamWaiting(["question"]), false);
  const unwatchStream = generations.watch(["prompt"], true, (g) => heard.push(`stream:${g.streamed}`));
  assert.equal(generations.streamWaiting(["question", "prompt"]), true);
  assert.equal(generations.streamWaiting(["another"]), false);

  generations.start([], ["question", "prompt"], false, modelCall().produce);
  assert.deepEqual(heard, ["json:false"], "a stream is not told of an unstreamed answer; a watcher of both keys, once");
  heard.length = 0;
  generations.start([], ["prompt"], true, modelCall().produce);
  assert.deepEqual(heard, ["json:true", "stream:true"]);
  unwatchStream();
  unwatchJson();
  assert.equal(generations.streamWaiting(["prompt"]), false);
});
