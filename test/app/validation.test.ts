import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { request } from "undici";
import { ADMIN_KEY, OTHER_KEY, startApp, startStack, USER_KEY, type Stack } from "../support/app.ts";
import { parseResponses } from "../support/fuzz.ts";
import { waitFor } from "../support/process.ts";
import { api, rawQuery } from "../support/http.ts";
import { bodyTooLarge } from "../../app/src/middleware/bodylimit.ts";
import { countJsonContainersAndKeys, tooManyContainersAndKeys } from "../../app/src/middleware/readbody.ts";
import { MAX_BODY_CONTAINERS_AND_KEYS, MAX_DOCUMENTS_PER_REQUEST, MAX_METADATA_KEYS } from "../../app/src/schemas.ts";
import { metricValue, scrape } from "../support/metrics.ts";

const BODY_LIMIT = 64 * 1024;
// Generous: the 100-document boundary case must finish well inside it on a loaded CI machine.
const REQUEST_TIMEOUT = 5000;
let stack: Stack;
let user: ReturnType<typeof api>;

before(async () => {
  stack = await startStack({
    BODY_LIMIT_BYTES: String(BODY_LIMIT),
    RATE_LIMIT_PER_MINUTE: "10000",
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT),
    BODIES_MAX_BYTES_RECEIVING: String(2 * BODY_LIMIT),
  });
  user = api(stack.url, USER_KEY);
});
after(() => stack.stop());

type Case = [
  name: string,
  method: string,
  path: string,
  body: unknown,
  status: number,
  reason: RegExp,
  headers?: Record<string, string>,
];

