import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { startStack, USER_KEY, type Stack } from "../support/app.ts";
import { api, rawQuery } from "../support/http.ts";
import { capturedLog } from "../support/log.ts";
import { metricValue, scrape } from "../support/metrics.ts";
import { waitFor } from "../support/process.ts";

let stack: Stack;
/** The app's lines at error level. */
const errors = capturedLog("error");
/** The request deadline: its head and body must arrive within half of it (start.ts). */
const REQUEST_TIMEOUT_MS = 2_000;

before(async () => {
  stack = await startStack({ RATE_LIMIT_PER_MINUTE: "10000", REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) }, errors.log);
  const res = await api(stack.url, USER_KEY).post("/api/v1/documents", {
    documents: [{ id: "tides", text: "Tides follow the moon." }],
  });
  assert.equal(res.status, 201, res.text);
});
after(() => stack.stop());

/** A connection to the stack's API, opened. */
async function openConnection() {
  const socket = connect(Number(new URL(stack.url).port), "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  return socket;
}

/** Turns stored for `question`, read on `db`. */
const turnsFor = async (db: postgres.Sql, question: string) =>
  (await db<{ n: number }[]>`SELECT count(*)::int AS n FROM turns WHERE question = ${question}`)[0]!.n;

/** Sends `head` and part of a body, then hangs up: a client that gave up mid-upload. */
function hangUpMidBody(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(rawQuery(USER_KEY, '{"query":"ti', { length: 100 }));
      setTimeout(() => socket.destroy(), 100);
    });
    socket.on("close", () => resolve());
    socket.on("error", () => {});
  });
}

test("a client that hangs up mid-body or mid-answer is counted as 499, never as 500", async () => {
  const port = Number(new URL(stack.url).port);
  const logged = errors.lines.length;
  for (let i = 0; i < 3; i++) await hangUpMidBody(port);

  stack.fakes.ollama.knobs.latencyMs = 400;
  try {
    const controller = new AbortController();
    const impatient = api(stack.url, USER_KEY, { signal: controller.signal });
    const pending = impatient.post("/api/v1/query", { query: "What do tides follow, asked by an impatient client?" });
    setTimeout(() => controller.abort(), 150);
    await assert.rejects(pending);
    await waitFor(
      "the aborted query to finish server-side",
      async () =>
        metricValue(await scrape(stack.metricsUrl), "http_requests_total", { route: "/api/v1/query", status: "499" }) >= 4,
    );
  } finally {
    stack.fakes.ollama.knobs.latencyMs = 0;
  }
  const metrics = await scrape(stack.metricsUrl);
  assert.equal(metricValue(metrics, "http_requests_total", { status: "500" }), 0, "no 5xx for a client's hang-up");
  assert.equal(metricValue(metrics, "http_requests_total", { route: "/api/v1/query", status: "499" }), 4);
  // Node's parser reports a body cut short as an error too: it is the same hang-up, not a malformed request as well.
  assert.equal(metricValue(metrics, "http_requests_total", { route: "unmatched" }), 0, "a hang-up counted twice");
  assert.equal(metricValue(metrics, "agent_errors_total"), 0, "the agent error rate is untouched");
  assert.deepEqual(errors.lines.slice(logged), [], "a hang-up logged as the server's error");
});

