import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout } from "node:timers/promises";
import { createClient } from "redis";
import { MODEL_FAILED_MID_ANSWER, OLLAMA_BUSY } from "../fakes/ollama.ts";
import { OTHER_KEY, startApp, startStack, type TestApp, USER_KEY, type Stack } from "../support/app.ts";
import { type ApiResponse, api, parseSse } from "../support/http.ts";
import { metricValue, scrape } from "../support/metrics.ts";
import { waitFor } from "../support/process.ts";

const LIMIT = 40;
let stack: Stack;
let user: ReturnType<typeof api>;

before(async () => {
  stack = await startStack({
    OLLAMA_TIMEOUT_MS: "400",
    QDRANT_TIMEOUT_MS: "400",
    REDIS_COMMAND_TIMEOUT_MS: "100",
    READY_PROBE_TIMEOUT_MS: "500",
    DB_CONNECT_TIMEOUT_MS: "1000",
    RATE_LIMIT_PER_MINUTE: String(LIMIT),
  });
  user = api(stack.url, USER_KEY);
  const res = await user.post("/api/v1/documents", {
    documents: [
      { id: "tides", text: "Tides are caused by the gravitational pull of the moon on the oceans." },
      { id: "volcanoes", text: "Volcanoes erupt when magma rises through cracks in the crust." },
    ],
  });
  assert.equal(res.status, 201, res.text);
});
after(() => stack.stop());

const pick = (res: ApiResponse) => [res.status, res.body];

/** Detailed readiness (METRICS_PORT); the public one has the same status code. */
const ready = () => api(stack.metricsUrl).get("/health/ready");

test("with Redis stopped, queries still succeed uncached and the rate limit falls back to a per-process limit", async () => {
  const question = { query: "What causes tides in the oceans?" };
  assert.equal((await user.post("/api/v1/query", question)).body.cached, false);
  assert.equal((await user.post("/api/v1/query", question)).body.cached, true);

  const redisOperations = async () => {
    const metrics = await scrape(stack.metricsUrl);
    const errors = (use: string) => metricValue(metrics, "redis_operations_total", { use, result: "error" });
    return [
      ...["ok", "error"].map((result) => metricValue(metrics, "redis_operations_total", { result })),
      ...["cache", "ratelimit", "readiness"].map(errors),
    ];
  };
  await stack.redis.halt();
  const [okBefore, errorsBefore, ...byUseBefore] = await redisOperations();
  const held = await user.post("/api/v1/query", question);
  assert.equal(held.body.cached, true, "an answer this replica holds is still served without Redis");
  // Another top_k is another cache key: not held here, and Redis cannot answer.
  const during = await user.post("/api/v1/query", { ...question, top_k: 3 });
  assert.equal(during.status, 200, during.text);
  assert.equal(during.body.cached, false, "a cache error is a miss");
  assert.equal(during.body.sources[0].id, "tides");
  const other = await user.post("/api/v1/query", { query: "Why do volcanoes erupt?" });
  assert.equal(other.status, 200, other.text);
  assert.equal(other.body.sources[0].id, "volcanoes");

  const readiness = await ready();
  assert.equal(readiness.status, 200, "Redis is not critical");
  assert.equal(readiness.body.status, "degraded");
  assert.equal(readiness.body.checks.redis.status, "fail");
  assert.ok(metricValue(await scrape(stack.metricsUrl), "cache_requests_total", { cache: "response", result: "error" }) >= 2);
  // What ApiCacheErrors reads: every use of Redis failed, the held answer's rate limit and the readiness probe too.
  const [okDuring, errorsDuring, ...byUseDuring] = await redisOperations();
  assert.equal(okDuring, okBefore, "no Redis operation succeeds while it is stopped");
  assert.ok(errorsDuring - errorsBefore >= 4, `${errorsDuring - errorsBefore} Redis operations failed`);
  // Each use apart (the `use` label), so an operator reads which part of the app a failing Redis hurts.
  const failedByUse = byUseDuring.map((n, i) => n - byUseBefore[i]!);
  assert.ok(failedByUse[0]! >= 2 && failedByUse[1]! >= 1 && failedByUse[2]! >= 1, `cache, ratelimit, readiness: ${failedByUse}`);

  const limited = api(stack.url, OTHER_KEY);
  for (let i = 0; i < LIMIT; i++) {
    const res = await limited.get("/api/v1/sessions/none");
    assert.equal(res.status, 404, `request ${i}: ${res.text}`);
    assert.equal(res.headers.get("ratelimit-remaining"), String(LIMIT - i - 1));
  }
  const refused = await limited.get("/api/v1/sessions/none");
  assert.equal(refused.status, 429, "the per-process limit still applies");
  assert.ok(Number(refused.headers.get("retry-after")) >= 1);

  await stack.redis.start();
  await waitFor("redis reconnect", async () => (await ready()).body.checks.redis.status === "ok", 10_000);
  const again = { query: "How does the moon pull the oceans?" };
  assert.equal((await user.post("/api/v1/query", again)).body.cached, false);
  assert.equal((await user.post("/api/v1/query", again)).body.cached, true);
  const redis = createClient({ url: stack.redis.url });
  await redis.connect();
  try {
    // The restarted Redis started empty: an answer in it is one written since, so caching in Redis resumed.
    await waitFor("an answer cached in Redis", async () => (await redis.keys("response:*")).length > 0, 5_000);
  } finally {
    await redis.close();
  }
});

