import { createServer, type IncomingMessage, STATUS_CODES, type Server, type ServerResponse } from "node:http";
import { Server as NetServer, type AddressInfo, type Socket } from "node:net";
import { getRequestListener, RequestError } from "@hono/node-server";
import { describe } from "./errors.ts";
import { clip } from "./text.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** A request answered outside the app's routes, counted in http_requests_total under the route "unmatched". */
const countUnmatched = (metrics: Metrics | undefined, method: string | undefined, status: number) =>
  metrics?.httpRequests.inc({ method: method ?? "unknown", route: "unmatched", status: String(status) });

/**
 * Requests Node's parser refused while the app was handling them (a bad chunk in the body): the parser's JSON 4xx is
 * their answer, and the socket is closed under the app's response. The app would read that as a client that went
 * away (499); it reports this status instead, under its route (observe.ts).
 */
const refusedMidRequest = new WeakMap<IncomingMessage, number>();

/** The status Node's parser answered this request with while the app was handling it, if it did. */
export const refusedByParser = (req: IncomingMessage): number | undefined => refusedMidRequest.get(req);

const jsonError = (status: number, error: string) =>
  new Response(JSON.stringify({ error }), { status, headers: { "content-type": "application/json" } });

/** A JSON `{error}` response written straight to the socket, which is then closed: for bytes the app never sees. */
function refuseOnSocket(socket: Socket, status: number, error: string, headers = ""): void {
  const body = JSON.stringify({ error });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
  );
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

/** Node's own fields on a server connection (node:_http_server, _http_common; Node 20). */
type ServerSocket = Socket & {
  /** The response being written: with pipelining, the first of those still owed. */
  _httpMessage?: ServerResponse | null;
  /** The last request the parser began, complete or not (set as its head is parsed). */
  parser?: { incoming?: IncomingMessage | null } | null;
  /** Set with `pause()` to keep the connection unread: Node resumes one without it when a request's body is read. */
  _paused?: boolean;
};

/**
 * Runs `then` once the connection's answers to pipelined requests ahead of `own` are out. Node writes one response at
 * a time (`socket._httpMessage`), and gives the socket to the next when one finishes, before its `close`.
 */
function afterEarlierAnswers(socket: ServerSocket, own: IncomingMessage | undefined, then: () => void): void {
  const current = socket._httpMessage;
  if (!current || current.req === own || current.writableFinished) then();
  else current.once("close", () => afterEarlierAnswers(socket, own, then));
}

/**
 * Node's HTTP parser refused the bytes, before the app saw the request or in the middle of its body: answer like the
 * app would, then close. The answers to whole requests pipelined before those bytes go out first.
 */
function onClientError(metrics: Metrics | undefined) {
  return (err: NodeJS.ErrnoException, socket: ServerSocket) => {
    if (refusing.has(socket)) return;
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
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
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
      if (refusedBody) refusedMidRequest.set(refusedBody, status);
      else countUnmatched(metrics, undefined, status);
      refuseOnSocket(socket, status, `malformed HTTP request: ${reason}${err.code ? ` (${err.code})` : ""}`);
    });
  };
}

