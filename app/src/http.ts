import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Server as NetServer, type AddressInfo } from "node:net";
import { getRequestListener, RequestError } from "@hono/node-server";
import { describe } from "./errors.ts";
import {
  countUnmatched,
  reportUnmatched,
  framingRefusal,
  hostRefusal,
  jsonError,
  closeWith,
  lastAnswer,
  onClientError,
  refuseRequest,
  refuseUnservable,
  type ServerSocket,
} from "./http-refusals.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** How long an idle keep-alive connection may still bring one last request during a drain. */
const IDLE_GRACE_MS = 1_000;

/** Set on a connection by each request it brings (a property, not a per-request listener: this is the hot path). */
const latestResponse = Symbol("latestResponse");

/**
 * Set on a connection while some of its answer waits in this process: the bytes it had taken, and since when (the
 * write deadline's sweep).
 */
const waiting = Symbol("waiting");

/**
 * The write deadline is checked this often per period, and at least once a second (the cap on bytes waiting): a
 * connection is closed 1 to 1.25 periods after it stalls.
 */
const SWEEPS_PER_WRITE_TIMEOUT = 4;
const MAX_SWEEP_MS = 1_000;

type Connection = ServerSocket & {
  [latestResponse]?: ServerResponse;
  [queued]?: Set<ServerResponse>;
  [waiting]?: { taken: number; held: number; since: number; from: number };
};

/**
 * Responses whose connection closed before they were whole: their client left. Read when the connection closes, since
 * a response can look finished after it: @hono/node-server ends the stream response it cancels.
 */
const cutOff = new WeakSet<ServerResponse>();

/** Whether the response's connection closed before it was whole (a response queued behind it: see observe.ts). */
export const cutByClose = (res: ServerResponse): boolean => cutOff.has(res);

/**
 * Requests a connection may have waiting behind the answer it is being sent. Node reads and starts every request a
 * client pipelines, however many are still unanswered: one connection had 5,000 running in the app at once from a
 * single write, and 4,000 unauthenticated ones took 160 MB (probe AV). Clients that pipeline at all (undici does not
 * by default) go a few deep.
 */
export const MAX_PIPELINED = 32;

/** Set on a connection: the answers of its requests that wait behind the answer it is being sent. */
const queued = Symbol("queued");

/**
 * Whether the request is one too many waiting on its connection: it is then refused (429) once the answers ahead of it
 * are out, and the connection closes. A request with no answer ahead of it costs one comparison; one waiting stops
 * counting once its own answer is being sent (Node gives it the socket).
 */
function tooManyWaiting(socket: Connection, res: ServerResponse): boolean {
  if (socket._httpMessage === res) return false;
  const waiting = (socket[queued] ??= new Set());
  if (waiting.size >= MAX_PIPELINED) return true;
  waiting.add(res);
  res.once("socket", () => waiting.delete(res));
  return false;
}

/**
 * Bytes of a connection's answers waiting in the process: on its socket, and in the answers queued behind the one it
 * is being sent, which Node holds in each response until it gives it the socket (a response's writableLength).
 */
function bytesWaitingOn(socket: Connection): number {
  let bytes = socket.writableLength;
  for (const res of socket[queued] ?? []) bytes += res.writableLength;
  return bytes;
}

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
 * A request asking to switch protocols (`Connection: upgrade` and an `Upgrade`, as `curl --http2` asks for h2c). This
 * server switches to none and answers it as HTTP/1.1, but Node's parser stops at it all the same (llhttp's upgrade
 * pause; _http_server.js goes on only for an `upgrade` listener): what the client sent after it in the same chunk was
 * never read, and waited unanswered for the keep-alive timeout, 66 s (fuzz, wave 62). Its answer closes the connection.
 */
const asksUpgrade = (req: IncomingMessage): boolean =>
  req.headers.upgrade !== undefined && /(?:^|,)[ \t]*upgrade[ \t]*(?:,|$)/i.test(req.headers.connection ?? "");

/**
 * Makes `res` its connection's last answer (closeWith), as soon as the parser has all of `req`: at once for a request
 * without a body, else once its body is read. Node resumes parsing after the upgrade pause with the next chunk, and the
 * requests it then read were held unanswered, past the pipelining cap, for as long as the answer took (review).
 */
function closeAfter(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket as Connection;
  res.setHeader("Connection", "close");
  const bodiless = req.headers["transfer-encoding"] === undefined && Number(req.headers["content-length"] ?? 0) === 0;
  if (bodiless) closeWith(socket, res);
  else {
    // Until then nothing read after it is served (the request listener), though the parser still runs for the body.
    socket[lastAnswer] = res;
    req.once("end", () => socket.destroyed || closeWith(socket, res));
  }
}

