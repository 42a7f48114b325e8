import type { OpenAPIHono } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { beforeAbort } from "../deadline.ts";
import { AppError, CLIENT_CLOSED, errorBody } from "../errors.ts";
import { isCached, type Rag, resultJson, sourcesOf } from "../services/rag.ts";
import type { Logger } from "../log.ts";
import { answeredOutside } from "../middleware/observe.ts";
import {
  apiRoute,
  ErrorSchema,
  jsonBody,
  jsonResponse,
  QueryRequestSchema,
  QueryResponseSchema,
  upstreamErrorResponses,
} from "../schemas.ts";
import type { AppEnv } from "../types.ts";

const route = apiRoute({
  method: "post",
  path: "/api/v1/query",
  tags: ["query"],
  summary: "Answer a question from the ingested documents",
  description:
    "Retrieves the closest chunks (optionally filtered by metadata), trims them to the token budget, routes to a " +
    "model by question complexity and answers. The turn is stored before the response is sent. With `stream: true` " +
    "the answer is sent as Server-Sent Events: `meta` (ids, model, the sources the model was given), one `token` " +
    "per chunk of text, then `done` (the full response) or `error` (`{error, code}`, as an error answer).",
  request: { body: jsonBody(QueryRequestSchema) },
  responses: {
    200: {
      description: "The answer (JSON), or an SSE stream when `stream` is true",
      content: {
        "application/json": { schema: QueryResponseSchema },
        "text/event-stream": { schema: { type: "string" } },
      },
    },
    403: jsonResponse(ErrorSchema, "The key lacks the `query` scope, or `session_id` names a session of another API key"),
    409: jsonResponse(ErrorSchema, "The session was being deleted (turn retention) as the turn was stored: ask again"),
    ...upstreamErrorResponses,
  },
});

const JSON_TYPE = { "content-type": "application/json" };

/**
 * A signal, built on first use, that aborts once the request was answered without its question: its client left, or
 * the shutdown notice answered it 503. A question so told while it waited for an answer slot stayed in the queue and
 * took a slot later, for a model call no one read (probe CM). Not AbortSignal.any with the notice, which lives as long
 * as the process: Node 20 keeps each signal made so among the notice's dependents, 155 MB over 1M waits (review N25).
 * `release` takes its listener off the notice once the question is prepared.
 */
function requestEnded(req: Request, shutdownNotice: AbortSignal) {
  let ended: AbortController | undefined;
  const end = () => ended?.abort();
  return {
    signal: (): AbortSignal => {
      if (ended) return ended.signal;
      ended = new AbortController();
      const client = req.signal;
      if (client.aborted || shutdownNotice.aborted) ended.abort();
      else {
        client.addEventListener("abort", end, { once: true });
        shutdownNotice.addEventListener("abort", end, { once: true });
      }
      return ended.signal;
    },
    release: () => shutdownNotice.removeEventListener("abort", end),
  };
}

/**
 * `shutdownNotice` (server.ts) ends the waits of a query: its retrieval, its wait for an answer slot, and its answer (a
 * stream's, and a JSON request's too, which may follow a generation as long as a stream's). Its reason, a 503, is what
 * the client is told.
 */
export function registerQueryRoutes(app: OpenAPIHono<AppEnv>, rag: Rag, log: Logger, shutdownNotice: AbortSignal) {
  app.openapi(route, async (c) => {
    const input = c.req.valid("json");
    const ended = requestEnded(c.req.raw, shutdownNotice);
    const preparing = rag.prepare(input, c.get("principal").id, c.get("requestId"), ended.signal, c.get("deadlineAt"));
    // Its retrieval and any wait for an answer slot are not cut (an embedding is shared by the questions asking for
    // it): the request is answered, and the prepared query let go once it comes.
    const prepared = await beforeAbort(preparing, shutdownNotice, () => {
      void preparing.then(rag.discard, () => {});
      return shutdownNotice.reason as Error;
    }).finally(ended.release);
    // Read off Node's response: the request's AbortSignal costs a cache hit about 7 us to create (rag.ts prepare).
    const clientLeft = () => answeredOutside(c) !== undefined;
    if (!input.stream) {
      const result = await rag.complete(prepared, { storeBy: c.get("deadlineAt"), until: shutdownNotice, clientLeft });
      return c.body(resultJson(result), 200, JSON_TYPE) as never;
    }
    // Answered 504 while it was prepared: a stream no one reads would wait on its first write for good, holding the
    // prepared query (and the active-queries gauge) until shutdown. Checked in the same turn as the stream's return,
    // so a 504 cannot come between the two.
    if (performance.now() >= c.get("deadlineAt")) throw rag.timedOut(prepared);

    c.set("streamed", true);
    const sse = streamSSE(c, async (stream) => {
      // Sent with the first token (or the end): only then are a generation's sources final (rag.ts sourcesOf).
      let meta: Promise<void> | undefined;
      const sendMeta = () =>
        (meta ??= stream.writeSSE({
          event: "meta",
          data: JSON.stringify({
            request_id: prepared.requestId,
            session_id: prepared.sessionId,
            model: prepared.model,
            sources: sourcesOf(prepared),
            cached: isCached(prepared),
          }),
        }));
      let open = true;
      /** A write waits while the client has yet to take what was sent before it (back-pressure). */
      let writing = false;
      const writeToken = async (token: string) => {
        if (!open) return;
        writing = true;
        await sendMeta();
        await stream.writeSSE({ event: "token", data: JSON.stringify({ content: token }) });
        writing = false;
      };
      try {
        // Ended by the server stopping (its reason, an AppError, is the error event), and then no turn is stored.
        const result = await rag.complete(prepared, { onToken: writeToken, until: shutdownNotice, clientLeft });
        await sendMeta();
        await stream.writeSSE({ event: "done", data: resultJson(result) });
      } catch (err) {
        if (!(err instanceof AppError)) log.error({ err, req_id: prepared.requestId }, "stream failed");
        const [code, message] =
          err instanceof AppError ? [err.type, err.message] : (["internal_error", "internal error"] as const);
        // Ended by the shutdown notice while it waited on its client's reads, not on the model: the client's pace held
        // it, and it is counted 499 as a stream the write deadline cuts (probe BX: a slow reader's stream was a 503).
        const heldByClient = writing && err === shutdownNotice.reason;
        c.set("streamStatus", heldByClient ? CLIENT_CLOSED : err instanceof AppError ? err.status : 500);
        // Logged with the request's line, as a JSON answer's error is: a stream's 502 was logged with no reason.
        if (err instanceof Error) c.error = err;
        await sendMeta();
        await stream.writeSSE({ event: "error", data: JSON.stringify(errorBody(code, message)) });
      } finally {
        open = false;
      }
    });
    // hono sets Connection: keep-alive (HTTP/1.1's default anyway), and an app's header wins over the one a drain
    // sets (http.ts): a stream sent while draining must close its connection like every other answer. And
    // Transfer-Encoding: chunked, which Node adds itself for HTTP/1.1 and must not send an HTTP/1.0 client (RFC 9112).
    sse.headers.delete("Connection");
    sse.headers.delete("Transfer-Encoding");
    return sse as never;
  });
}