/** A JSON `{error}` for a request the app never sees, counted as `unmatched`; the connection closes after it. */
function refuseRequest(
  metrics: Metrics | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  error: string,
): void {
  countUnmatched(metrics, req.method, status);
  const body = JSON.stringify({ error });
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
function hostRefusal(req: IncomingMessage, known: { host?: string }): string | undefined {
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
 * - a transfer coding before `chunked`: llhttp takes the chunks off and hands the app the bytes still coded (a gzip
 *   body read as JSON);
 * - any Transfer-Encoding on HTTP/1.0, which predates it: the RFC's "faulty framing".
 * The RFC's status for a coding the server does not implement is 501; a 400 keeps a client's bytes out of the 5xx rate
 * the alerts watch. llhttp itself refuses `chunked` anywhere but last.
 */
function framingRefusal(req: IncomingMessage): string | undefined {
  const coding = req.headers["transfer-encoding"];
  if (coding === undefined) return undefined;
  if (req.httpVersion !== "1.1") return `Transfer-Encoding on an HTTP/${req.httpVersion} request`;
  if (coding.toLowerCase() === "chunked") return undefined;
  return `unsupported Transfer-Encoding ${clip(coding)}: only chunked`;
}

/**
 * Requests a connection may have waiting behind the answer it is being sent. Node reads and starts every request a
 * client pipelines, however many are still unanswered: one connection had 5,000 running in the app at once from a
 * single write (`.scratch/pipe/flood.ts`), and 4,000 unauthenticated ones took 160 MB (probe AV). Clients that
 * pipeline at all (undici does not by default) go a few deep.
 */
export const MAX_PIPELINED = 32;

/** Set on a connection: how many of its requests wait behind another's answer, or the 429 refusing one too many. */
const pipelined = Symbol("pipelined");

/**
 * What becomes of a request on its connection: served; `refuse`d as one too many waiting, with a 429 and
 * `Connection: close` once the answers ahead of it are out; or `drop`ped, read after that refusal, since nothing may
 * follow a `close` (RFC 9112 9.6). From the refusal on the connection is not read (Node's own pause for a client that
 * does not read its answers). A request with no answer ahead of it costs one comparison.
 */
function pipelineTurn(socket: Connection, res: ServerResponse): "serve" | "refuse" | "drop" {
  const waiting = socket[pipelined];
  if (typeof waiting === "object") {
    // The refusal stays the connection's last answer: a drain waits for that one, not for an answer never to be sent.
    socket[latestResponse] = waiting;
    return "drop";
  }
  if (socket._httpMessage === res) return "serve";
  if ((waiting ?? 0) < MAX_PIPELINED) {
    socket[pipelined] = (waiting ?? 0) + 1;
    res.once("close", () => {
      const now = socket[pipelined];
      if (typeof now === "number") socket[pipelined] = now - 1;
    });
    return "serve";
  }
  socket[pipelined] = res;
  socket._paused = true;
  socket.pause();
  return "refuse";
}

/** The methods the API's routes use (the Allow header of a refused CONNECT). */
const SERVED_METHODS = "GET, HEAD, POST, DELETE";

/**
 * How long a refused CONNECT's connection stays open once its 405 is written, for the client to read it. Node hands
 * the socket over and no longer times it out or closes it: kept open by the client, it stayed for good, and a drain
 * waited for it past SIGKILL (probe AV).
 */
const REFUSED_CONNECT_LINGER_MS = 2_000;

/**
 * Requests Node's server answers itself unless told otherwise: a CONNECT (the socket is closed without a word), an
 * `Expect` other than 100-continue (an empty 417), and a 100-continue (a 100 at once, whatever the app then answers).
 * Each refusal gets the app's JSON `{error}`; the 417 also what `startResponse` gives every response.
 */
function refuseUnservable(server: Server, metrics: Metrics | undefined, startResponse: (res: ServerResponse) => void) {
  server.on("connect", (_req: IncomingMessage, socket: ServerSocket) => {
    // Node hands the socket over without its own error listener: a client resetting it would end the process.
    socket.on("error", () => socket.destroy());
    // Read and dropped: a client's end or reset is seen, and the socket closes with it.
    socket.resume();
    // Node took its own timeout listener off: the write timeout an answer ahead of it armed (armWriteTimeout) would no
    // longer close a client that stopped reading, and the 405 waits for that answer.
    socket.on("timeout", () => socket.destroy());
    countUnmatched(metrics, "CONNECT", 405);
    // The answers to requests pipelined before it go out first: ended at once, the socket dropped them, and the client
    // read the 405 as its request's answer (the request carried out all the same).
    afterEarlierAnswers(socket, undefined, () => {
      refuseOnSocket(socket, 405, `CONNECT is not supported: ${SERVED_METHODS} only`, `Allow: ${SERVED_METHODS}\r\n`);
      setTimeout(() => socket.destroy(), REFUSED_CONNECT_LINGER_MS).unref();
    });
  });
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    startResponse(res);
    refuseRequest(metrics, req, res, 417, `unsupported Expect header: ${req.headers.expect}; only 100-continue`);
  });
  // A client that asks before sending its body gets the 100 only once the app reads the body. A request the app
  // answers without it (a 413 decided from Content-Length, a 401, 429 or 404) is answered before the client sends it
  // (RFC 9110 10.1.1 lets a server omit the 100 for a request it will reject). With Node's 100 at once, the client sent
  // the whole body and only then got its refusal.
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

/** How long an idle keep-alive connection may still bring one last request during a drain. */
const IDLE_GRACE_MS = 1_000;

/** Set on a connection by each request it brings (a property, not a per-request listener: this is the hot path). */
const latestResponse = Symbol("latestResponse");

type Connection = ServerSocket & { [latestResponse]?: ServerResponse; [pipelined]?: number | ServerResponse };

export interface HttpServer {
  server: Server;
  port: number;
  /**
   * Graceful stop: see `close` below. Resolves when every connection is gone; true when the grace period ran out with
   * an answer still unfinished (cut).
   */
  close(graceMs: number): Promise<boolean>;
}

/**
 * Serves a fetch handler on Node's HTTP server with every refusal as JSON: parser errors (`clientError`) and the
 * adapter's own (bad Host header, bad URL: @hono/node-server's errorHandler) are 4xx `{error}` instead of an empty body.
 */
export async function listenHttp(
  fetch: (req: Request) => Response | Promise<Response>,
  opts: {
    port: number;
    host: string;
    /** Where refusals the app never sees are counted (http_requests_total, route "unmatched"); none on the ops port. */
    metrics: Metrics | undefined;
    log: Logger;
    keepAliveTimeoutMs: number;
    /** How long a client may take to send a whole request (its head and body); then a 408. Node's default: 5 min. */
    requestTimeoutMs?: number;
    /** Set on every response before the app runs; a header the app sets itself wins. */
    responseHeaders?: ReadonlyArray<readonly [string, string]>;
  },
): Promise<HttpServer> {
  const listener = getRequestListener(fetch, {
    hostname: opts.host,
    errorHandler: (err) => {
      if (err instanceof RequestError) {
        countUnmatched(opts.metrics, undefined, 400);
        return jsonError(400, `malformed request: ${err.message}`);
      }
      opts.log.error({ err: describe(err) }, "request failed in the HTTP adapter");
      countUnmatched(opts.metrics, undefined, 500); // seen by the 5xx alert like the app's own
      return jsonError(500, "internal error");
    },
  });
  // A request's head and body must arrive within requestTimeout of its first byte (headersTimeout, Node's default,
  // is the lesser of 60 s and that). Node 20 counts neither from the end of the previous request: a keep-alive
  // connection may idle longer than both. headersTimeout was keepAliveTimeout + 1 s, advice from before Node 18's
  // rewrite of these timers; above requestTimeout, it also held requestTimeout back until itself (Node 20.20).
  // Node checks every connectionsCheckingInterval (default 30 s): a quarter of the timeout cuts at most 25 % late.
  const knownHost: { host?: string } = {};
  const server = createServer(
    {
      requireHostHeader: false, // refused by hostRefusal instead, as JSON
      ...(opts.requestTimeoutMs === undefined
        ? {}
        : {
            requestTimeout: opts.requestTimeoutMs,
            connectionsCheckingInterval: Math.min(30_000, Math.ceil(opts.requestTimeoutMs / 4)),
          }),
    },
    (req, res) => {
      const turn = pipelineTurn(req.socket, res);
      if (turn === "drop") return;
      if (turn === "refuse") {
        const error = `more than ${MAX_PIPELINED} requests waiting on one connection: send more once they are answered`;
        return refuseRequest(opts.metrics, req, res, 429, error);
      }
      const refusal = hostRefusal(req, knownHost) ?? framingRefusal(req);
      if (refusal === undefined) return listener(req, res);
      refuseRequest(opts.metrics, req, res, 400, refusal);
    },
  );
  // Longer than the load balancer's idle timeout (HTTP_KEEP_ALIVE_TIMEOUT_MS): a target closing an idle connection
  // first is a 502 at the load balancer.
  server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  let draining = false;
  const responseHeaders = opts.responseHeaders ?? [];
  // Every response sent while draining closes its connection, so a keep-alive client sends its next request to
  // another replica instead of to a server about to cut it. The drain also tells the responses it finds in flight.
  const connections = new Set<Connection>();
  server.on("connection", (socket: Connection) => {
    connections.add(socket);
    socket.once("close", () => connections.delete(socket));
  });
  // Once a whole answer is handed to its connection ('prefinish') and some of it waits in this process for the client
  // to read, the connection must take it within the time a client has to send a request, or it is closed (Node
  // destroys a socket whose timeout fires with no listener). A client that stopped reading kept its answer here for as
  // long as it kept the connection open: 30 clients asking for a large session page and reading nothing held 278-588 MB
  // of heap for minutes. Node's own timeouts do not cover it: requestTimeout ends with the request, keepAliveTimeout
  // starts once the answer is written (and then replaces this one).
  const writeTimeoutMs = opts.requestTimeoutMs;
  const armWriteTimeout =
    writeTimeoutMs === undefined
      ? undefined
      : function (this: ServerResponse) {
          if (this.socket !== null && this.socket.writableLength > 0) this.socket.setTimeout(writeTimeoutMs);
        };
  const startResponse = (res: ServerResponse) => {
    for (const [name, value] of responseHeaders) res.setHeader(name, value);
    if (armWriteTimeout) res.once("prefinish", armWriteTimeout);
    const socket = res.req.socket as Connection;
    if (draining) {
      // Only a connection's last answer may close it: Node drops the pipelined answers queued behind one that does.
      const before = socket[latestResponse];
      if (before !== undefined && !before.headersSent) before.setHeader("Connection", "keep-alive");
      res.setHeader("Connection", "close");
    }
    socket[latestResponse] = res;
  };
  // Listener order: before the app writes anything.
  server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => startResponse(res));
  server.on("clientError", onClientError(opts.metrics));
  refuseUnservable(server, opts.metrics, startResponse);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });

  return {
    server,
    port: (server.address() as AddressInfo).port,
    /**
     * Stops accepting connections, closes idle keep-alive ones, answers requests in flight (and any that arrive on
     * an open connection meanwhile) with `Connection: close`, and only at the end of the grace period cuts what is left.
     */
    async close(graceMs: number): Promise<boolean> {
      draining = true;
      // net.Server's close: stop listening without http.Server's immediate closeIdleConnections(). Closing an idle
      // keep-alive connection races a request the client is writing on it (the client sees a reset); left open a
      // moment, such a request is answered with Connection: close instead.
      const drained = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      const idleGraceMs = Math.min(IDLE_GRACE_MS, graceMs);
      const idle: NodeJS.Timeout[] = [];
      const closeIdleLater = () => idle.push(setTimeout(closeIdle, idleGraceMs));
      const awaited = new WeakSet<ServerResponse>();
      // Node's closeIdleConnections takes a connection whose answer is ended but still being written (to a slow reader)
      // for idle, and cuts that answer: it runs only once no connection's last answer is being written. A connection
      // whose answer ends meanwhile gets the grace of one idle now, for the request its client may be sending.
      function closeIdle() {
        let writing = false;
        for (const socket of connections) {
          const res = socket[latestResponse];
          if (res === undefined || res.writableFinished || res.destroyed) continue;
          writing = true;
          if (awaited.has(res)) continue;
          awaited.add(res);
          res.once("close", closeIdleLater);
        }
        if (!writing) server.closeIdleConnections();
      }
      for (const socket of connections) {
        const res = socket[latestResponse];
        // Still to answer: its answer closes the connection (one already answering with keep-alive, a stream or one
        // queued behind another, is waited for by closeIdle).
        if (res !== undefined && !res.writableFinished && !res.headersSent) res.setHeader("Connection", "close");
      }
      closeIdleLater();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), graceMs);
      });
      try {
        if ((await Promise.race([drained, timedOut])) !== "timeout") return false;
        // What is left may be only connections in their idle grace (an answer that ended late, as the shutdown
        // notice's end of a stream does): closing those cuts no answer.
        const cut = [...connections].some((socket) => {
          const res = socket[latestResponse];
          return res !== undefined && !res.writableFinished;
        });
        // Every one, those Node no longer tracks too (a refused CONNECT's, which its closeAllConnections skips): the net
        // server closes only once every one has.
        for (const socket of connections) socket.destroy();
        await drained;
        return cut;
      } finally {
        clearTimeout(timer);
        for (const t of idle) clearTimeout(t);
      }
    },
  };
}