test("with Postgres stopped, readiness is 503 and writes fail with 503; after restart nothing acknowledged is lost", async () => {
  const session_id = "pg-outage";
  const before = await user.post("/api/v1/query", { query: "What moves the tides?", session_id });
  assert.equal(before.status, 200, before.text);

  await stack.pg.halt();
  try {
    const readiness = await ready();
    assert.equal(readiness.status, 503);
    assert.equal(readiness.body.status, "not_ready");
    assert.equal(readiness.body.checks.postgres.status, "fail");
    assert.ok(readiness.body.checks.postgres.error);
    assert.equal((await api(stack.url).get("/health")).status, 200, "liveness does not depend on Postgres");
    // Kubernetes' readiness probe: every replica shares Postgres, and out of service they would all be, so the load
    // balancer would answer its own 503 page instead of the JSON 503 below.
    assert.deepEqual(pick(await api(stack.url).get("/health/serving")), [200, { status: "serving" }]);

    const refused = await user.post("/api/v1/query", { query: "Where does magma come from?", session_id });
    assert.equal(refused.status, 503, refused.text);
    assert.match(refused.body.error, /^postgres unavailable: /);
    const ingest = await user.post("/api/v1/documents", { documents: [{ id: "deserts", text: "Deserts get little rain." }] });
    assert.equal(ingest.status, 503, ingest.text);
    assert.match(ingest.body.error, /^postgres unavailable: /);
  } finally {
    await stack.pg.start();
  }

  await waitFor("postgres ready", async () => (await ready()).status === 200, 10_000);
  const afterRestart = await user.post("/api/v1/query", { query: "What erupts from volcanoes?", session_id });
  assert.equal(afterRestart.status, 200, afterRestart.text);
  const session = await user.get(`/api/v1/sessions/${session_id}`);
  assert.deepEqual(
    session.body.turns.map((t: { request_id: string }) => t.request_id),
    [before.body.request_id, afterRestart.body.request_id],
    "every acknowledged turn is stored, the refused one is not",
  );
});

test("a dependency slower than READY_PROBE_TIMEOUT_MS fails its readiness check at that deadline, not its client's own", async () => {
  // Qdrant's client waits 5 s for an answer: only the probe's own deadline ends the check in time.
  const replica = await startApp({ ...stack.env, QDRANT_TIMEOUT_MS: "5000" });
  const deadline = replica.config.READY_PROBE_TIMEOUT_MS;
  stack.fakes.qdrant.knobs.latencyMs = 2_000;
  try {
    const started = performance.now();
    const readiness = await api(replica.metricsUrl).get("/health/ready");
    const ms = performance.now() - started;
    assert.equal(readiness.body.checks.qdrant.status, "fail", readiness.text);
    assert.equal(readiness.body.checks.qdrant.error, `no answer within ${deadline} ms`);
    assert.ok(ms < 2_000, `readiness answered in ${Math.round(ms)} ms, not at the answer`);
  } finally {
    stack.fakes.qdrant.knobs.latencyMs = 0;
    await replica.stop();
  }
});

