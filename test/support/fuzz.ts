import { connect } from "node:net";

/** Small seeded PRNG (mulberry32): a failing fuzz run can be replayed with the same seed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}

export type Rng = ReturnType<typeof prng>;

/** Strings Postgres text/jsonb, JSON parsers and naive code trip over. */
const NASTY = [
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "\udbff\udfff", // a valid pair (U+10FFFF)
  "😀",
  "\uffff",
  "\u202e",
  "' OR 1=1 --",
  "%00",
  "\\u0000",
  "$ne",
  "__proto__",
  "constructor",
  "".padEnd(300, "x"),
  " ",
  "",
  "\n\r\t",
  "<script>",
];

/** Objects that code reading a string or a list by its `length`, or converting a value to text, trips over. */
const LOOKALIKES: unknown[] = [
  { length: { toString: 1 } },
  { length: { valueOf: 1, toString: [] } },
  { length: 3, 0: "a", 1: "b", 2: "c" },
  { length: -1 },
  { toString: 1, valueOf: 1 },
];

function value(r: Rng, depth: number): unknown {
  switch (r.int(depth > 2 ? 5 : 9)) {
    case 0:
      return r.pick(NASTY) + (r.chance(0.5) ? "question about tides?" : "");
    case 1:
      return r.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 50, 5]);
    case 2:
      return r.chance(0.5);
    case 3:
      return null;
    case 4:
      return "word ".repeat(r.int(20)) + r.pick(NASTY);
    case 5:
      return Array.from({ length: r.int(4) }, () => value(r, depth + 1));
    case 6:
      return r.pick(LOOKALIKES);
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(4); i > 0; i--)
        o[r.chance(0.7) ? r.pick(["lang", "tag", "a", "n", "length", "toString"]) : r.pick(NASTY)] = value(r, depth + 1);
      return o;
    }
  }
}

/** A body that is mostly the right shape for `route`, with one or more fields replaced by hostile values. */
export function fuzzBody(r: Rng, route: string): unknown {
  const shapes: Record<string, () => Record<string, unknown>> = {
    "/api/v1/query": () => ({ query: "What causes tides?", top_k: 3 }),
    "/api/v1/documents": () => ({
      documents: [{ id: `doc-${r.int(5)}`, title: "Title", text: "Tides follow the moon.", metadata: { lang: "en" } }],
    }),
    "/api/v1/feedback": () => ({ request_id: "r-1", quality_score: 4, comment: "ok" }),
  };
  const base = (shapes[route] ?? shapes["/api/v1/query"]!)();
  const target =
    route === "/api/v1/documents" ? ((base.documents as Array<Record<string, unknown>>)[0] as Record<string, unknown>) : base;
  const keys = Object.keys(target);
  for (let i = 1 + r.int(2); i > 0; i--) {
    if (r.chance(0.8)) target[r.pick(keys)] = value(r, 0);
    else target[r.pick(["filter", "session_id", "metadata", "is_correct", "stream", "extra"])] = value(r, 0);
  }
  return base;
}

/** Raw JSON text with escapes JSON.stringify never writes (lone surrogates, NUL) or that are invalid. */
export function fuzzRawJson(r: Rng): string {
  const esc = r.pick([
    "\\u0000",
    "\\ud800",
    "\\udc00x",
    "\\uDBFF",
    "\\u00",
    "\\x00",
    "\\",
    "\\uZZZZ",
    "\u0000",
    "\\ud83d\\ude00",
  ]);
  return r.pick([
    `{"query":"tides ${esc}"}`,
    `{"documents":[{"text":"t ${esc}","title":"${esc}"}]}`,
    `{"documents":[{"text":"t","metadata":{"lang":"${esc}"}}]}`,
    `{"request_id":"${esc}","quality_score":3,"comment":"${esc}"}`,
    `{"query":"x","filter":{"lang":"${esc}"}}`,
    `{"query":"x","session_id":"${esc}"}`,
    `{"query":"x",`,
    `[${esc}]`,
    `{"query":1e999999}`,
    '{"query":"a"}'.repeat(2),
  ]);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends raw bytes on a fresh connection and reads the first response (or null when the server closes silently). */
export function rawRequest(port: number, bytes: string | Buffer, timeoutMs = 3000): Promise<RawResponse | null> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponses(text)[0] ?? null);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (d) => {
      text += d.toString("latin1");
      if (parseResponses(text, false).length > 0) done();
    });
    socket.on("end", done);
    socket.on("error", done);
    socket.write(bytes);
  });
}

