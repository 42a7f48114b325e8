/**
 * Requests answered outside the app's routes, each with a JSON `{error, code}` and counted in http_requests_total under the
 * route "unmatched": bytes Node's parser refuses, requests Node's server would answer itself (CONNECT, Expect), and
 * heads the app must not see (a bad Host, a body framing it cannot trust).
 */
import { type IncomingMessage, STATUS_CODES, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { clip } from "./text.ts";
import { ERROR_STATUS, type ErrorCode, errorBody } from "./errors.ts";

/** The methods the API's routes use: a refused CONNECT's Allow, the `method` label's values, CORS' allowed methods. */
export const SERVED_METHODS = ["GET", "HEAD", "POST", "DELETE"];
const servedMethod = new Set(SERVED_METHODS);
const ALLOW = SERVED_METHODS.join(", ");

/**
 * A request's method as the `method` label: one the API serves, or `other`. Node's parser takes 35 methods, and each
 * made a series of its own for every route and status a client could reach: one pass of them all took a replica's
 * request series from 89 to 3,476 (probe CN).
 */
export const methodLabel = (method: string | undefined): string =>
  method !== undefined && servedMethod.has(method) ? method : "other";

/** Where a refusal outside the app's routes goes: its count (the API port's, none on the ops port) and its log line. */
export interface RefusalReport {
  metrics: Metrics | undefined;
  log: Logger;
}

/**
 * A request answered outside the app's routes: counted in http_requests_total under the route "unmatched", and logged
 * as the app logs each request it answers, with the reason it was told (clipped: it may quote the client's bytes).
 * Counted alone, a client refused by the parser left no line to find it by (probe CJ).
 */
export function reportUnmatched(to: RefusalReport, method: string | undefined, status: number, reason: string): void {
  to.log.info({ ...countUnmatched(to.metrics, method, status), error: clip(reason) }, "refused before the app");
}

/** Counts a request answered outside the app's routes under the route "unmatched"; returns its labels. */
export function countUnmatched(metrics: Metrics | undefined, method: string | undefined, status: number) {
  const labels = { method: methodLabel(method), route: "unmatched", status: String(status) };
  metrics?.httpRequests.inc(labels);
  return labels;
}

/**
 * Requests Node's parser refused while the app was handling them (a bad chunk in the body): the parser's JSON 4xx is
 * their answer, and the socket is closed under the app's response. The app would read that as a client that went
 * away (499); it reports this status instead, under its route (observe.ts).
 */
const refusedMidRequest = new WeakMap<IncomingMessage, number>();

/** The status Node's parser answered this request with while the app was handling it, if it did. */
export const refusedByParser = (req: IncomingMessage): number | undefined => refusedMidRequest.get(req);

export const jsonError = (code: ErrorCode, error: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(errorBody(code, error)), {
    status: ERROR_STATUS[code],
    headers: { "content-type": "application/json", ...headers },
  });

/**
 * How long a connection stays open once its refusal is written, for its client to read it before the close: then it
 * is destroyed. Kept open by its client, a connection refused by the parser (a 400) or handed over (a CONNECT's 405)
 * stayed for good, since Node no longer times those out, and a drain waited for it to the end of its grace (probe AV,
 * review N13).
 */
const CLOSE_LINGER_MS = 2_000;

const destroyAfterLinger = (socket: Socket) => setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();

/** A JSON `{error, code}` response written straight to the socket, which is then closed: for bytes the app never sees. */
function refuseOnSocket(socket: Socket, code: ErrorCode, error: string, headers = ""): void {
  const status = ERROR_STATUS[code];
  const body = JSON.stringify(errorBody(code, error));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
  );
  destroyAfterLinger(socket);
}

/**
 * Parser errors that mean the client left: a reset, or the connection ended mid-request (llhttp's error for an end of
 * input in the middle of a message). Nobody is there to answer; a request the app is handling counts its own 499.
 */