const doc = { id: "d1", text: "some text" };
/** A filter or metadata object of `n` keys. */
const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
const cases: Case[] = [
  ["bad JSON", "POST", "/api/v1/query", '{"query": "unterminated', 400, /Malformed JSON/],
  ["JSON array body", "POST", "/api/v1/query", [], 400, /invalid body/],
  ["JSON null body", "POST", "/api/v1/query", "null", 400, /invalid body/],
  ["empty body", "POST", "/api/v1/query", "", 400, /Malformed JSON|invalid body/],
  [
    "not JSON",
    "POST",
    "/api/v1/query",
    '{"query":"x"}',
    415,
    /^Unsupported Media Type: send Content-Type: application\/json \(got text\/plain\)$/,
    { "content-type": "text/plain" },
  ],
  // fetch sends the header empty; Node's parser gives the app "", as zod-openapi's gate reads no header at all.
  [
    "JSON without a Content-Type",
    "POST",
    "/api/v1/query",
    '{"query":"x"}',
    415,
    /^Unsupported Media Type: send Content-Type: application\/json \(got none\)$/,
    { "content-type": "" },
  ],
  [
    "long Content-Type, clipped as other echoed text is",
    "POST",
    "/api/v1/query",
    '{"query":"x"}',
    415,
    /^Unsupported Media Type: send Content-Type: application\/json \(got text\/x{195}\.\.\. \(4005 characters\)\)$/,
    { "content-type": `text/${"x".repeat(4_000)}` },
  ],
  // No URL can name them: clients and the server's URL parser remove `.` and `..` as dot segments.
  [
    "document id '..'",
    "POST",
    "/api/v1/documents",
    { documents: [{ id: "..", text: "x" }] },
    400,
    /documents.0.id: .*not '\.' or '\.\.'/,
  ],
  ["session id '.'", "POST", "/api/v1/query", { query: "x", session_id: "." }, 400, /session_id: .*not '\.' or '\.\.'/],
  [
    "filter list of strings and integers",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { k: ["a", 1] } },
    400,
    /filter\.k: .*only strings or only integers/,
  ],
  ["missing query", "POST", "/api/v1/query", {}, 400, /query/],
  ["query of wrong type", "POST", "/api/v1/query", { query: 42 }, 400, /query: .*string/],
  ["blank query", "POST", "/api/v1/query", { query: "   " }, 400, /query: must not be empty/],
  [
    "query over 5000 characters",
    "POST",
    "/api/v1/query",
    { query: "a".repeat(5001) },
    400,
    /query: must be at most 5000 characters/,
  ],
  ["unknown field", "POST", "/api/v1/query", { query: "x", temperature: 2 }, 400, /temperature/],
  ["top_k zero", "POST", "/api/v1/query", { query: "x", top_k: 0 }, 400, /top_k/],
  ["top_k too big", "POST", "/api/v1/query", { query: "x", top_k: 51 }, 400, /top_k/],
  ["top_k fraction", "POST", "/api/v1/query", { query: "x", top_k: 2.5 }, 400, /top_k/],
  ["top_k string", "POST", "/api/v1/query", { query: "x", top_k: "3" }, 400, /top_k/],
  ["stream not boolean", "POST", "/api/v1/query", { query: "x", stream: "yes" }, 400, /stream/],
  ["session_id with spaces", "POST", "/api/v1/query", { query: "x", session_id: "a b" }, 400, /session_id/],
  ["session_id too long", "POST", "/api/v1/query", { query: "x", session_id: "s".repeat(129) }, 400, /session_id/],
  ["filter not an object", "POST", "/api/v1/query", { query: "x", filter: "lang=en" }, 400, /filter/],
  ["filter key with a dot", "POST", "/api/v1/query", { query: "x", filter: { "a.b": "c" } }, 400, /metadata keys/],
  ["filter nested object", "POST", "/api/v1/query", { query: "x", filter: { lang: { $ne: "en" } } }, 400, /filter/],
  [
    "filter empty list",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { lang: [] } },
    400,
    /filter\.lang: a list must hold at least one value$/,
  ],
  // A list is told its own reason, not the union's list of types (probe CI).
  [
    "filter list of 101 strings",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { lang: Array(101).fill("en") } },
    400,
    /^invalid body: filter\.lang: a list must hold at most 100 values$/,
  ],
  [
    "filter list holding an object",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { lang: ["en", {}] } },
    400,
    /^invalid body: filter\.lang: item 1: must be a string or an integer$/,
  ],
  [
    "metadata list of 101 values",
    "POST",
    "/api/v1/documents",
    { documents: [{ text: "t", metadata: { tags: Array(101).fill(1) } }] },
    400,
    /^invalid body: documents\.0\.metadata\.tags: a list must hold at most 100 values$/,
  ],
  // Ignored, a misspelt cursor read the first page again and again (probe CI).
  [
    "unknown query parameter on a session page",
    "GET",
    "/api/v1/sessions/s1?afterr=x",
    undefined,
    400,
    /^invalid query string: .*"afterr"/,
  ],
  ["a cursor sent as a list", "GET", "/api/v1/sessions/s1?after[]=x", undefined, 400, /^invalid query string: .*"after\[\]"/],
  [
    "a cursor given twice",
    "GET",
    "/api/v1/sessions/s1?after=a&after=b",
    undefined,
    400,
    /^invalid query string: after: must be a turn's request_id, given once$/,
  ],
  // Ignored, it was answered as JSON.
  [
    "a query string on a route that reads none",
    "POST",
    "/api/v1/query?stream=true",
    { query: "x" },
    400,
    /^invalid query string: .*"stream"/,
  ],
  [
    "filter list of floats",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { n: [1.5] } },
    400,
    /filter\.n: item 0: must be a string or an integer$/,
  ],
  [
    "filter list of booleans",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { n: [true] } },
    400,
    /filter\.n: item 0: must be a string or an integer$/,
  ],
  [
    "filter a list of 20",
    "POST",
    "/api/v1/query",
    { query: "x", filter: Array(20).fill("en") },
    400,
    /filter: .*expected record/,
  ],
  [
    "filter strings past 16,384 characters together",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { a: Array(100).fill("x".repeat(100)), b: Array(64).fill("y".repeat(100)) } },
    400,
    /^invalid body: filter: a filter's strings must hold at most 16384 characters together$/,
  ],
  [
    "filter of 17 keys",
    "POST",
    "/api/v1/query",
    { query: "x", filter: keys(17) },
    400,
    /^invalid body: filter: at most 16 filter keys$/,
  ],
  // Counted before any key is checked: 150,000 of them cost 0.3 s of checks, and 8 such bodies held the event loop 3.5 s.
  [
    "filter of 2,000 keys, the last malformed: refused by its count, before its keys are read",
    "POST",
    "/api/v1/query",
    { query: "x", filter: { ...keys(2_000), "a.b": "c" } },
    400,
    /^invalid body: filter: at most 16 filter keys$/,
  ],
  [
    "metadata of 33 keys",
    "POST",
    "/api/v1/documents",
    { documents: [{ text: "t", metadata: keys(33) }] },
    400,
    /^invalid body: documents\.0\.metadata: at most 32 metadata keys$/,
  ],
  // zod's record drops this key unvalidated: the filter would have matched every document.
  [
    "filter key __proto__",
    "POST",
    "/api/v1/query",
    '{"query":"x","filter":{"__proto__":"en"}}',
    400,
    /filter\.__proto__: .*reserved/,
  ],
  [
    "body over the limit",
    "POST",
    "/api/v1/documents",
    { documents: [{ text: "x".repeat(BODY_LIMIT) }] },
    413,
    /exceeds BODY_LIMIT_BYTES \(65536 bytes\)/,
  ],
  ["no documents", "POST", "/api/v1/documents", { documents: [] }, 400, /documents/],
  ["documents not a list", "POST", "/api/v1/documents", { documents: doc }, 400, /documents/],
  ["document without text", "POST", "/api/v1/documents", { documents: [{ id: "d1" }] }, 400, /documents\.0\.text/],
  [
    "document with blank text",
    "POST",
    "/api/v1/documents",
    { documents: [{ text: " \n " }] },
    400,
    /documents\.0\.text: must not be empty/,
  ],
  ["document with unknown field", "POST", "/api/v1/documents", { documents: [{ ...doc, body: "x" }] }, 400, /body/],
  ["duplicate document ids", "POST", "/api/v1/documents", { documents: [doc, doc] }, 400, /unique/],
  ["bad document id", "POST", "/api/v1/documents", { documents: [{ id: "has space", text: "t" }] }, 400, /documents\.0\.id/],
  ["nested metadata", "POST", "/api/v1/documents", { documents: [{ text: "t", metadata: { a: { b: 1 } } }] }, 400, /metadata/],
  [
    "metadata over 8 kB as JSON (each chunk carries a copy)",
    "POST",
    "/api/v1/documents",
    {
      documents: [
        { text: "t", metadata: Object.fromEntries([1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => [`k${k}`, "v".repeat(1000)])) },
      ],
    },
    400,
    /documents\.0\.metadata: at most 8192 bytes as JSON/,
  ],
  [
    "metadata key __proto__",
    "POST",
    "/api/v1/documents",
    '{"documents":[{"text":"t","metadata":{"lang":"en","__proto__":"x"}}]}',
    400,
    /documents\.0\.metadata\.__proto__: .*reserved/,
  ],
  [
    "too many documents",
    "POST",
    "/api/v1/documents",
    { documents: Array.from({ length: 101 }, () => ({ text: "t" })) },
    400,
    /documents/,
  ],
  ["feedback score 0", "POST", "/api/v1/feedback", { request_id: "r", quality_score: 0 }, 400, /quality_score/],
  ["feedback score 6", "POST", "/api/v1/feedback", { request_id: "r", quality_score: 6 }, 400, /quality_score/],
  ["feedback score 3.5", "POST", "/api/v1/feedback", { request_id: "r", quality_score: 3.5 }, 400, /quality_score/],
  ["feedback without request_id", "POST", "/api/v1/feedback", { quality_score: 3 }, 400, /request_id/],
  [
    "feedback is_correct string",
    "POST",
    "/api/v1/feedback",
    { request_id: "r", quality_score: 3, is_correct: "yes" },
    400,
    /is_correct/,
  ],
  ["bad document id in path", "DELETE", "/api/v1/documents/bad%20id", undefined, 400, /invalid path parameter: id/],
  ["session id too long in path", "GET", `/api/v1/sessions/${"s".repeat(200)}`, undefined, 400, /invalid path parameter: id/],
  ["unknown route", "GET", "/api/v1/nothing-here", undefined, 404, /no route for GET \/api\/v1\/nothing-here/],
  ["wrong method", "PUT", "/api/v1/query", { query: "x" }, 405, /^method PUT not allowed on \/api\/v1\/query: POST$/],
  // The path cut as other echoed text is: echoed whole, a 16 kB path was a 32 kB answer.
  ["long unknown route", "GET", `/${"x".repeat(5_000)}`, undefined, 404, /^no route for GET \/x{199}\.\.\. \(5001 characters\)$/],
];

