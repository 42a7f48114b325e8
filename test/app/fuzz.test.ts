import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { request } from "undici";
import { startStack, USER_KEY, type Stack } from "../support/app.ts";
import { fuzzBody, fuzzRawJson, malformedRequests, prng, rawExchange, rawRequest } from "../support/fuzz.ts";
import { api } from "../support/http.ts";
import { metricValue, scrape } from "../support/metrics.ts";
import { waitFor } from "../support/process.ts";
import { ERROR_STATUS } from "../../app/src/errors.ts";

// Issue 17's bar: 10,000 requests (about 9 s here).
const FUZZ_REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 10_000);
const SEED = Number(process.env.FUZZ_SEED ?? 17);
const CONCURRENCY = 8;

let stack: Stack;
let user: ReturnType<typeof api>;

before(async () => {
  stack = await startStack({ RATE_LIMIT_PER_MINUTE: "1000000" });
  user = api(stack.url, USER_KEY);
  const res = await user.post("/api/v1/documents", {
    documents: [
      { id: "tides", title: "Tides", text: "Tides are caused by the gravitational pull of the moon.", metadata: { lang: "en" } },
      { id: "poison", title: "Poison", text: "Poisoned chunk about lighthouse keepers and fog horns." },
    ],
  });
  assert.equal(res.status, 201, res.text);
  assert.equal((await user.post("/api/v1/query", { query: "What causes tides?", session_id: "ok-1" })).status, 200);
});
after(() => stack.stop());

/** A JSON `{error, code}`: a reason, and a code of the documented set (errors.ts) that comes with this status. */
const isJsonError = (text: string, status: number) => {
  try {
    const body = JSON.parse(text) as { error?: unknown; code?: unknown };
    const code = typeof body.code === "string" && Object.hasOwn(ERROR_STATUS, body.code) ? body.code : undefined;
    return typeof body.error === "string" && body.error.length > 0 && ERROR_STATUS[code as never] === status;
  } catch {
    return false;
  }
};