test("a client that leaves before its answer has no turn stored, JSON or streamed; a stream is counted once it ends", async () => {
  const db = postgres(stack.pg.url, { max: 1, onnotice: () => {} });
  const { knobs } = stack.fakes.ollama;
  const metrics = () => scrape(stack.metricsUrl);
  const counted = async (status: string) =>
    metricValue(await metrics(), "http_requests_total", { route: "/api/v1/query", status });
  const ask = (query: string) =>
    fetch(`${stack.url}/api/v1/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${USER_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ query, stream: true }),
    });
  const json = "Which moon pulls the tides, asked by a client that leaves?";
  const streamed = "Which moon pulls the tides, streamed to a client that leaves?";
  const whole = "Which moon pulls the tides, streamed to its end?";
  const left = await counted("499");
  try {
    // Asked as JSON: the client gives up while the model answers.
    knobs.latencyMs = 400;
    const giveUp = new AbortController();
    const pending = api(stack.url, USER_KEY, { signal: giveUp.signal }).post("/api/v1/query", { query: json });
    setTimeout(() => giveUp.abort(), 600);
    await assert.rejects(pending);
    knobs.latencyMs = 0;

    // Streamed: the client reads the first token, then closes its connection while the rest comes.
    knobs.tokenDelayMs = 100;
    const socket = await openConnection();
    socket.write(rawQuery(USER_KEY, JSON.stringify({ query: streamed, stream: true })));
    for (let text = ""; !text.includes("event: token"); ) text += String((await once(socket, "data"))[0]);
    socket.destroy();
    await waitFor("both answers given up on, the model done", async () => {
      const m = await metrics();
      return (
        metricValue(m, "http_requests_total", { route: "/api/v1/query", status: "499" }) === left + 2 &&
        metricValue(m, "active_queries") === 0
      );
    });

    // Read to its end: a 200, counted with its whole length.
    const finished = await counted("200");
    const durations = async () =>
      metricValue(await metrics(), "http_request_duration_seconds_sum", { route: "/api/v1/query", status: "200" });
    const before = await durations();
    const started = performance.now();
    assert.match(await (await ask(whole)).text(), /event: done/);
    const seconds = (performance.now() - started) / 1000;
    await waitFor("the whole stream counted", async () => (await counted("200")) === finished + 1);
    assert.ok((await durations()) - before >= seconds * 0.9, "the stream counted at its head, not its end");
  } finally {
    knobs.latencyMs = 0;
    knobs.tokenDelayMs = 0;
  }
  try {
    assert.equal(await turnsFor(db, json), 0, "a turn stored for a JSON client that left");
    assert.equal(await turnsFor(db, streamed), 0, "a turn stored for a stream's client that left");
    assert.equal(await turnsFor(db, whole), 1);
  } finally {
    await db.end();
  }
  assert.equal(metricValue(await metrics(), "http_requests_total", { status: "500" }), 0);
});

test("questions pipelined behind a slow one whose client leaves are each counted 499 and store no turn", async () => {
  const db = postgres(stack.pg.url, { max: 1, onnotice: () => {} });
  const counted = async () => {
    const m = await scrape(stack.metricsUrl);
    const of = (status: string) => metricValue(m, "http_requests_total", { route: "/api/v1/query", status });
    return { left: of("499"), all: of("200") + of("499") + of("503") + of("504"), active: metricValue(m, "active_queries") };
  };
  const questions = ["Which moon pulls the tides, asked first?", "Which moon pulls the tides, queued?"];
  const before = await counted();
  stack.fakes.ollama.knobs.latencyMs = 600;
  try {
    // JSON then a stream, and a stream then JSON: the second's response is queued behind the first's.
    for (const streamFirst of [false, true]) {
      const socket = await openConnection();
      const tag = streamFirst ? " (stream first)" : "";
      socket.write(
        rawQuery(USER_KEY, JSON.stringify({ query: `${questions[0]}${tag}`, stream: streamFirst })) +
          rawQuery(USER_KEY, JSON.stringify({ query: `${questions[1]}${tag}`, stream: !streamFirst })),
      );
      await sleep(300);
      socket.destroy();
    }
    await waitFor("the four questions counted, the model done", async () => {
      const now = await counted();
      return now.all === before.all + 4 && now.active === 0;
    });
  } finally {
    stack.fakes.ollama.knobs.latencyMs = 0;
  }
  try {
    assert.equal((await counted()).left, before.left + 4, "each counted as its client leaving");
    const asked = questions.flatMap((q) => [q, `${q} (stream first)`]);
    const stored = (await Promise.all(asked.map((q) => turnsFor(db, q)))).reduce((a, b) => a + b);
    assert.equal(stored, 0, "a turn stored for a question whose client left");
  } finally {
    await db.end();
  }
});

test("a body still trickling in at half REQUEST_TIMEOUT_MS gets a JSON 408 (not the deadline's 504), counted under its route, not as a hang-up", async () => {
  const before = await scrape(stack.metricsUrl);
  const counted = (metrics: string, status: string) =>
    metricValue(metrics, "http_requests_total", { route: "/api/v1/query", status });
  const socket = connect(Number(new URL(stack.url).port), "127.0.0.1");
  let answer = "";
  socket.on("data", (d: Buffer) => {
    answer += d.toString();
  });
  const closed = new Promise((resolve) => socket.on("close", resolve));
  socket.write(rawQuery(USER_KEY, '{"query":"ti', { length: 100 }));
  await closed;
  assert.match(answer, /^HTTP\/1\.1 408 /, answer);
  assert.match(answer, /\{"error":"malformed HTTP request: [^"]*","code":"request_incomplete"\}$/, answer);
  await waitFor("the request counted", async () => counted(await scrape(stack.metricsUrl), "408") > counted(before, "408"));
  const after = await scrape(stack.metricsUrl);
  assert.equal(counted(after, "408") - counted(before, "408"), 1);
  assert.equal(counted(after, "499"), counted(before, "499"), "not counted as a client's hang-up");
  assert.equal(metricValue(after, "http_requests_total", { route: "unmatched" }), 0, "counted once");
});

test("a request the parser refuses on METRICS_PORT is not counted as the API's", async () => {
  const before = await scrape(stack.metricsUrl);
  const { port } = new URL(stack.metricsUrl);
  const answer = await new Promise<string>((resolve) => {
    let text = "";
    const socket = connect(Number(port), "127.0.0.1", () => socket.write("GARBAGE\r\n\r\n"));
    socket.on("data", (d) => (text += d)).on("close", () => resolve(text));
  });
  assert.match(answer, /^HTTP\/1\.1 400 /, answer);
  const after = await scrape(stack.metricsUrl);
  const unmatched = { route: "unmatched", status: "400" };
  assert.equal(metricValue(after, "http_requests_total", unmatched), metricValue(before, "http_requests_total", unmatched));
});

test("a streamed question answered 504 before its answer starts is let go, not left waiting on a stream no one reads", async () => {
  const { knobs } = stack.fakes.ollama;
  const activeQueries = async () => metricValue(await scrape(stack.metricsUrl), "active_queries");
  const user = api(stack.url, USER_KEY);
  assert.equal(await activeQueries(), 0);
  knobs.latencyMs = REQUEST_TIMEOUT_MS * 1.1; // the embedding outlasts the deadline; the answer then comes at once
  let res: Awaited<ReturnType<typeof user.post<{ error: string }>>>;
  try {
    res = await user.post<{ error: string }>("/api/v1/query", { query: "What do tides follow, streamed late?", stream: true });
  } finally {
    knobs.latencyMs = 0;
  }
  assert.equal(res.status, 504, res.text);
  assert.equal(res.body.error, `request took longer than ${REQUEST_TIMEOUT_MS} ms`);
  // Once its embedding is in (0.1 x the deadline later), the question is let go; a stream started for it waited on
  // its first write until shutdown, and the gauge stayed at 1.
  await waitFor("the question let go", async () => (await activeQueries()) === 0, REQUEST_TIMEOUT_MS);
  const metrics = await scrape(stack.metricsUrl);
  assert.equal(metricValue(metrics, "agent_errors_total", { error_type: "request_timeout" }), 1, "counted as a JSON one is");
});

test("a query or an ingest answered 504 at REQUEST_TIMEOUT_MS writes nothing after it: asked again, nothing is there twice", async () => {
  const db = postgres(stack.pg.url, { max: 1, onnotice: () => {} });
  const user = api(stack.url, USER_KEY);
  const { knobs } = stack.fakes.ollama;
  const question = "What do tides follow, asked of a slow model?";
  const text = "Neap tides come when the sun and the moon pull at right angles, a slow embedding.";
  try {
    knobs.latencyMs = REQUEST_TIMEOUT_MS * 0.6; // embed, then chat: the answer comes at 1.2 x the deadline
    const query = await user.post("/api/v1/query", { query: question });
    assert.equal(query.status, 504, query.text);
    knobs.latencyMs = REQUEST_TIMEOUT_MS * 1.2; // the embedding alone outlasts the deadline
    const ingest = await user.post("/api/v1/documents", { documents: [{ text }] });
    assert.equal(ingest.status, 504, ingest.text);
    await sleep(REQUEST_TIMEOUT_MS); // both answers are in by now
  } finally {
    knobs.latencyMs = 0;
  }
  try {
    assert.equal(await turnsFor(db, question), 0, "a turn stored for a request answered 504");
    const points = [...stack.fakes.qdrant.collections.values()].flatMap((c) => [...c.points.values()]);
    assert.ok(!points.some((p) => JSON.stringify(p).includes("Neap tides")), "chunks written for an ingest answered 504");
    const records = await db`SELECT count(*)::int AS n FROM documents`;
    assert.equal(records[0]!.n, 1, "a record written for an ingest answered 504");
  } finally {
    await db.end();
  }
});