/** A 400's code is `invalid_body` for a body that is not JSON at all, `invalid_request` for one the schema refuses. */
const expectedCode = (status: number, error: string) =>
  status === 400
    ? /^(Malformed JSON|request body is not valid UTF-8)/.test(error)
      ? "invalid_body"
      : "invalid_request"
    : { 404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type" }[status];

test("every malformed request gets a 4xx with a reason and its code, never a 5xx", async () => {
  for (const [name, method, path, body, status, reason, headers] of cases) {
    const res = await user.send(method, path, body, headers);
    assert.equal(res.status, status, `${name}: ${res.text.slice(0, 300)}`);
    assert.equal(typeof res.body, "object", `${name}: JSON body`);
    assert.match(res.body.error, reason, `${name}: ${res.body.error}`);
    assert.equal(res.body.code, expectedCode(status, res.body.error), `${name}: ${res.text.slice(0, 300)}`);
  }
  const metrics = await scrape(stack.metricsUrl);
  for (const status of ["500", "502", "503", "504"]) assert.equal(metricValue(metrics, "http_requests_total", { status }), 0);
  assert.equal((await api(stack.url).get("/health")).status, 200);
});

test("a body that is not uncompressed UTF-8 is refused with what to send instead, and nothing of it is stored", async () => {
  const ingest = (text: string) => `{"documents":[{"id":"encoded","text":"${text}"}]}`;
  const latin1 = await user.post("/api/v1/documents", Buffer.from(ingest("caf\u00e9 au lait"), "latin1"));
  assert.equal(latin1.status, 400, latin1.text);
  assert.match(latin1.body.error, /not valid UTF-8/);
  assert.equal(latin1.body.code, "invalid_body");
  assert.equal((await user.del("/api/v1/documents/encoded")).status, 404, "the Latin-1 document was stored");

  const query = '{"query":"tides"}';
  for (const [encoding, body] of [
    ["gzip", gzipSync(query)],
    ["br", query],
  ] as const) {
    const res = await user.post("/api/v1/query", body, { "content-encoding": encoding });
    assert.equal(res.status, 415, `${encoding}: ${res.text}`);
    assert.equal(res.body.error, `Content-Encoding ${encoding} is not supported: send the body uncompressed`);
    assert.equal(res.body.code, "unsupported_media_type");
    assert.equal(res.headers.get("accept-encoding"), "identity");
  }

  // No Content-Type at all (undici's request sends none for bytes): the same 415, and nothing stored.
  const unlabelled = await request(`${stack.url}/api/v1/documents`, {
    method: "POST",
    headers: { authorization: `Bearer ${USER_KEY}` },
    body: Buffer.from(ingest("tides")),
  });
  assert.equal(unlabelled.statusCode, 415);
  assert.deepEqual(await unlabelled.body.json(), {
    error: "Unsupported Media Type: send Content-Type: application/json (got none)",
    code: "unsupported_media_type",
  });
  assert.equal((await user.del("/api/v1/documents/encoded")).status, 404, "the unlabelled document was stored");

  // Accepted: UTF-8 beyond ASCII, an explicit identity coding, and a leading BOM (RFC 8259 lets a parser ignore it).
  const utf8 = await user.post("/api/v1/documents", Buffer.from(ingest("caf\u00e9 au lait"), "utf8"));
  assert.equal(utf8.status, 201, utf8.text);
  assert.equal((await user.del("/api/v1/documents/encoded")).status, 200);
  assert.equal((await user.post("/api/v1/query", query, { "content-encoding": "identity" })).status, 200);
  assert.equal((await user.post("/api/v1/query", `\ufeff${query}`)).status, 200);
});

const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";

/**
 * A query from `key` declaring `length` bytes, its head sent alone on a connection of its own, with `Expect:
 * 100-continue` when `expect`. `answered` resolves with what the server sent since the last call, once that is a 100
 * Continue or a whole answer; `send` sends bytes of the body.
 */
function rawPost(key: string, length: number, { expect = true, chunked = false, path = "/api/v1/query", typed = true } = {}) {
  const socket = connect(Number(new URL(stack.url).port), "127.0.0.1");
  socket.on("error", () => {});
  let seen = "";
  socket.on("data", (d) => {
    seen += d.toString("latin1");
  });
  socket.write(rawQuery(key, "", { length, chunked, path, typed, headers: expect ? "Expect: 100-continue\r\n" : "" }));
  return {
    async answered(): Promise<string> {
      await waitFor("an answer", async () => seen === CONTINUE || parseResponses(seen, false).length > 0, 5_000);
      const text = seen;
      seen = "";
      return text;
    },
    send: (bytes: string) => socket.write(bytes),
    close: () => socket.destroy(),
  };
}

test("a 100-continue request gets its 413, 401, 404, 405 or 415 instead of the 100, before it sends its body; a valid one, the 100", async () => {
  const over = rawPost(USER_KEY, BODY_LIMIT + 1);
  const refused = await over.answered();
  over.close();
  assert.match(refused, /^HTTP\/1\.1 413 /, refused.slice(0, 80));
  assert.match(refused, /\r\nconnection: close\r\n/i);
  assert.ok(refused.endsWith(JSON.stringify({ error: bodyTooLarge(BODY_LIMIT), code: "body_too_large" })), refused);

  const body = '{"query":"tides"}';
  const valid = rawPost(USER_KEY, body.length);
  assert.equal(await valid.answered(), CONTINUE);
  valid.send(body);
  assert.match(await valid.answered(), /^HTTP\/1\.1 200 /);
  valid.close();

  // The app answers an unknown key without reading the body: no 100, and the connection closes, so a body sent anyway
  // is never read as a request.
  const unknown = rawPost("not-a-key-0123456789", body.length);
  const unauthorized = await unknown.answered();
  unknown.close();
  assert.match(unauthorized, /^HTTP\/1\.1 401 /, unauthorized.slice(0, 80));
  assert.match(unauthorized, /\r\nconnection: close\r\n/i);

  // Nor is a body read for a path no route takes it on: its 405 or 404 comes instead of the 100.
  for (const [path, status] of [
    ["/api/v1/sessions/s1", 405],
    ["/api/v1/nothing-here", 404],
  ] as const) {
    const nowhere = rawPost(USER_KEY, body.length, { path });
    const answer = await nowhere.answered();
    nowhere.close();
    assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), `${path}: ${answer.slice(0, 80)}`);
  }

  // Nor one without a Content-Type, declared by its length or sent chunked: its 415 comes instead of the 100.
  for (const chunked of [false, true]) {
    const untyped = rawPost(USER_KEY, body.length, { typed: false, chunked });
    const answer = await untyped.answered();
    untyped.close();
    assert.match(answer, /^HTTP\/1\.1 415 /, `chunked ${chunked}: ${answer.slice(0, 80)}`);
    assert.match(answer, /got none/);
  }
});