test("Ollama slower than OLLAMA_TIMEOUT_MS gives 504; an Ollama error gives 502; its full queue 503; all are counted", async () => {
  stack.fakes.ollama.knobs.latencyMs = 1500;
  try {
    const started = Date.now();
    const slow = await user.post("/api/v1/query", { query: "A question nobody asked before about glaciers" });
    assert.equal(slow.status, 504, slow.text);
    assert.match(slow.body.error, /^ollama did not answer within 400 ms/);
    assert.ok(Date.now() - started < 1400, "the timeout cut the wait short");
  } finally {
    stack.fakes.ollama.knobs.latencyMs = 0;
  }
  stack.fakes.ollama.knobs.failStatus = 500;
  try {
    const failed = await user.post("/api/v1/query", { query: "Another fresh question about deserts" });
    assert.equal(failed.status, 502, failed.text);
    assert.match(failed.body.error, /^ollama request failed: HTTP 500: the model failed to generate a response/);
  } finally {
    stack.fakes.ollama.knobs.failStatus = null;
  }
  stack.fakes.ollama.knobs.failStatus = 503; // its queue is full
  try {
    const busy = await user.post("/api/v1/query", { query: "A third fresh question about tundra" });
    assert.equal(busy.status, 503, busy.text);
    assert.equal(busy.body.error, `ollama unavailable: ${OLLAMA_BUSY}`);
    assert.equal(busy.headers.get("retry-after"), "1");
  } finally {
    stack.fakes.ollama.knobs.failStatus = null;
  }
  const metrics = await scrape(stack.metricsUrl);
  assert.equal(metricValue(metrics, "agent_errors_total", { agent_name: "rag", error_type: "ollama_timeout" }), 1);
  assert.equal(metricValue(metrics, "agent_errors_total", { agent_name: "rag", error_type: "ollama_error" }), 1);
  assert.equal(metricValue(metrics, "agent_errors_total", { agent_name: "rag", error_type: "ollama_unavailable" }), 1);
  assert.ok(metricValue(metrics, "tool_calls_total", { tool_name: "ollama_embed", success: "false" }) >= 2);
  assert.equal((await user.post("/api/v1/query", { query: "Another fresh question about deserts" })).status, 200, "recovers");
});

test("a failing, busy or slow Qdrant gives 502, 503 or 504 with a reason", async () => {
  try {
    stack.fakes.qdrant.knobs.failStatus = 500;
    const failed = await user.post("/api/v1/query", { query: "Qdrant outage question" });
    assert.equal(failed.status, 502, failed.text);
    assert.match(failed.body.error, /^qdrant request failed: HTTP 500/);
    stack.fakes.qdrant.knobs.failStatus = 503; // to retry later, as Ollama's 503 is
    const busy = await user.post("/api/v1/query", { query: "Qdrant busy question" });
    assert.equal(busy.status, 503, busy.text);
    assert.match(busy.body.error, /^qdrant unavailable: HTTP 503/);
    assert.equal(busy.headers.get("retry-after"), "1");
  } finally {
    stack.fakes.qdrant.knobs.failStatus = null;
  }
  stack.fakes.qdrant.knobs.latencyMs = 1500;
  try {
    const slow = await user.post("/api/v1/query", { query: "Qdrant slow question" });
    assert.equal(slow.status, 504, slow.text);
    assert.match(slow.body.error, /^qdrant did not answer within 400 ms/);
  } finally {
    stack.fakes.qdrant.knobs.latencyMs = 0;
  }
});

test("a search the app gave up on stops in Qdrant too, and Qdrant's own timeout (408) is a 504", async () => {
  const { qdrant } = stack.fakes;
  qdrant.knobs.searchMs = 5_000;
  try {
    const slow = await user.post("/api/v1/query", { query: "A search Qdrant is slow to finish" });
    assert.equal(slow.status, 504, slow.text);
    assert.equal(qdrant.searching(), 1, "the search runs on after the app's deadline (400 ms)");
    // Qdrant rounds the deadline up to whole seconds: it stops the search at 1 s, not its default 60 s.
    await waitFor("Qdrant's search stopped", async () => qdrant.searching() === 0, 2_000);
  } finally {
    qdrant.knobs.searchMs = 0;
  }
  qdrant.knobs.failStatus = 408;
  try {
    const timedOut = await user.post("/api/v1/query", { query: "A search Qdrant timed out" });
    assert.equal(timedOut.status, 504, timedOut.text);
    assert.match(timedOut.body.error, /^qdrant request failed: HTTP 408/);
  } finally {
    qdrant.knobs.failStatus = null;
  }
});

test("a model failure while streaming ends the stream with an error event, counted as its 502, and stores no turn", async () => {
  const question = "Tell me about the crust of volcanoes";
  // Warm the embedding cache so only the chat call reaches the failing model.
  await user.post("/api/v1/query", { query: question, filter: { none: "x" } });
  const counted = async () => {
    const metrics = await scrape(stack.metricsUrl);
    const of = (status: string) => metricValue(metrics, "http_requests_total", { route: "/api/v1/query", status });
    return { ok: of("200"), failed: of("502") };
  };
  stack.fakes.ollama.knobs.failStatus = 500;
  try {
    const before = await counted();
    const res = await user.post("/api/v1/query", { query: question, stream: true, session_id: "stream-fail" });
    assert.equal(res.status, 200);
    const events = parseSse(res.text);
    assert.deepEqual(
      events.map((e) => e.event),
      ["meta", "error"],
    );
    assert.match(events[1]!.data.error, /^ollama request failed: HTTP 500/);
    // Counted with the error's status, where the 5xx alert reads it, not as the 200 its head said.
    await waitFor("the stream counted", async () => (await counted()).failed === before.failed + 1, 2_000);
    assert.equal((await counted()).ok, before.ok);
  } finally {
    stack.fakes.ollama.knobs.failStatus = null;
  }
  assert.equal((await user.get("/api/v1/sessions/stream-fail")).status, 404, "no turn, so no session");
});