const CLIENT_LEFT = new Set(["ECONNRESET", "HPE_INVALID_EOF_STATE"]);

/** The connection sent nothing at all before its time ran out: no request to answer or count (nginx closes it too). */
const silentConnection = (err: NodeJS.ErrnoException, socket: Socket) =>
  err.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.bytesRead === 0;

/** Connections with a refusal decided: llhttp reports its error again for every later chunk. */
const refusing = new WeakSet<Socket>();

/** A ServerSocket's field for the answer it closes with. */
export const lastAnswer = Symbol("lastAnswer");

/** Node's own fields on a server connection (node:_http_server, _http_common; Node 20), and the one this module sets. */
export type ServerSocket = Socket & {
  /** The response being written: with pipelining, the first of those still owed. */
  _httpMessage?: ServerResponse | null;
  /** The last request the parser began, complete or not (set as its head is parsed). */
  parser?: { incoming?: IncomingMessage | null } | null;
  /** Node's "do not read" flag (its pause for a client that does not read its answers). */
  _paused?: boolean;
  /** The connection's libuv handle: whether it reads, how to start it, and the bytes of the write in progress it holds. */
  _handle?: { reading?: boolean; readStart(): number; writeQueueSize?: number } | null;
  /** The answer this connection closes with, once a refusal decided it: nothing it brings after is served. */
  [lastAnswer]?: ServerResponse;
};

/**
 * Makes `res` the connection's last answer. Node goes on parsing and serving a connection whose answer says `close`:
 * the app ran a DELETE pipelined behind a request refused for its framing, whose bytes RFC 9112 6.1 says not to trust.
 * So its parser is fed no more, and what still comes is read and dropped (kept unread instead, the connection was read
 * again by Node's own resume, socketOnDrain, as soon as an answer was written).
 * Node closes the connection once `res` is out (`destroySoon`). Closed while the client was still sending, it was reset,
 * and the client lost answers it had not read yet (probe AY: 1 of 34 answers of 64 KB in 4 of 5 tries). Its write side
 * is ended instead, and it is read for CLOSE_LINGER_MS more, unless the client closes first (a lingering close).
 */
export function closeWith(socket: ServerSocket, res: ServerResponse): void {
  socket[lastAnswer] = res;
  // On TCP the parser reads the connection itself. A 'data' listener added through Node's wrapped `on` takes it off
  // (unconsume); the one Node keeps for other streams would feed it again, so it goes first.
  for (const feed of socket.listeners("data")) socket.off("data", feed as (chunk: Buffer) => void);
  socket.on("data", () => {});
  const read = () => {
    socket._paused = false;
    socket.resume();
    // Paused by Node for an answer backing up, the connection's handle stopped reading under the parser, and the
    // stream's own flag was left saying it reads: resume() alone never read again (review N12: reset under 1.2 MB of
    // an 8 MB answer). Node's onSocketResume restarts it the same way.
    if (socket._handle && !socket._handle.reading) {
      socket._handle.reading = true;
      socket._handle.readStart();
    }
  };
  read();
  socket.destroySoon = () => {
    socket.end();
    read();
    destroyAfterLinger(socket);
  };
}

/**
 * Runs `then` once the connection's answers to pipelined requests ahead of `own` are out. Node writes one response at
 * a time (`socket._httpMessage`), and gives the socket to the next when one finishes, before its `close`. Not
 * `writableFinished`: it is true before the next is given the socket, and a refusal written then cut the answers still
 * queued (probe AY: 2 of 20 answers before a CONNECT's 405).
 */
function afterEarlierAnswers(socket: ServerSocket, own: IncomingMessage | undefined, then: () => void): void {
  const current = socket._httpMessage;
  if (!current || current.req === own) then();
  else current.once("close", () => afterEarlierAnswers(socket, own, then));
}

/** The parser's refusals other than a malformed request's 400 (`malformed_http`). */
const PARSER_REFUSAL_CODES: Record<string, ErrorCode> = {
  HPE_HEADER_OVERFLOW: "headers_too_large",
  ERR_HTTP_REQUEST_TIMEOUT: "request_incomplete",
};