test("NUL and unpaired surrogates are refused at the edge with a 400 naming the field", async () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["/api/v1/query", { query: "tides\u0000" }, /invalid body: query: must not contain NUL/],
    ["/api/v1/query", { query: "tides", filter: { lang: "\ud800" } }, /filter\.lang: must not contain NUL/],
    ["/api/v1/documents", { documents: [{ text: "ok", title: "a\udc00" }] }, /documents\.0\.title: must not contain/],
    ["/api/v1/documents", { documents: [{ text: "a\u0000b" }] }, /documents\.0\.text: must not contain/],
    [
      "/api/v1/documents",
      { documents: [{ text: "ok", metadata: { tag: ["x", "\u0000"] } }] },
      /documents\.0\.metadata\.tag\.1: must not contain/,
    ],
    ["/api/v1/feedback", { request_id: "r\u0000", quality_score: 3 }, /request_id: must not contain/],
    ["/api/v1/feedback", { request_id: "r", quality_score: 3, comment: "\ud83d" }, /comment: must not contain/],
  ];
  for (const [path, body, reason] of cases) {
    const res = await user.post(path, body);
    assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}: ${res.text}`);
    assert.match(res.body.error, reason);
  }
  const pair = await user.post("/api/v1/query", { query: "tides 😀" });
  assert.equal(pair.status, 200, `a valid surrogate pair is fine: ${pair.text}`);
});

test("a value whose `length` member cannot be compared is a 400 naming its field, not a 500", async () => {
  // zod compares the `length` of a value of the wrong type too (schemas.ts lengthChecksOnTheirType).
  for (const poison of [{ length: { toString: 1 } }, { length: { valueOf: 1, toString: [] } }]) {
    const cases: Array<[string, unknown, RegExp]> = [
      ["/api/v1/query", { query: poison }, /^invalid body: query: /],
      ["/api/v1/query", { query: "tides", filter: { lang: poison } }, /^invalid body: filter\.lang: /],
      ["/api/v1/query", { query: "tides", filter: { tag: ["a", poison] } }, /^invalid body: filter\.tag: item 1: /],
      ["/api/v1/documents", { documents: poison }, /^invalid body: documents: /],
      ["/api/v1/documents", { documents: [{ text: poison }] }, /^invalid body: documents\.0\.text: /],
      ["/api/v1/documents", { documents: [{ text: "ok", title: poison }] }, /^invalid body: documents\.0\.title: /],
      ["/api/v1/documents", { documents: [{ text: "ok", metadata: { lang: poison } }] }, /documents\.0\.metadata\.lang: /],
      ["/api/v1/documents", { documents: [{ text: "ok", metadata: { t: [poison] } }] }, /documents\.0\.metadata\.t: item 0: /],
      ["/api/v1/feedback", { request_id: poison, quality_score: 3 }, /^invalid body: request_id: /],
      ["/api/v1/feedback", { request_id: "r", quality_score: 3, comment: poison }, /^invalid body: comment: /],
    ];
    for (const [path, body, reason] of cases) {
      const res = await user.post(path, body);
      assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.body.code, "invalid_request", res.text);
      assert.match(res.body.error, reason);
    }
  }
});

test("a stored chunk with characters Postgres refuses cannot break retrieval", async () => {
  // Data written before the edge rule (or by another writer) straight into Qdrant.
  const points = stack.fakes.qdrant.collections.get("documents")!.points;
  const poisoned = [...points.values()].find((p) => p.payload.document_id === "poison")!;
  poisoned.payload = { ...poisoned.payload, title: "Poi\u0000son", text: `${poisoned.payload.text as string} \u0000 \ud800 end` };

  for (const key of [USER_KEY]) {
    const res = await api(stack.url, key).post("/api/v1/query", {
      query: "Poisoned chunk about lighthouse keepers and fog horns.",
      session_id: "poison",
    });
    assert.equal(res.status, 200, res.text);
    const source = res.body.sources.find((s: { id: string }) => s.id === "poison");
    assert.equal(source.title, "Poi\ufffdson");
    assert.match(source.text, /\ufffd \ufffd end$/);
  }
  const session = await user.get("/api/v1/sessions/poison");
  assert.equal(session.status, 200, session.text);
  assert.equal(session.body.turns.length, 1);
});

test(`${FUZZ_REQUESTS} fuzzed API requests: no 5xx, every 4xx a JSON {error, code}`, { timeout: 240_000 }, async () => {
  const r = prng(SEED);
  const routes = ["/api/v1/query", "/api/v1/documents", "/api/v1/feedback"];
  const contentTypes = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
    "application/json; charset=latin1",
  ];
  const failures: string[] = [];
  let sent = 0;
  const one = async () => {
    const kind = r.int(10);
    let method = "POST";
    let path = r.pick(routes);
    let body: string | Uint8Array | undefined;
    const headers: Record<string, string> = { authorization: `Bearer ${USER_KEY}`, "content-type": "application/json" };
    if (kind < 6) body = JSON.stringify(fuzzBody(r, path));
    else if (kind < 8) {
      body = fuzzRawJson(r);
      // Bytes that are not UTF-8 (a Latin-1 letter, a lone continuation byte, a surrogate's encoding) or a gzip body.
      if (r.chance(0.2)) body = Buffer.from(body.replace("t", r.pick(["\u00e9", "\u0080", "\u00ed\u00a0\u0080"])), "latin1");
      if (r.chance(0.1)) headers["content-encoding"] = r.pick(["gzip", "br", "identity", "x-unknown"]);
    } else if (kind === 8) {
      method = r.pick(["GET", "DELETE"]);
      // Percent-encoded as a client may send it, including a lone surrogate half (%ED%A0%80) and a stray '%'.
      const id = r.pick(["ok-1", "%00", "%ED%A0%80", "a%20b", "x".repeat(129), "..", "%", "%25", "%F0%9F%98%80", "%C0%AF"]);
      path = r.pick(["/api/v1/sessions/", "/api/v1/documents/"]) + id;
      // A session's page (session ok-1 exists): bad, repeated and out-of-range limit and after values.
      if (path.startsWith("/api/v1/sessions/"))
        path += r.pick([
          "",
          "?limit=1",
          "?limit=0",
          "?limit=-1",
          "?limit=1e3",
          "?limit=%00",
          "?limit=2&limit=3",
          "?limit=1&after=",
          "?after=%00",
          "?after=nope",
          "?after=a&after=b",
          `?limit=${"9".repeat(30)}`,
        ]);
      if (method === "GET" && path.startsWith("/api/v1/documents/")) method = "DELETE";
      if (method === "DELETE" && path.startsWith("/api/v1/sessions/")) method = "GET";
      delete headers["content-type"];
    } else {
      body = JSON.stringify(fuzzBody(r, path));
      headers["content-type"] = r.pick(contentTypes);
      if (r.chance(0.3))
        headers.authorization = r.pick([
          "Bearer",
          "Basic abc",
          `Bearer ${USER_KEY}\u00ff`,
          "Bearer \u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
        ]);
    }
    if (headers["content-type"] === "") delete headers["content-type"];
    let status = 0;
    let text = "";
    try {
      // undici's request, not fetch, at a quarter of fetch's CPU in this process, which the app shares (the test took
      // 16.7 s, now 9.3). The bytes are the same, but for one header: fetch gave a string body without a Content-Type
      // text/plain (415), and a body without one now reaches the server as such.
      const res = await request(`${stack.url}${path}`, { method: method as "POST", headers, body });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      failures.push(`${method} ${path} ${String(body).slice(0, 120)}: client error ${(err as Error).message}`);
      return;
    }
    sent++;
    if (status >= 500 || (status >= 400 && !isJsonError(text, status)))
      failures.push(`${method} ${path} ${JSON.stringify(String(body).slice(0, 160))}: ${status} ${text.slice(0, 200)}`);
  };
  let remaining = FUZZ_REQUESTS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (remaining-- > 0) await one();
    }),
  );
  assert.deepEqual(failures.slice(0, 15), [], `${failures.length} of ${FUZZ_REQUESTS} failed (seed ${SEED})`);
  assert.equal(sent, FUZZ_REQUESTS);
  const metrics = await scrape(stack.metricsUrl);
  for (const status of ["500", "502", "503", "504"])
    assert.equal(metricValue(metrics, "http_requests_total", { status }), 0, `http_requests_total{status="${status}"}`);
});

/** The code of each status the parser's and the adapter's refusals answer with. */
const PARSER_REFUSAL_CODES: Record<number, string> = {
  400: "malformed_http",
  405: "method_not_allowed",
  408: "request_incomplete",
  413: "body_too_large",
  417: "unsupported_expectation",
  431: "headers_too_large",
};

test("requests Node's HTTP parser or the adapter refuse get a JSON {error, code} too, and each is counted once", async () => {
  const port = Number(new URL(stack.url).port);
  const requests = malformedRequests(`Authorization: Bearer ${USER_KEY}`);
  const counted = async (labels: Record<string, string> = {}) =>
    metricValue(await scrape(stack.metricsUrl), "http_requests_total", labels);
  const [countedBefore, abortsBefore] = [await counted(), await counted({ status: "499" })];
  for (const raw of requests) {
    const res = await rawRequest(port, raw);
    const what = JSON.stringify(raw.slice(0, 80));
    assert.ok(res, `${what}: no HTTP response`);
    assert.ok(res.status >= 400 && res.status < 500, `${what}: ${res.status} ${res.body}`);
    assert.match(res.headers["content-type"] ?? "", /^application\/json/, `${what}: ${res.status} ${res.body}`);
    assert.ok(isJsonError(res.body, res.status), `${what}: ${res.status} ${JSON.stringify(res.body)}`);
    assert.equal(JSON.parse(res.body).code, PARSER_REFUSAL_CODES[res.status], `${what}: ${res.status} ${res.body}`);
  }
  // Those the app never saw are counted by http.ts (route "unmatched"), the rest by the app: an alert on the 4xx rate
  // sees every one of them. A body the parser refused mid-request was a 499 as well (the app saw its socket close).
  assert.equal((await counted()) - countedBefore, requests.length);
  assert.equal((await counted({ status: "499" })) - abortsBefore, 0, "no refusal counted as a client's hang-up");
});

test('a method the API does not serve is counted as method="other": a client cannot make series of its own', async () => {
  for (const method of ["PROPFIND", "MKCALENDAR", "PATCH", "PUT"]) {
    for (const path of ["/api/v1/query", "/nowhere"]) await (await fetch(`${stack.url}${path}`, { method })).arrayBuffer();
  }
  const exposition = await scrape(stack.metricsUrl);
  const methods = new Set([...exposition.matchAll(/^http_requests_total\{[^}]*method="([^"]*)"/gm)].map((m) => m[1]));
  assert.ok(methods.has("other"), [...methods].join(", "));
  assert.deepEqual(
    [...methods].filter((m) => !["GET", "HEAD", "POST", "DELETE", "other"].includes(m!)),
    [],
    "a series for each method a client sent",
  );
});

test("bytes the parser refuses after whole pipelined requests: their answers first, then the refusal, each counted once", async () => {
  const port = Number(new URL(stack.url).port);
  const auth = `Authorization: Bearer ${USER_KEY}\r\nContent-Type: application/json`;
  const doc = JSON.stringify({ documents: [{ id: "pipelined", text: "Pipelined requests about tides." }] });
  const health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  const ingest = `POST /api/v1/documents HTTP/1.1\r\nHost: x\r\n${auth}\r\nContent-Length: ${doc.length}\r\n\r\n${doc}`;
  const badChunk = `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${auth}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`;
  const counted = async (labels: Record<string, string>) =>
    metricValue(await scrape(stack.metricsUrl), "http_requests_total", labels);
  const unmatched = { route: "unmatched", status: "400" };
  const [ingested, refusedQueries, unmatchedBefore] = [
    await counted({ route: "/api/v1/documents", status: "201" }),
    await counted({ route: "/api/v1/query", status: "400" }),
    await counted(unmatched),
  ];

  // The ingest was done and the client got the parser's 400 in its place: it would send it again.
  const afterWhole = await rawExchange(port, `${health}${ingest}GARBAGE\r\n\r\n`);
  assert.deepEqual(
    afterWhole.map((r) => r.status),
    [200, 201, 400],
    JSON.stringify(afterWhole),
  );
  assert.ok(isJsonError(afterWhole[2]!.body, 400));
  assert.equal(await counted({ route: "/api/v1/documents", status: "201" }), ingested + 1);
  assert.equal(await counted(unmatched), unmatchedBefore + 1);

  // A bad chunk in the second request's body: the first request is still answered, the second refused under its route.
  const midBody = await rawExchange(port, `${health}${badChunk}`);
  assert.deepEqual(
    midBody.map((r) => r.status),
    [200, 400],
    JSON.stringify(midBody),
  );
  assert.match(midBody[1]!.body, /HPE_INVALID_CHUNK_SIZE/);
  // Counted once the app's handler sees its body end, after the client saw the refusal.
  const refused = async () => (await counted({ route: "/api/v1/query", status: "400" })) === refusedQueries + 1;
  await waitFor("the refused query counted under its route", refused, 3_000);
  assert.equal(await counted(unmatched), unmatchedBefore + 1);

  // Bytes after a request that asked to close: not a request to refuse. The answer carrying `close` is the last one
  // (RFC 9112 9.6); before, a 400 followed it and was counted among the API's 4xx.
  const ask = (body: object, headers = "") => {
    const json = JSON.stringify(body);
    return `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${auth}\r\n${headers}Content-Length: ${json.length}\r\n\r\n${json}`;
  };
  const { knobs } = stack.fakes.ollama;
  knobs.tokenDelayMs = 20; // a streamed answer still going when the bytes after the close arrive
  try {
    const slow = ask({ query: "Which stream runs before a close about tides?", stream: true });
    const closing = ask({ query: "Which question closes the connection about tides?" }, "Connection: close\r\n");
    const afterClose = await rawExchange(port, `${slow}${closing}${health}`);
    // The stream, then the closing question's answer, and nothing for the health check after it.
    assert.deepEqual(
      afterClose.map((r) => [r.status, r.headers.connection]),
      [
        [200, "keep-alive"],
        [200, "close"],
      ],
      JSON.stringify(afterClose).slice(0, 500),
    );
    assert.match(afterClose[0]!.body, /event: done/);
    assert.match(JSON.parse(afterClose[1]!.body).answer, /\w/);
  } finally {
    knobs.tokenDelayMs = 0;
  }
  assert.equal(await counted(unmatched), unmatchedBefore + 1);
});

test("a request the server adapter refuses closes its connection like the parser's: nothing pipelined after it is served", async () => {
  const port = Number(new URL(stack.url).port);
  const health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  // @hono/node-server's own refusals (RequestError): a backslash in the path, a Host that is not a host, a bad absolute URL.
  for (const refused of [
    "GET /api\\v1/query HTTP/1.1\r\nHost: x\r\n\r\n",
    `GET / HTTP/1.1\r\nHost: a@b\r\n\r\n`,
    "GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
  ]) {
    const answers = await rawExchange(port, `${refused}${health}`);
    const what = JSON.stringify(refused);
    assert.deepEqual(
      answers.map((r) => [r.status, r.headers.connection, JSON.parse(r.body).code]),
      [[400, "close", "malformed_http"]],
      `${what}: ${JSON.stringify(answers).slice(0, 400)}`,
    );
  }
});