test("a generation that fails fails the requests following it too, and the next ask calls the model again", async () => {
  const question = { query: "How deep do the cracks under volcanoes go?" };
  const { ollama } = stack.fakes;
  // Warm the embedding cache so only the chat call reaches the failing model.
  assert.equal((await user.post("/api/v1/query", { ...question, filter: { none: "x" } })).status, 200);
  const chats = ollama.calls["/api/chat"] ?? 0;
  Object.assign(ollama.knobs, { failStatus: 500, latencyMs: 200 });
  let answers: ApiResponse[];
  try {
    answers = await Promise.all([
      user.post("/api/v1/query", question),
      user.post("/api/v1/query", question),
      user.post("/api/v1/query", { ...question, stream: true }),
    ]);
  } finally {
    Object.assign(ollama.knobs, { failStatus: null, latencyMs: 0 });
  }
  // One, or two where a JSON request leads: a stream follows only a streamed answer, a JSON request either (generations.ts).
  const burst = ollama.calls["/api/chat"]! - chats;
  assert.ok(burst === 1 || burst === 2, `${burst} model calls for the three`);
  const [first, second, streamed] = answers;
  for (const res of [first!, second!]) {
    assert.equal(res.status, 502, res.text);
    assert.match(res.body.error, /^ollama request failed: HTTP 500/);
  }
  assert.deepEqual(
    parseSse(streamed!.text).map((e) => e.event),
    ["meta", "error"],
  );
  const again = await user.post("/api/v1/query", question);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.cached, false);
  assert.equal(ollama.calls["/api/chat"], chats + burst + 1);
});

test("a model failing mid-answer ends the stream and every request following it with its error, and stores no turn", async () => {
  const question = { query: "Where does the magma under volcanoes come from?" };
  const { ollama } = stack.fakes;
  assert.equal((await user.post("/api/v1/query", { ...question, filter: { none: "x" } })).status, 200, "embedding cached");
  const chats = ollama.calls["/api/chat"] ?? 0;
  Object.assign(ollama.knobs, { tokenDelayMs: 30, failAfterChunks: 3 });
  let answers: ApiResponse[];
  try {
    const leader = user.post("/api/v1/query", { ...question, stream: true, session_id: "mid-answer-leader" });
    await waitFor("the leader's model call", async () => ollama.calls["/api/chat"] === chats + 1, 5_000);
    answers = await Promise.all([
      leader,
      user.post("/api/v1/query", { ...question, stream: true, session_id: "mid-answer-stream" }),
      user.post("/api/v1/query", { ...question, session_id: "mid-answer-json" }),
    ]);
  } finally {
    Object.assign(ollama.knobs, { tokenDelayMs: 0, failAfterChunks: null });
  }
  const [leader, streamed, json] = answers;
  const expected = `ollama request failed: ${MODEL_FAILED_MID_ANSWER}`;
  for (const res of [leader!, streamed!]) {
    const events = parseSse(res.text);
    assert.equal(events[0]!.event, "meta");
    assert.deepEqual(events.at(-1), { event: "error", data: { error: expected, code: "ollama_error" } });
    const text = events.filter((e) => e.event === "token").map((e) => e.data.content as string);
    assert.equal(text.join("").split(/\s+/).filter(Boolean).length, 3, "the three chunks sent before the failure");
  }
  assert.equal(json!.status, 502, json!.text);
  assert.equal(json!.body.error, expected);
  assert.equal(ollama.calls["/api/chat"], chats + 1);
  for (const session of ["mid-answer-leader", "mid-answer-stream", "mid-answer-json"])
    assert.equal((await user.get(`/api/v1/sessions/${session}`)).status, 404, `${session}: no turn stored`);
  const again = await user.post("/api/v1/query", question);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.cached, false);
});