/** Requests Node's HTTP parser, the server adapter or http.ts refuse before the app sees them. */
export function malformedRequests(authorization: string): string[] {
  const body = '{"query":"tides"}';
  const post = (head: string) => `${head}\r\n\r\n${body}`;
  const chunkedQuery = (framing: string, version = "1.1") =>
    `POST /api/v1/query HTTP/${version}\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\n${framing}` +
    `\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
  return [
    "GARBAGE\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    "GET /\u0000 HTTP/1.1\r\nHost: x\r\n\r\n",
    `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    "GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    "GET /api\\v1/query HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /health HTTP/1.1\r\nHost: bad host name\r\n\r\n",
    "GET /health HTTP/1.1\r\nHost: a@b\r\n\r\n",
    "GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET health HTTP/1.1\r\nHost: x\r\n\r\n",
    post(
      `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 6`,
    ),
    post(`POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\nContent-Length: -1`),
    post(
      `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 17`,
    ),
    `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`,
    // Answered by Node's server itself unless the app listens: an empty 417, and a CONNECT closed without a response.
    post(
      `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\nExpect: x\r\nContent-Length: 17`,
    ),
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    // HTTP/1.1 requires a Host (Node's own refusal is an empty 400). These hosts pass @hono/node-server's quick check
    // unparsed, then fail the URL parser when the app first reads the body or builds a URL: a 500, without a key.
    "GET /health HTTP/1.1\r\n\r\n",
    post(
      `POST /api/v1/query HTTP/1.1\r\nHost: 256.0.0.1\r\n${authorization}\r\nContent-Type: application/json\r\nContent-Length: 17`,
    ),
    "GET /.well-known/agent.json HTTP/1.1\r\nHost: xn--a.com\r\n\r\n",
    "DELETE /api/v1/documents/x HTTP/1.1\r\nHost: 1.2.3.4.5\r\n\r\n",
    // Served before: under the first of two Hosts; with the chunks taken off and the gzip left on (read as JSON); and
    // an HTTP/1.0 request framed by chunks, which RFC 9112 6.1 calls faulty framing.
    "GET /health HTTP/1.1\r\nHost: x\r\nhost: other.example\r\n\r\n",
    chunkedQuery("Transfer-Encoding: gzip, chunked"),
    chunkedQuery("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"),
    chunkedQuery("Transfer-Encoding: chunked", "1.0"),
    // A second Host, chunks over gzip, an unknown Expect again, each after 2,000 header lines: Node's default
    // maxHeadersCount (2,000) left every later line out of req.headers, though its parser still framed the body by them,
    // and all three were served (fuzz, wave 62).
    ...[
      "GET /health HTTP/1.1\r\nHost: x\r\nhost: other.example\r\n\r\n",
      chunkedQuery("Transfer-Encoding: gzip, chunked"),
      post(
        `POST /api/v1/query HTTP/1.1\r\nHost: x\r\n${authorization}\r\nContent-Type: application/json\r\nExpect: x\r\nContent-Length: 17`,
      ),
    ].map((raw) => raw.replace("\r\nHost: x\r\n", `\r\nHost: x\r\n${"a: 1\r\n".repeat(2_000)}`)),
  ];
}

/**
 * The responses in bytes read from one connection, in order: each body framed by its content-length, decoded from its
 * chunks, or, with neither, read to the end of the connection once it is `closed` (RFC 9112 6.3). Stops at the first
 * response that is cut short.
 */
export function parseResponses(text: string, closed = true): RawResponse[] {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf("\r\n\r\n", at);
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text.slice(at, at + 12));
    if (headEnd < 0 || !status) return responses;
    const headers: Record<string, string> = {};
    for (const line of text.slice(at, headEnd).split("\r\n").slice(1)) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    at = headEnd + 4;
    let body = "";
    if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      for (;;) {
        const sizeEnd = text.indexOf("\r\n", at);
        if (sizeEnd < 0) return responses;
        const size = Number.parseInt(text.slice(at, sizeEnd), 16);
        if (Number.isNaN(size) || text.length < sizeEnd + 2 + size + 2) return responses;
        body += text.slice(sizeEnd + 2, sizeEnd + 2 + size);
        at = sizeEnd + 2 + size + 2;
        if (size === 0) break;
      }
    } else {
      const length = Number(headers["content-length"] ?? (closed ? text.length - at : Number.NaN));
      if (!(text.length >= at + length)) return responses;
      body = text.slice(at, at + length);
      at += length;
    }
    responses.push({ status: Number(status[1]), headers, body });
  }
}

/** Sends raw bytes on a fresh connection and reads until the server closes it: the responses it sent. */
export function rawExchange(port: number, bytes: string, timeoutMs = 5000, host = "127.0.0.1"): Promise<RawResponse[]> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    let text = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponses(text));
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (d) => {
      text += d.toString("latin1");
    });
    socket.on("close", done);
    socket.on("error", () => {});
    socket.write(bytes);
  });
}