/** A valid query body of exactly `length` bytes (JSON allows the trailing spaces). */
const queryOf = (length: number) => '{"query":"What do tides follow?"}'.padEnd(length);

/**
 * Waits until the app holds `bytes` of request bodies, or with `atLeast` that many or more (a body's buffer grows ahead
 * of its bytes): http_request_body_bytes_held.
 */
const untilHeld = (bytes: number, atLeast = false) =>
  waitFor(
    `${bytes} bytes of bodies held`,
    async () => {
      const held = metricValue(await scrape(stack.metricsUrl), "http_request_body_bytes_held");
      return atLeast ? held >= bytes : held === bytes;
    },
    5_000,
  );

test("bodies held at once are bounded per replica and per key, counted as they arrive: past either, a 503 or a 429", async () => {
  // Heads alone hold nothing: three keys' heads declaring half the budget each, read up to their bodies, leave room.
  const heads = [USER_KEY, OTHER_KEY, ADMIN_KEY].map((key) => rawPost(key, BODY_LIMIT));
  for (const head of heads) assert.equal(await head.answered(), CONTINUE);
  assert.equal((await user.post("/api/v1/query", queryOf(BODY_LIMIT))).status, 200);
  for (const head of heads) head.close();

  const first = rawPost(USER_KEY, BODY_LIMIT);
  assert.equal(await first.answered(), CONTINUE);
  first.send(queryOf(BODY_LIMIT).slice(0, -1));
  await untilHeld(BODY_LIMIT - 1, true);
  const own = await user.post("/api/v1/query", queryOf(100));
  assert.equal(own.status, 429, own.text);
  assert.equal(own.body.code, "bodies_busy_key");
  assert.equal(own.headers.get("retry-after"), "1");
  assert.match(
    own.body.error,
    /^this API key already holds 6553[56] bytes of request bodies .* half of BODIES_MAX_BYTES_RECEIVING \(131072\)/,
  );
  // Another key's first body takes what room is left; past it, a body of a third key is a 503.
  const second = rawPost(OTHER_KEY, BODY_LIMIT - 100);
  assert.equal(await second.answered(), CONTINUE);
  second.send(queryOf(BODY_LIMIT - 100).slice(0, -1));
  await untilHeld(2 * BODY_LIMIT - 102, true);
  const third = await api(stack.url, ADMIN_KEY).post("/api/v1/query", queryOf(200));
  assert.equal(third.status, 503, third.text);
  assert.equal(third.body.code, "bodies_busy");
  assert.equal(third.headers.get("retry-after"), "1");
  assert.match(third.body.error, /already holds 1309(70|71|72) bytes of request bodies \(BODIES_MAX_BYTES_RECEIVING 131072\)/);
  // Answered, their bodies are given back.
  for (const [held, body] of [
    [first, queryOf(BODY_LIMIT)],
    [second, queryOf(BODY_LIMIT - 100)],
  ] as const) {
    held.send(body.slice(-1));
    assert.match(await held.answered(), /^HTTP\/1\.1 200 /);
    held.close();
  }
  await untilHeld(0);
});