/** A stream on `replica` whose client reads its first token and leaves. */
async function leaveAfterFirstToken(replica: TestApp, query: string): Promise<void> {
  const leaving = new AbortController();
  const res = await fetch(`${replica.url}/api/v1/query`, {
    method: "POST",
    headers: { authorization: `Bearer ${USER_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ query, stream: true }),
    signal: leaving.signal,
  });
  const reader = res.body!.getReader();
  let text = "";
  while (!text.includes("event: token")) text += new TextDecoder().decode((await reader.read()).value);
  leaving.abort();
}

test("a model failing after a stream's client left is a 499, and no agent error", async () => {
  await withAnswerSlots({}, { parallel: 2, generationMs: 0 }, async (_client, replica) => {
    const { ollama } = stack.fakes;
    Object.assign(ollama.knobs, { tokenDelayMs: 100, failAfterChunks: 4 });
    try {
      await leaveAfterFirstToken(replica, "Which client leaves a stream about volcanoes early?");
      const metrics = () => scrape(replica.metricsUrl);
      await waitFor(
        "the answer's end, its failure",
        async () => metricValue(await metrics(), "tool_duration_seconds_count", { tool_name: "ollama_chat" }) === 1,
      );
      await waitFor(
        "the stream counted",
        async () => metricValue(await metrics(), "http_requests_total", { route: "/api/v1/query" }) === 1,
      );
      const exposition = await metrics();
      assert.equal(metricValue(exposition, "http_requests_total", { route: "/api/v1/query", status: "499" }), 1);
      assert.equal(metricValue(exposition, "agent_errors_total"), 0, "the model failed after its client had left");
    } finally {
      Object.assign(ollama.knobs, { tokenDelayMs: 0, failAfterChunks: null });
    }
  });
});

test("a JSON request answered 504 while it follows a streamed answer is let go at the next token", async () => {
  await withAnswerSlots({ REQUEST_TIMEOUT_MS: "600" }, { parallel: 2, generationMs: 0 }, async (client, replica) => {
    const { ollama } = stack.fakes;
    ollama.knobs.tokenDelayMs = 100; // about 2 s for the answer
    const question = { query: "Which JSON request outlives its deadline about tides?" };
    try {
      const streamed = client.post("/api/v1/query", { ...question, stream: true });
      await waitFor("the stream's model call", async () => stack.fakes.ollama.load.generated === 1);
      const json = await client.post("/api/v1/query", question);
      assert.equal(json.status, 504, json.text);
      const metrics = () => scrape(replica.metricsUrl);
      await waitFor("the JSON request let go", async () => metricValue(await metrics(), "active_queries") === 1, 1_000);
      assert.equal(
        metricValue(await metrics(), "tool_duration_seconds_count", { tool_name: "ollama_chat" }),
        0,
        "let go while the answer is still generated",
      );
      assert.equal(parseSse((await streamed).text).at(-1)!.event, "done", "the stream it followed goes on");
    } finally {
      ollama.knobs.tokenDelayMs = 0;
    }
  });
});

test("a model failing after a JSON request's client left is a 499, and no agent error", async () => {
  await withAnswerSlots({}, { parallel: 2, generationMs: 0 }, async (client, replica) => {
    const { ollama } = stack.fakes;
    const question = { query: "Which JSON client leaves before its magma answer?" };
    assert.equal((await client.post("/api/v1/query", { ...question, filter: { none: "x" } })).status, 200, "embedding cached");
    Object.assign(ollama.knobs, { latencyMs: 300, failStatus: 500 });
    try {
      const leaving = new AbortController();
      const gone = api(replica.url, USER_KEY, { signal: leaving.signal })
        .post("/api/v1/query", question)
        .catch((err: Error) => err.name);
      await setTimeout(100); // the model call under way
      leaving.abort();
      assert.equal(await gone, "AbortError");
      const metrics = () => scrape(replica.metricsUrl);
      await waitFor(
        "the model's failure",
        async () => metricValue(await metrics(), "tool_calls_total", { tool_name: "ollama_chat", success: "false" }) === 1,
      );
      await waitFor(
        "the request counted",
        async () => metricValue(await metrics(), "http_requests_total", { route: "/api/v1/query", status: "499" }) === 1,
      );
      assert.equal(metricValue(await metrics(), "agent_errors_total"), 0, "the model failed after its client had left");
    } finally {
      Object.assign(ollama.knobs, { latencyMs: 0, failStatus: null });
    }
  });
});

test("a stream whose client left stops following its answer at the next token; the answer goes on, and is cached", async () => {
  await withAnswerSlots({}, { parallel: 2, generationMs: 0 }, async (client, replica) => {
    const { ollama } = stack.fakes;
    ollama.knobs.tokenDelayMs = 100; // about 2 s for the answer
    const question = "Which client leaves a long stream about tides early?";
    try {
      await leaveAfterFirstToken(replica, question);
      const metrics = () => scrape(replica.metricsUrl);
      await waitFor("the query let go", async () => metricValue(await metrics(), "active_queries") === 0, 1_500);
      assert.equal(
        metricValue(await metrics(), "tool_duration_seconds_count", { tool_name: "ollama_chat" }),
        0,
        "let go while the answer is still generated",
      );
      await waitFor(
        "the answer's end",
        async () => metricValue(await metrics(), "tool_duration_seconds_count", { tool_name: "ollama_chat" }) === 1,
      );
      assert.equal(metricValue(await metrics(), "agent_token_usage_count"), 1, "its tokens counted, once");
    } finally {
      ollama.knobs.tokenDelayMs = 0;
    }
    const again = await client.post("/api/v1/query", { query: question });
    assert.equal(again.body.cached, true, "the answer was cached for the next ask");
  });
});

/**
 * `body` against a replica with answer slots (`env`), over the fake Ollama with `fake.parallel` slots holding each
 * answer `fake.generationMs`, as Ollama 0.12 with a loaded model (the others queued in Ollama without limit).
 */
async function withAnswerSlots(
  env: Record<string, string>,
  fake: { parallel: number; generationMs: number },
  body: (client: ReturnType<typeof api>, replica: TestApp) => Promise<void>,
): Promise<void> {
  // The rate limit (LIMIT a minute for the key, counted in Redis across replicas) is not under test here.
  const replica = await startApp({ ...stack.env, RATE_LIMIT_PER_MINUTE: "100000", ...env });
  Object.assign(stack.fakes.ollama.knobs, fake);
  Object.assign(stack.fakes.ollama.load, { generated: 0, peak: 0, wasted: 0 });
  try {
    await body(api(replica.url, USER_KEY), replica);
  } finally {
    Object.assign(stack.fakes.ollama.knobs, { parallel: null, generationMs: 0 });
    await replica.stop();
  }
}

test("a burst past Ollama's slots: each question answered or a quick 503 with Retry-After, never a 504", async () => {
  // The model's deadline well past the slot wait: a 503 that waited for it is told apart from a quick one on a loaded
  // machine (the slowest quick one took 0.9 s there).
  const env = { OLLAMA_MAX_ANSWERS: "2", OLLAMA_SLOT_WAIT_MS: "600", OLLAMA_TIMEOUT_MS: "2500" };
  await withAnswerSlots(env, { parallel: 2, generationMs: 300 }, async (client) => {
    const burst = (round: number) =>
      Promise.all(
        Array.from({ length: 24 }, async (_, i) => {
          const sentAt = performance.now();
          const answer = await client.post("/api/v1/query", { query: `Burst ${round} question ${i} on tides` });
          return Object.assign(answer, { ms: performance.now() - sentAt });
        }),
      );
    for (const round of [1, 2]) {
      const answers = await burst(round);
      const statuses = answers.map((a) => a.status);
      assert.deepEqual([...new Set(statuses)].sort(), [200, 503], `round ${round}: ${statuses.join(" ")}`);
      for (const busy of answers.filter((a) => a.status === 503)) {
        assert.match(busy.body.error, /^ollama unavailable: every answer slot of \S+ is busy/);
        assert.equal(busy.headers.get("retry-after"), "1");
        // Quick: at most its wait for a slot, never as late as the model's deadline (a 504's time).
        assert.ok(busy.ms < Number(env.OLLAMA_TIMEOUT_MS), `a 503 after ${Math.round(busy.ms)} ms`);
      }
      if (round === 2) {
        // Answers have been timed: a question that would wait past OLLAMA_SLOT_WAIT_MS is refused without waiting.
        const atOnce = answers.filter((a) => /waiting ahead, about \d+ ms/.test(a.body.error ?? ""));
        assert.ok(atOnce.length >= 12, `${atOnce.length} refused at once: ${answers.map((a) => a.body.error).join("; ")}`);
      }
    }
    const { load } = stack.fakes.ollama;
    assert.equal(load.wasted, 0, "no answer generated for a request that had given up");
    assert.ok(load.peak <= 2);
  });
});

test("questions waiting for a slot follow the same question's answer once it starts, instead of waiting on to a 503", async () => {
  // Each answer takes a second; a question waits at most 1.5 s for the one slot.
  const env = { OLLAMA_MAX_ANSWERS: "1", OLLAMA_SLOT_WAIT_MS: "1500", OLLAMA_TIMEOUT_MS: "4000" };
  await withAnswerSlots(env, { parallel: 1, generationMs: 1_000 }, async (client) => {
    const { load } = stack.fakes.ollama;
    const first = client.post("/api/v1/query", { query: "Which question holds the slot first about tides?" });
    await waitFor("the first answer generating", async () => load.generated === 1);
    // The first of these gets the slot at about 1 s and starts the answer; the others waited for a slot of their own
    // until 1.5 s and got a 503 while that answer ran.
    const same = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        client.post("/api/v1/query", { query: "Which question waits in line about volcanoes?", stream: i % 2 === 1 }),
      ),
    );
    assert.equal((await first).status, 200);
    assert.deepEqual(
      same.map((a) => a.status),
      [200, 200, 200, 200, 200],
      same.map((a) => a.text.slice(0, 120)).join("; "),
    );
    assert.equal(load.generated, 2, "one answer for the five");
  });
});

test("a stream waiting for a slot when a JSON request of its question takes one follows that answer token by token", async () => {
  // About 20 tokens at 40 ms: a whole unstreamed answer takes 800 ms, past OLLAMA_TIMEOUT_MS; a stream's deadline
  // restarts with each token. A freed slot goes to the key holding fewer, the other key's JSON request; the stream,
  // waiting first, followed the unstreamed answer it started: no token, then its 504 (probe CH).
  const env = { OLLAMA_MAX_ANSWERS: "2", OLLAMA_SLOT_WAIT_MS: "5000", OLLAMA_TIMEOUT_MS: "400" };
  await withAnswerSlots(env, { parallel: 2, generationMs: 0 }, async (client, replica) => {
    const { load, knobs } = stack.fakes.ollama;
    knobs.tokenDelayMs = 40;
    try {
      // Short questions all, so the router sends them to one model, whose two slots the key's two streams hold.
      const blockers = ["tides", "moons"].map((topic) =>
        client.post("/api/v1/query", { query: `Which question holds a slot first about ${topic}?`, stream: true }),
      );
      await waitFor("both slots generating", async () => load.generated === 2);
      const question = { query: "Which stream waits its turn about magma?" };
      const streamed = client.post("/api/v1/query", { ...question, stream: true });
      await setTimeout(100); // waiting for a slot
      const json = await api(replica.url, OTHER_KEY).post("/api/v1/query", question);
      const events = parseSse((await streamed).text);
      assert.equal(events.at(-1)!.event, "done", JSON.stringify(events.at(-1)));
      assert.ok(events.filter((e) => e.event === "token").length > 3, "its tokens as they come");
      assert.equal(json.status, 200, json.text);
      for (const blocker of blockers) assert.equal(parseSse((await blocker).text).at(-1)!.event, "done");
      assert.equal(load.generated, 3, "one answer for the two");
    } finally {
      knobs.tokenDelayMs = 0;
    }
  });
});

test("questions told 503 by the shutdown notice while they wait for an answer slot leave the queue: no answer is generated for them", async () => {
  const env = { OLLAMA_MAX_ANSWERS: "1", OLLAMA_SLOT_WAIT_MS: "10000", OLLAMA_TIMEOUT_MS: "5000" };
  await withAnswerSlots(env, { parallel: 1, generationMs: 1_500 }, async (client, replica) => {
    const { load } = stack.fakes.ollama;
    const first = client.post("/api/v1/query", { query: "Which question holds the slot through the drain?" });
    await waitFor("the first answer generating", async () => load.generated === 1);
    const waiting = [1, 2].map((i) => client.post("/api/v1/query", { query: `Which question ${i} waits through the drain?` }));
    await setTimeout(100); // waiting for the slot
    // The notice a second before the end of a 2 s drain tells all three; the first answer ends at about 1.6 s, and
    // its slot went to a waiter already told.
    const closing = replica.server.close(2_000);
    const answers = await Promise.all([first, ...waiting]);
    assert.deepEqual(
      answers.map((a) => [a.status, a.body.code]),
      Array(3).fill([503, "shutting_down"]),
    );
    await closing;
    // The drain ended with the notice's answers; the first answer, 1.5 s long, ends after it and frees its slot.
    await setTimeout(1_800);
    assert.equal(load.generated, 1, "no model call for the questions already answered");
  });
});

test("a question following another request's answer by its cache key caches it only if it was asked with the same sources", async () => {
  const env = { OLLAMA_MAX_ANSWERS: "1", OLLAMA_SLOT_WAIT_MS: "5000", OLLAMA_TIMEOUT_MS: "4000" };
  await withAnswerSlots(env, { parallel: 1, generationMs: 900 }, async (client) => {
    const { load } = stack.fakes.ollama;
    const { qdrant } = stack.fakes;
    const searches = () => qdrant.calls["/collections/:name/points/query"] ?? 0;
    // Both questions of one shape: routed to the same model, whose one slot the first holds.
    const first = client.post("/api/v1/query", { query: "What do the stars and the harbours make together?" });
    await waitFor("the first answer generating", async () => load.generated === 1);
    const question = { query: "What do the moon and the oceans make together?" };
    const collection = qdrant.collections.get("documents")!;
    qdrant.collections.delete("documents"); // a lost volume, its snapshot restored a moment later
    const searched = searches();
    const blind = client.post("/api/v1/query", question); // found no collection: not cacheable; waits for the slot
    await waitFor("its search", async () => searches() > searched);
    qdrant.collections.set("documents", collection);
    const searchedBlind = searches();
    const seeing = client.post("/api/v1/query", question); // finds the chunks, waits, then follows the blind answer
    await waitFor("its search", async () => searches() > searchedBlind);
    assert.equal(load.generated, 1, "both wait for the slot");
    assert.equal((await first).status, 200);
    const [blindAnswer, seeingAnswer] = await Promise.all([blind, seeing]);
    assert.deepEqual(
      [blindAnswer.body.sources.length, seeingAnswer.body.sources.length, seeingAnswer.body.cached],
      [0, 0, true],
      "the second followed the first's answer",
    );
    // Before, the follower cached the answer without sources under the question's key, for RESPONSE_CACHE_TTL_SECONDS.
    const later = await client.post("/api/v1/query", question);
    assert.equal(later.body.cached, false, later.text);
    assert.ok(later.body.sources.length > 0, later.text);
  });
});

test("a question answered 504 while it waits for an answer slot leaves the queue: it takes no slot from those behind it", async () => {
  // A request deadline shorter than the slot wait, one slot, answers of a second each.
  const env = { REQUEST_TIMEOUT_MS: "1500", OLLAMA_MAX_ANSWERS: "1", OLLAMA_SLOT_WAIT_MS: "10000", OLLAMA_TIMEOUT_MS: "4000" };
  await withAnswerSlots(env, { parallel: 1, generationMs: 1_000 }, async (client, replica) => {
    const { load } = stack.fakes.ollama;
    const burst = await Promise.all(
      Array.from({ length: 5 }, (_, i) => client.post("/api/v1/query", { query: `Burst question ${i} about harbour tides?` })),
    );
    assert.deepEqual(burst.map((r) => r.status).sort(), [200, 504, 504, 504, 504]);
    // The question given the slot at 1 s, told 504 at 1.5 s, still has its answer generated (and cached) till 2 s.
    await setTimeout(700);
    // Before: every question told 504 waited on in the queue, each then held the slot for a generation nobody read,
    // one after another, and a new question waited behind them all to its own 504.
    assert.ok(load.generated <= 2, `${load.generated} answers generated for the burst`);
    // Counted as the agent's errors, as a 504 of the request is (the 5xx alerts read them).
    const timeouts = metricValue(await scrape(replica.metricsUrl), "agent_errors_total", {
      agent_name: "rag",
      error_type: "request_timeout",
    });
    assert.ok(timeouts >= 3, `${timeouts} request timeouts counted`);
    const late = await client.post("/api/v1/query", { query: "A late question about harbour tides?" });
    assert.equal(late.status, 200, late.text);
  });
});

test("a replica asks Ollama for its share of the ready pods' slots, counted through DNS, not the share it started with", async () => {
  // "localhost" stands for both headless Services: as many Ollama pods as API pods, so the share is OLLAMA_NUM_PARALLEL.
  const dns = { OLLAMA_PODS_DNS: "localhost", API_PODS_DNS: "localhost", OLLAMA_NUM_PARALLEL: "1" };
  const env = { ...dns, OLLAMA_MAX_ANSWERS: "3", OLLAMA_SLOT_WAIT_MS: "5000" };
  await withAnswerSlots(env, { parallel: 3, generationMs: 200 }, async (client) => {
    await setTimeout(200); // the first count, at start
    const questions = [1, 2, 3].map((i) => client.post("/api/v1/query", { query: `Shared slot question ${i} on tides` }));
    assert.deepEqual(
      (await Promise.all(questions)).map((a) => a.status),
      [200, 200, 200],
    );
    assert.equal(stack.fakes.ollama.load.peak, 1, "answers asked of Ollama at once");
  });
});

test("a client that hangs up while its question waits for an answer slot gives up its place: no answer is generated for it", async () => {
  const env = { OLLAMA_MAX_ANSWERS: "1", OLLAMA_SLOT_WAIT_MS: "5000", OLLAMA_TIMEOUT_MS: "2000" };
  await withAnswerSlots(env, { parallel: 1, generationMs: 500 }, async (client, replica) => {
    const { load } = stack.fakes.ollama;
    const first = client.post("/api/v1/query", { query: "Who holds the only slot about tides?" });
    await waitFor("the first answer generating", async () => load.generated === 1);
    const leaving = new AbortController();
    const gone = api(replica.url, USER_KEY, { signal: leaving.signal })
      .post("/api/v1/query", { query: "Who leaves before a slot frees up?" })
      .catch((err: Error) => err.name);
    await setTimeout(100); // waiting for the slot
    leaving.abort();
    const third = client.post("/api/v1/query", { query: "Who gets the slot next about volcanoes?" });
    assert.equal(await gone, "AbortError");
    assert.deepEqual([(await first).status, (await third).status], [200, 200]);
    assert.equal(load.generated, 2, "no answer generated for the client that left");
    const count = async (status: string) =>
      metricValue(await scrape(replica.metricsUrl), "http_requests_total", { route: "/api/v1/query", status });
    await waitFor("the question that lost its client counted as 499", async () => (await count("499")) === 1, 5_000);
    assert.equal(metricValue(await scrape(replica.metricsUrl), "agent_errors_total"), 0, "a client leaving is no error");
  });
});