/**
 * Node's HTTP parser refused the bytes, before the app saw the request or in the middle of its body: answer like the
 * app would, then close. The answers to whole requests pipelined before those bytes go out first.
 */
export function onClientError(report: RefusalReport) {
  return (err: NodeJS.ErrnoException, socket: ServerSocket) => {
    // A refusal decided, by the parser or for a request it read (its parser is no longer fed, but finishes the chunk):
    // nothing may follow the answer that closes the connection.
    if (refusing.has(socket) || socket[lastAnswer]) return;
    if (CLIENT_LEFT.has(err.code ?? "") || silentConnection(err, socket) || !socket.writable) {
      socket.destroy();
      return;
    }
    refusing.add(socket);
    // Bytes after a request that asked to close the connection: the answer carrying `close` is the last one (RFC 9112
    // 9.6), not a 400 after it, counted among the API's 4xx.
    if (err.code === "HPE_CLOSED_CONNECTION") {
      afterEarlierAnswers(socket, undefined, () => socket.end());
      return;
    }
    const code = PARSER_REFUSAL_CODES[err.code ?? ""] ?? "malformed_http";
    const status = ERROR_STATUS[code];
    const reason = (err as { reason?: string }).reason ?? err.message;
    const parsing = socket.parser?.incoming;
    const refusedBody = parsing && !parsing.complete ? parsing : undefined;
    afterEarlierAnswers(socket, refusedBody, () => {
      // The app may have answered that request already, from its head (a 413 from Content-Length): that answer stands.
      const answered = refusedBody && (socket._httpMessage?.req !== refusedBody || socket._httpMessage.headersSent);
      if (!socket.writable || answered) {
        socket.destroy();
        return;
      }
      // A request the app is handling is counted by the app, once, under its route.
      const error = `malformed HTTP request: ${reason}${err.code ? ` (${err.code})` : ""}`;
      if (refusedBody) refusedMidRequest.set(refusedBody, status);
      else reportUnmatched(report, undefined, status, error);
      refuseOnSocket(socket, code, error);
    });
  };
}

/** A JSON `{error, code}` for a request the app never sees, counted as `unmatched`; the connection closes after it. */
export function refuseRequest(
  report: RefusalReport,
  req: IncomingMessage,
  res: ServerResponse,
  code: ErrorCode,
  error: string,
): void {
  const status = ERROR_STATUS[code];
  reportUnmatched(report, req.method, status, error);
  closeWith(req.socket, res);
  const body = JSON.stringify(errorBody(code, error));
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}

/** How many Host lines the request's head has: Node keeps the first of several in `headers.host`. */
function hostLines(rawHeaders: string[]): number {
  let lines = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === "host") lines++;
  }
  return lines;
}

/**
 * Why a request's Host cannot be served, if it cannot:
 * - none on HTTP/1.1, or more than one (RFC 9112 3.2). Node's own refusal of none (requireHostHeader) is an empty 400
 *   nobody counts; two were served under the first.
 * - one the URL parser refuses though @hono/node-server (2.1.9 buildUrl) lets it through unparsed, as it does any host
 *   of `[a-z0-9._-]` (`256.0.0.1`, `1.2.3.4.5`, `xn--`): the app's first `new Request(url)`, reading the body, threw a
 *   500, without an API key.
 * `known` is the last host that passed: nearly every request repeats it, and the parse costs a third of a microsecond.
 */
export function hostRefusal(req: IncomingMessage, known: { host?: string }): string | undefined {
  const host = req.headers.host;
  if (host === undefined) return req.httpVersion === "1.1" ? "missing Host header" : undefined;
  if (hostLines(req.rawHeaders) > 1) return "more than one Host header";
  if (host === known.host) return undefined;
  if (!URL.canParse(`http://${host}/`)) return "invalid Host header";
  known.host = host;
  return undefined;
}