test("a body cut off midway, declared or chunked, gives its bytes back", async () => {
  for (const chunked of [false, true]) {
    const cut = rawPost(USER_KEY, BODY_LIMIT, { expect: false, chunked });
    const half = "x".repeat(BODY_LIMIT / 2);
    cut.send(chunked ? `${half.length.toString(16)}\r\n${half}\r\n` : half);
    await untilHeld(BODY_LIMIT / 2, true);
    cut.close();
    await untilHeld(0);
  }
});

test("a chunked body is read only once its key is known, and counted against BODY_LIMIT_BYTES as it comes", async () => {
  const chunk = `400\r\n${"x".repeat(1024)}\r\n`;
  // Its body never ends: read before the key was checked, it had no answer until the parser's 408 (REQUEST_TIMEOUT_MS / 2), and
  // 2-3 MiB held per connection meanwhile (probe CC).
  const keyless = rawPost("not-a-key-0123456789", 0, { expect: false, chunked: true });
  keyless.send(chunk);
  assert.match(await keyless.answered(), /^HTTP\/1\.1 401 /);
  keyless.close();
  const over = rawPost(USER_KEY, 0, { expect: false, chunked: true });
  over.send(chunk.repeat(BODY_LIMIT / 1024 + 1));
  const refused = await over.answered();
  over.close();
  assert.match(refused, /^HTTP\/1\.1 413 /);
  assert.ok(refused.endsWith(JSON.stringify({ error: bodyTooLarge(BODY_LIMIT), code: "body_too_large" })), refused);
});