/**
 * Serves a fetch handler on Node's HTTP server with every refusal as JSON: parser errors (`clientError`) and the
 * adapter's own (bad Host header, bad URL: @hono/node-server's errorHandler) are 4xx `{error, code}` instead of an empty body.
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
    /** Bytes of answers waiting in the process for their clients to read, all connections together (see the sweep). */
    maxBytesWaiting?: number;
    /** Set on every response before the app runs; a header the app sets itself wins. */
    responseHeaders?: ReadonlyArray<readonly [string, string]>;
    /** The setting `port` comes from (PORT, METRICS_PORT), named with HOST in a failure to listen. */
    portSetting?: string;
  },
): Promise<HttpServer> {
  /** Set by the adapter's refusal of the request being handed to it (`serve`). */
  let adapterRefused = false;
  /** The request being handed to the adapter (`serve`), which its refusal is not given. */
  let handed: IncomingMessage | undefined;
  const listener = getRequestListener(fetch, {
    // The URL's host for a request without a Host header (HTTP/1.0): an IPv6 address unbracketed (HOST=::) made
    // `http://:::/health`, which the adapter refused as an invalid URL, every such request a 400.
    hostname: opts.host.includes(":") ? `[${opts.host}]` : opts.host,
    errorHandler: (err) => {
      // Counted by its status, as the app's own answers are: a 500 is seen by the 5xx alert.
      if (err instanceof RequestError) {
        adapterRefused = true;
        const error = `malformed request: ${err.message}`;
        const res = jsonError("malformed_http", error, { connection: "close" });
        reportUnmatched(opts, handed?.method, res.status, error);
        return res;
      }
      opts.log.error({ err: describe(err) }, "request failed in the HTTP adapter");
      const res = jsonError("internal_error", "internal error");
      countUnmatched(opts.metrics, undefined, res.status);
      return res;
    },
  });
  // A request's head and body must arrive within requestTimeout of its first byte (headersTimeout, Node's default,
  // is the lesser of 60 s and that). Node 20 counts neither from the end of the previous request: a keep-alive
  // connection may idle longer than both. headersTimeout was keepAliveTimeout + 1 s, advice from before Node 18's
  // rewrite of these timers; above requestTimeout, it also held requestTimeout back until itself (Node 20.20).
  // Node checks every connectionsCheckingInterval (default 30 s): a quarter of the timeout cuts at most 25 % late.
  const knownHost: { host?: string } = {};
  /**
   * Hands the request to the adapter. One it cannot build a Request of (a backslash in the path, a Host that is not a
   * host, a bad absolute URL: @hono/node-server's RequestError) it refuses before it awaits anything, so within this
   * call: its 400 then closes the connection as every other refusal does, and nothing pipelined after it is served.
   */
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    adapterRefused = false;
    handed = req;
    const served = listener(req, res);
    handed = undefined;
    if (adapterRefused) closeWith(req.socket as Connection, res);
    return served;
  };
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
      const socket = req.socket as Connection;
      // Read after the answer that closes its connection (RFC 9112 9.6): not served (nor started, startResponse).
      if (socket[lastAnswer] !== undefined) return;
      if (tooManyWaiting(socket, res)) {
        const error = `more than ${MAX_PIPELINED} requests waiting on one connection: send more once they are answered`;
        return refuseRequest(opts, req, res, "pipeline_full", error);
      }
      const refusal = hostRefusal(req, knownHost) ?? framingRefusal(req);
      if (refusal !== undefined) return refuseRequest(opts, req, res, "malformed_http", refusal);
      if (asksUpgrade(req)) closeAfter(req, res);
      return serve(req, res);
    },
  );
  // Every header line reaches req.headers, which hostRefusal, framingRefusal and the app read. Node's default (2,000)
  // left later lines out of them while its parser still framed the body by them: a second Host, chunks over gzip or an
  // unknown Expect after 2,000 lines was served (fuzz, wave 62). 0 is no limit (Node's http docs); the head's size
  // stays bounded by maxHeaderSize (16 KiB).
  server.maxHeadersCount = 0;
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
    // Before the response's own close listeners (Node adds them as it gives the response the socket).
    socket.once("close", () => {
      connections.delete(socket);
      const res = socket._httpMessage;
      if (res && !res.writableFinished) cutOff.add(res);
    });
  });
  // While some of an answer waits in this process for its client to read, the connection must take some of it within
  // each period a client has to send a request, or it is closed. A client that stopped reading kept its answer here
  // for as long as it kept the connection open: 30 clients asking for a large session page and reading nothing held
  // 278-588 MB of heap for minutes. Node's own timeouts do not cover it: requestTimeout ends with the request,
  // keepAliveTimeout starts once the answer is written, and a socket's idle timeout restarts on every byte the client
  // sends (one trickling a byte every 500 ms while reading nothing kept a 32 MB answer, review N12). So it is judged on
  // the bytes the connection takes: written, less those still waiting. One sweep over the connections, not a timer
  // per answer: a stream backs up long before it ends (armed at its end, a stream whose client stopped reading held
  // its generation until shutdown, probe BB), and most answers never wait at all.
  //
  // Clients that do take some of it each period can still hold it for as long as they like: one taking 64 KB every
  // 20 s kept a session page here for good. So the answers waiting in the process, all connections together, are
  // capped at `maxBytesWaiting`: past it, the connections that have had bytes waiting the longest are closed first
  // (probe BF: clients reading 12.6 MB pages that slowly got a 512Mi pod OOM-killed, which ends every request on it).
  const writeTimeoutMs = opts.requestTimeoutMs;
  const maxBytesWaiting = opts.maxBytesWaiting ?? Number.POSITIVE_INFINITY;
  const sweep =
    writeTimeoutMs === undefined
      ? undefined
      : setInterval(
          () => {
            const now = performance.now();
            let bytesWaiting = 0;
            for (const socket of connections) {
              const bytes = bytesWaitingOn(socket);
              if (bytes === 0) {
                socket[waiting] = undefined;
                continue;
              }
              // Bytes handed to the kernel, whole writes (written, less those still waiting), and the part of the
              // write in progress libuv still holds, which shrinks as the kernel takes it: a 2 MiB answer is one write,
              // and judged on whole writes alone, a client reading it steadily at 4 MB/s was cut (review N14).
              const taken = socket.bytesWritten - socket.writableLength;
              const held = socket._handle?.writeQueueSize ?? 0;
              const last = socket[waiting];
              if (last === undefined || last.taken !== taken || last.held !== held)
                socket[waiting] = { taken, held, since: now, from: last?.from ?? now };
              // Only bytes on the socket can be taken: a stream waiting on its model, with answers queued behind it,
              // has nothing to take.
              else if (socket.writableLength > 0 && now - last.since >= writeTimeoutMs) {
                socket.destroy();
                continue;
              }
              bytesWaiting += bytes;
            }
            if (bytesWaiting > maxBytesWaiting) closeLongestWaiting(bytesWaiting - maxBytesWaiting);
          },
          Math.min(writeTimeoutMs / SWEEPS_PER_WRITE_TIMEOUT, MAX_SWEEP_MS),
        ).unref();
  /** Closes connections with bytes waiting, those waiting the longest first, until `excess` bytes are let go. */
  const closeLongestWaiting = (excess: number) => {
    const longest = [...connections].filter((s) => s[waiting] !== undefined && !s.destroyed);
    longest.sort((a, b) => a[waiting]!.from - b[waiting]!.from);
    for (const socket of longest) {
      if (excess <= 0) return;
      excess -= bytesWaitingOn(socket);
      socket.destroy();
    }
  };
  const startResponse = (res: ServerResponse) => {
    const socket = res.req.socket as Connection;
    // Never to be sent (the request listener): the answer closing the connection stays its latest, for the drain.
    if (socket[lastAnswer] !== undefined) return;
    for (const [name, value] of responseHeaders) res.setHeader(name, value);
    if (draining) {
      // Only a connection's last answer may close it: Node drops the pipelined answers queued behind one that does.
      const before = socket[latestResponse];
      if (before !== undefined && !before.headersSent) before.setHeader("Connection", "keep-alive");
      res.setHeader("Connection", "close");
    }
    socket[latestResponse] = res;
    // Let go once sent (the drain reads a finished answer as none): an idle kept-alive connection held its last request
    // and answer, about 6 KB, until its keep-alive timeout, 305 s in the stack (probe CN).
    res.once("finish", () => {
      if (socket[latestResponse] === res) socket[latestResponse] = undefined;
    });
  };
  // Listener order: before the app writes anything.
  server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => startResponse(res));
  server.on("clientError", onClientError(opts));
  refuseUnservable(server, opts, startResponse);
  await new Promise<void>((resolve, reject) => {
    // Named: both listeners' EADDRINUSE read alike but for the number, and a HOST that does not resolve fails here.
    const refused = (err: Error) =>
      reject(
        new Error(`cannot listen on ${opts.portSetting ?? "port"} ${opts.port}, HOST ${opts.host}: ${err.message}`, {
          cause: err,
        }),
      );
    server.once("error", refused);
    server.listen(opts.port, opts.host, () => {
      server.off("error", refused);
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
        clearInterval(sweep);
        for (const t of idle) clearTimeout(t);
      }
    },
  };
}