/**
 * Why a request's body framing cannot be trusted, if it cannot (RFC 9112 6.1):
 * - a transfer coding other than `chunked`, before it or alone: llhttp takes the chunks off and hands the app the bytes
 *   still coded (a gzip body read as JSON);
 * - any Transfer-Encoding on HTTP/1.0, which predates it: the RFC's "faulty framing".
 * The RFC's status for a coding the server does not implement is 501; a 400 keeps a client's bytes out of the 5xx rate
 * the alerts watch. llhttp itself refuses `chunked` anywhere but last.
 */
export function framingRefusal(req: IncomingMessage): string | undefined {
  const coding = req.headers["transfer-encoding"];
  if (coding === undefined) return undefined;
  if (req.httpVersion !== "1.1") return `Transfer-Encoding on an HTTP/${req.httpVersion} request`;
  if (coding.toLowerCase() === "chunked") return undefined;
  return `unsupported Transfer-Encoding ${clip(coding)}: only chunked`;
}

/**
 * Requests Node's server answers itself unless told otherwise: a CONNECT (the socket is closed without a word), an
 * `Expect` other than 100-continue (an empty 417), and a 100-continue (a 100 at once, whatever the app then answers).
 * Each refusal gets the app's JSON `{error, code}`; the 417 also what `startResponse` gives every response.
 */
export function refuseUnservable(server: Server, report: RefusalReport, startResponse: (res: ServerResponse) => void) {
  server.on("connect", (_req: IncomingMessage, socket: ServerSocket) => {
    // Node hands the socket over without its own error listener: a client resetting it would end the process.
    socket.on("error", () => socket.destroy());
    // Read and dropped: a client's end or reset is seen, and the socket closes with it.
    socket.resume();
    // Read after the answer that closes the connection: not answered either. That answer's end closes the connection
    // (closeWith's destroySoon, which Node still calls on a socket it handed over).
    if (socket[lastAnswer]) return;
    const error = `CONNECT is not supported: ${ALLOW} only`;
    reportUnmatched(report, "CONNECT", 405, error);
    // The answers to requests pipelined before it go out first: ended at once, the socket dropped them, and the client
    // read the 405 as its request's answer (the request carried out all the same).
    afterEarlierAnswers(socket, undefined, () => {
      refuseOnSocket(socket, "method_not_allowed", error, `Allow: ${ALLOW}\r\n`);
    });
  });
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    // Read after the answer that closes its connection: not answered, as in listenHttp's request listener. Refused
    // again, it was counted without being sent, and the drain waited for it to the end of its grace.
    if ((req.socket as ServerSocket)[lastAnswer]) return;
    startResponse(res);
    refuseRequest(
      report,
      req,
      res,
      "unsupported_expectation",
      `unsupported Expect header: ${req.headers.expect}; only 100-continue`,
    );
  });
  // A client that asks before sending its body gets the 100 only once the app reads the body. A request the app
  // answers without it (a 413 decided from Content-Length, a 401, 429 or 404, the bodies budget's 503) is answered
  // before the client sends it (RFC 9110 10.1.1 lets a server omit the 100 for a request it will reject). With Node's
  // 100 at once, the client sent the whole body and only then got its refusal.
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    continueOnRead(req, res);
    server.emit("request", req, res);
  });
}

/**
 * Sends the 100 Continue when the body is first read: @hono/node-server (2.1, readBodyDirect) reads it with a `data`
 * listener, and a stream conversion with `readable`. A response sent without it closes the connection (Node's
 * ServerResponse does when a 100 was expected and not sent), so a body sent anyway is not read as the next request.
 */
function continueOnRead(req: IncomingMessage, res: ServerResponse): void {
  const onListener = (event: string | symbol) => {
    if (event !== "data" && event !== "readable") return;
    req.off("newListener", onListener);
    if (!res.headersSent) res.writeContinue();
  };
  req.on("newListener", onListener);
}