test("every spelling of application/json RFC 9110 allows is taken as JSON", async () => {
  for (const type of [
    "application/json ; charset=utf-8",
    "application/json;",
    "application/json; charset=utf-8;",
    "Application/JSON; x_y=1",
  ]) {
    const res = await user.send("POST", "/api/v1/query", { query: "What do tides follow?" }, { "content-type": type });
    assert.equal(res.status, 200, `${type}: ${res.text.slice(0, 200)}`);
  }
});

test("validation errors list each issue in details", async () => {
  const res = await user.post("/api/v1/query", { query: "", top_k: 0, extra: true });
  assert.equal(res.status, 400);
  const paths = res.body.details.map((d: { path: string }) => d.path);
  assert.ok(paths.includes("query") && paths.includes("top_k"), JSON.stringify(res.body.details));
  assert.ok(res.body.details.some((d: { message: string }) => /extra/.test(d.message)));
});

test("a 400 stays small whatever the body: at most 20 issues listed, each path and message clipped", async () => {
  const unknownKeys = Object.fromEntries(Array.from({ length: 2_500 }, (_, i) => [`unknown_key_${i}`, 1]));
  const longKey = `k${"\u00e9".repeat(300)}`;
  const hundredBad = { documents: Array.from({ length: 100 }, () => ({ text: 1 })) };
  const bodies: Array<[string, unknown, RegExp]> = [
    ["/api/v1/query", { query: "tides", ...unknownKeys }, /^invalid body: Unrecognized keys: "unknown_key_0"/],
    ["/api/v1/documents", hundredBad, /documents\.0\.text/],
    ["/api/v1/query", { query: "tides", filter: { [longKey]: "x" } }, /^invalid body: filter\.k\u00e9+\.\.\. \(308 characters\)/],
  ];
  const answers = new Map<unknown, { body: { details: Array<{ message: string }> } }>();
  for (const [path, body, reason] of bodies) {
    const res = await user.post(path, body);
    answers.set(body, res);
    assert.equal(res.status, 400, res.text);
    assert.match(res.body.error, reason);
    assert.ok(
      res.text.length < 12_000,
      `${path}: a ${res.text.length}-character answer to a ${JSON.stringify(body).length}-character body`,
    );
    for (const { path: at, message } of res.body.details) assert.ok(at.length + message.length < 500, `${at}: ${message}`);
  }
  const many = answers.get(hundredBad)!;
  assert.equal(many.body.details.length, 21);
  assert.equal(many.body.details[20].message, "80 more issues not listed");
  // Exactly as many issues as are listed: no line saying none more.
  const twenty = await user.post("/api/v1/documents", { documents: Array.from({ length: 20 }, () => ({ text: 1 })) });
  assert.equal(twenty.status, 400, twenty.text);
  assert.equal(twenty.body.details.length, 20, JSON.stringify(twenty.body.details.at(-1)));
});

test("a document's title may be null, as sources show a document without one", async () => {
  const res = await user.post("/api/v1/documents", {
    documents: [{ id: "untitled", title: null, text: "Untitled notes on tides." }],
  });
  assert.equal(res.status, 201, res.text);
  const asked = await user.post("/api/v1/query", { query: "What are the untitled notes about?" });
  assert.equal(asked.body.sources.find((s: { id: string }) => s.id === "untitled")?.title, null, asked.text);
});

test("the boundaries themselves are accepted: a 5000-character query, top_k 50, 100 documents, a list of 100", async () => {
  const query = await user.post("/api/v1/query", { query: `${"a".repeat(4999)}?`, top_k: 50 });
  assert.equal(query.status, 200, query.text);
  const filtered = await user.post("/api/v1/query", { query: "tides", filter: { lang: Array(100).fill("en") } });
  assert.equal(filtered.status, 200, filtered.text);
  const longest = { a: Array(100).fill("x".repeat(100)), b: Array(63).fill("y".repeat(100)), c: "z".repeat(84) };
  const full = await user.post("/api/v1/query", { query: "tides", filter: longest });
  assert.equal(full.status, 200, `16,384 characters of filter strings: ${full.text}`);
  // As many objects, arrays and keys as a valid body can hold: 100 documents with every field, each with a list under
  // every metadata key.
  const lists = Object.fromEntries(Array.from({ length: MAX_METADATA_KEYS }, (_, k) => [`k${k}`, [k]]));
  const documents = Array.from({ length: MAX_DOCUMENTS_PER_REQUEST }, (_, i) => ({
    id: `boundary-${i}`,
    title: "a: {title}",
    text: `document ${i} {[`,
    metadata: lists,
  }));
  const body = JSON.stringify({ documents });
  assert.equal(countJsonContainersAndKeys(body, Number.POSITIVE_INFINITY), MAX_BODY_CONTAINERS_AND_KEYS);
  const many = await user.post("/api/v1/documents", body);
  assert.equal(many.status, 201, many.text);
  assert.equal(many.body.documents.length, 100);
});

test("a route that reads no query string refuses one, naming it, rather than ignore it", async () => {
  const admin = api(stack.url, ADMIN_KEY);
  assert.equal((await admin.get("/api/v1/admin/feedback/summary")).status, 200);
  const res = await admin.get("/api/v1/admin/feedback/summary?model=llama3.1%3A8b");
  assert.equal(res.status, 400, res.text);
  assert.equal(res.body.code, "invalid_request");
  assert.match(res.body.error, /^invalid query string: .*"model"/);
});

test("a body holding more objects, arrays and keys than any valid request is refused before it is parsed", async () => {
  const max = MAX_BODY_CONTAINERS_AND_KEYS;
  // Parsed, 2 MiB of `{},` (700,000 objects) held the event loop for 380 ms, and one object of 190,000 keys 540 ms.
  const objects = (n: number) => `{"documents":[${Array(n).fill("{}").join(",")}]}`;
  const nested = `{"query":"x","filter":${"[".repeat(max)}${"]".repeat(max)}}`;
  const manyKeys = `{"query":"x",${Array.from({ length: max }, (_, i) => `"${i}":0`).join(",")}}`;
  for (const [path, body] of [
    ["/api/v1/documents", objects(max - 2)],
    ["/api/v1/query", nested],
    ["/api/v1/query", manyKeys],
  ] as const) {
    const res = await user.post(path, body);
    assert.equal(res.status, 400, res.text.slice(0, 300));
    assert.equal(res.body.error, `invalid body: ${tooManyContainersAndKeys}`);
    assert.equal(res.body.code, "invalid_body");
  }
  // One fewer is parsed and refused by the schema, naming the field.
  const fewer = await user.post("/api/v1/documents", objects(max - 3));
  assert.equal(fewer.status, 400, fewer.text.slice(0, 300));
  assert.match(fewer.body.error, /^invalid body: documents/);
});

test("a request still running after REQUEST_TIMEOUT_MS is answered 504 with a reason", async () => {
  // On a replica of its own with a shorter deadline than the file's generous one, which this test waited out.
  const requestTimeout = 1000;
  const replica = await startApp({ ...stack.env, REQUEST_TIMEOUT_MS: String(requestTimeout) });
  stack.fakes.ollama.knobs.latencyMs = requestTimeout + 1000; // below OLLAMA_TIMEOUT_MS, above the request timeout
  try {
    const res = await api(replica.url, USER_KEY).post("/api/v1/query", { query: "a question that takes too long" });
    assert.equal(res.status, 504, res.text);
    assert.equal(res.body.error, `request took longer than ${requestTimeout} ms`);
    assert.equal(res.body.code, "request_timeout");
  } finally {
    stack.fakes.ollama.knobs.latencyMs = 0;
    await replica.stop();
  }
});
