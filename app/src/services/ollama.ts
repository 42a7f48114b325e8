import { type ChatRequest, type ChatResponse, Ollama, type Message } from "ollama";
import {
  AppError,
  dependencyUnavailable,
  isAbortError,
  isUnreachable,
  noAnswer,
  upstreamFailure,
  upstreamTimeout,
} from "../errors.ts";
import { timeTool, type Metrics } from "../metrics.ts";
import { fetchOverRequest, upstreamAgent } from "./upstream-fetch.ts";
import { createPodRouter, POD_CONNECT_TIMEOUT_MS, type PodCall, type PodRouter } from "./ollama-pods.ts";

export interface ChatResult {
  content: string;
  promptTokens: number;
  completionTokens: number;
  /**
   * The answer was cut before the model ended it: at MAX_ANSWER_TOKENS or at the window's end (Ollama's done_reason
   * "length"), or `looped`.
   */
  truncated: boolean;
  /**
   * Ollama stopped the answer because the model repeated one token over 30 times in a row (0.13.5 llm/server.go
   * Completion: it returns without a done message, so a stream ends without one and a JSON answer says `done: false`,
   * without a done_reason or token counts). Not worth caching: asked again, the model may not loop.
   */
  looped: boolean;
}

export type ChatMessage = Message;

/** The answer and what Ollama's last message (the whole JSON answer, or a stream's `done` one) says of it. */
type LastMessage = { done: boolean; done_reason?: string; prompt_eval_count?: number; eval_count?: number };

/** Postgres' integer, which a turn's token counts are stored as. */
const MAX_TOKEN_COUNT = 2_147_483_647;

const tokenCount = (value: unknown, field: string): number => {
  if (value === undefined || value === null) return 0;
  if (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_TOKEN_COUNT) return value as number;
  throw upstreamFailure("ollama", `chat answer with ${field} ${String(value)}`);
};

const chatWithoutContent = () => upstreamFailure("ollama", "chat answer without message.content");

/**
 * A chat's result from its answer (the last message of a stream): one of another shape, a gateway's 200 say, is a
 * failed call (a 502), not a 500 where the answer is cached or its turn stored.
 */
function chatResult(content: unknown, last: LastMessage): ChatResult {
  if (typeof content !== "string") throw chatWithoutContent();
  return {
    content,
    promptTokens: tokenCount(last.prompt_eval_count, "prompt_eval_count"),
    completionTokens: tokenCount(last.eval_count, "eval_count"),
    truncated: last.done_reason === "length" || !last.done,
    looped: !last.done,
  };
}

/** ollama-js 0.6.4 (AbortableAsyncIterator) throws this when a stream ends without a done message. */
const NO_DONE_MESSAGE = "Did not receive done or success response in stream.";

/**
 * What Ollama 0.13.5 answers (400) to a chat, and to an embedding request, sent with `truncate: false` whose input is
 * longer than the model's window: runner/ollamarunner/runner.go errorInputTooLong, passed on by llm/server.go as a
 * StatusError and by server/routes.go ChatHandler (before any token of a stream) and EmbedHandler as `{"error": ...}`.
 * Only the call tells the two apart (up to 0.13.2 the embed one had a text of its own).
 */
const INPUT_TOO_LONG = "the input length exceeds the context length";

/** Embeddings that cannot all go into one collection (ollama.ts embed, documents.ts across an ingest's calls). */
export const notVectorsOfOneSize = () =>
  upstreamFailure("ollama", "embeddings that are not vectors of finite numbers, all of one size");

/** An input to embed was longer than the embedding model's window: the caller may split it. */
export class EmbedInputTooLong extends AppError {
  constructor() {
    super("ollama_embed_too_long", `ollama refused a text to embed: ${INPUT_TOO_LONG}`);
  }
}

/** The prompt did not fit the model's window: the caller may ask again with less context. */
export class ContextOverflow extends AppError {
  constructor() {
    super("ollama_context_overflow", `ollama refused the prompt: ${INPUT_TOO_LONG}`);
  }
}

type OllamaTool = "ollama_embed" | "ollama_chat";

function toAppError(err: unknown, timeoutMs: number, tool: OllamaTool): AppError {
  if (err instanceof AppError) return err;
  if (isAbortError(err)) return upstreamTimeout("ollama", timeoutMs);
  const status = (err as { status_code?: unknown }).status_code;
  if (status === 400 && (err as Error).message?.includes(INPUT_TOO_LONG))
    return tool === "ollama_embed" ? new EmbedInputTooLong() : new ContextOverflow();
  // A full queue (OLLAMA_MAX_QUEUE) is Ollama's 503 "server busy, please try again" (server/routes.go
  // handleScheduleError): overloaded, not broken, so the API answers 503 too and the client may retry.
  if (status === 503) return dependencyUnavailable("ollama", (err as Error).message);
  if (typeof status === "number") return upstreamFailure("ollama", `HTTP ${status}: ${(err as Error).message}`);
  return noAnswer("ollama", err);
}

export interface OllamaOptions {
  url: string;
  timeoutMs: number;
  embedModel: string;
  batchSize: number;
  /**
   * `num_predict` of every answer: Ollama 0.13 otherwise generates until the model stops, shifting its window when
   * full (runner/ollamarunner/runner.go). A request option, not a runner one: the model is not reloaded for it
   * (server/sched.go needsReload compares only api.Runner's options, such as num_ctx, which the app never sends).
   */
  maxAnswerTokens: number;
  metrics: Metrics;
  /** Sends each call to an Ollama pod of its own (ollama-pods.ts); until it is told of pods, every call goes to `url`. */
  pods?: PodRouter;
}

/**
 * The most of an Ollama answer read, whole or streamed (undici's `maxResponseSize`, past which it closes the connection
 * and the call is a 502): a batch of embeddings at 128 KiB a vector (4,096 floats as JSON are about 90 kB), an answer
 * of MAX_ANSWER_TOKENS streamed at 512 bytes a token (a line of one is 120-180), and at least 16 MiB. Undici read any
 * size whole: a 100 MB answer took a replica from 157 to 474 MB, four at once to 888 MB, past a dev pod's 512Mi
 * (probe BP).
 */
const answerMaxBytes = (opts: { batchSize: number; maxAnswerTokens: number }) =>
  Math.max(16 * 2 ** 20, opts.batchSize * 128 * 2 ** 10, opts.maxAnswerTokens * 512);

export function createOllama(opts: OllamaOptions) {
  const pods = opts.pods ?? createPodRouter(opts.url);
  const maxResponseSize = answerMaxBytes(opts);
  const config = { host: opts.url, fetch: fetchOverRequest(opts.timeoutMs, upstreamAgent({ maxResponseSize })) };
  const client = new Ollama(config);
  const podAgent = upstreamAgent({ maxResponseSize, connectTimeoutMs: POD_CONNECT_TIMEOUT_MS });
  const podFetch = fetchOverRequest(opts.timeoutMs, podAgent);
  /** A client's settings for the pod (or the Service: `address` undefined). */
  const configFor = (pod: PodCall) => (pod.address === undefined ? config : { host: pod.url, fetch: podFetch });
  /**
   * Every chat's settings (ChatRequest.Truncate and Shift, absent from ollama-js 0.6.4's types, are passed on as sent).
   * `truncate: false`: a prompt longer than the window is refused (ContextOverflow) instead of losing its system
   * message, the instructions and every source, while the model answers on (server/prompt.go chatPrompt).
   * `shift: false`: an answer that fills the window ends there, done_reason "length" (so `truncated`), instead of the
   * runner discarding half the window after its first 4 tokens, the instructions and best sources with it, and
   * answering on without them (runner/ollamarunner/runner.go, cache.go ShiftCacheSlot; api.DefaultOptions NumKeep 4).
   */
  const settings = { options: { num_predict: opts.maxAnswerTokens }, truncate: false, shift: false };
  const chatRequest = (model: string, messages: ChatMessage[]): ChatRequest & typeof settings => ({
    model,
    messages,
    ...settings,
  });
  /**
   * `fn` with the URL of the pod the call goes to, again with the next pod's while one could not be reached (gone since
   * the last count), and with the Service's once none is left. The pod stays taken until `release()`. The call keeps
   * its own list of the pods it could not reach: a count clears the router's (ollama-pods.ts `refused`), and one
   * landing mid-pass (a pod dropping the SYN costs 2 s, and the pods are counted every ANSWER_SHARE_REFRESH_MS) sent
   * the call round the same pods until DNS stopped listing them (probe AT: 40 s with 5 pods at the defaults).
   */
  const onPod = async <T>(
    model: string,
    fn: (config: { host: string; fetch: typeof fetch }) => Promise<T>,
  ): Promise<{ value: T; pod: PodCall }> => {
    const unreachable = new Set<string>();
    for (;;) {
      const pod = pods.take(model, unreachable);
      try {
        return { value: await fn(configFor(pod)), pod };
      } catch (err) {
        pod.release();
        // Only a call that reached nothing goes on: a reset or a timeout once connected may be a pod generating it.
        if (pod.address === undefined || !isUnreachable(err)) throw err;
        unreachable.add(pod.address);
        pods.refused(pod.address, err);
      }
    }
  };
  /** A whole answer from a pod: the pod is free again once it is read. */
  const answer = async <T>(model: string, fn: (client: Ollama) => Promise<T>): Promise<T> => {
    const { value, pod } = await onPod(model, (podConfig) => fn(podConfig === config ? client : new Ollama(podConfig)));
    pod.release();
    return value;
  };
  const call = async <T>(tool: OllamaTool, fn: () => Promise<T>): Promise<T> => {
    try {
      return await timeTool(opts.metrics, tool, fn);
    } catch (err) {
      throw toAppError(err, opts.timeoutMs, tool);
    }
  };

  return {
    /**
     * Embeds texts in batches of EMBED_BATCH_SIZE through /api/embed. `whole`: a text longer than the embedding model's
     * window is refused (EmbedInputTooLong) instead of embedded by its head alone. `beforeBatch` runs before each
     * batch's call, and may throw to stop there.
     */
    async embed(texts: string[], { whole = false, beforeBatch = () => {} } = {}): Promise<number[][]> {
      const vectors: number[][] = [];
      for (let i = 0; i < texts.length; i += opts.batchSize) {
        beforeBatch();
        const input = texts.slice(i, i + opts.batchSize);
        // Checked inside `call`: a 200 of another shape (a gateway's, say) is a failed call, and a 502.
        const embeddings = await call("ollama_embed", async () => {
          const res = await answer(opts.embedModel, (c) => c.embed({ model: opts.embedModel, input, truncate: !whole }));
          const got = Array.isArray(res.embeddings) ? res.embeddings.length : "no";
          if (got !== input.length) throw upstreamFailure("ollama", `expected ${input.length} embeddings, got ${got}`);
          // Every vector whole and of one size: the first ingest creates the collection at the first vector's size,
          // and one short vector there (a model answering badly once) made every later ingest and question a 502
          // until the collection was deleted by hand (probe BE).
          const size = vectors[0]?.length ?? (res.embeddings[0] as unknown[] | undefined)?.length;
          if (!size || !res.embeddings.every((v) => Array.isArray(v) && v.length === size && v.every(Number.isFinite)))
            throw notVectorsOfOneSize();
          return res.embeddings;
        });
        vectors.push(...embeddings);
      }
      return vectors;
    },

    chat: (model: string, messages: ChatMessage[]): Promise<ChatResult> =>
      call("ollama_chat", async () => {
        const res = await answer(model, (c) => c.chat({ ...chatRequest(model, messages), stream: false }));
        return chatResult(res?.message?.content, res);
      }),

    /**
     * Streams the answer token by token; the generator's return value carries the token counts.
     * Each stream has a client of its own, which it takes with it when it goes: ollama-js 0.6.4 keeps every stream in
     * its client's `ongoingStreamedRequests` (for `abort()`) and takes it off only when the reader asks for more after
     * the `done` message, never for one that failed (ollama/ollama-js#295, open). The README's `abort` section recommends
     * "one Ollama client per stream"; it shares the transport, so connections are still reused.
     */
    async *chatStream(model: string, messages: ChatMessage[]): AsyncGenerator<string, ChatResult> {
      const stop = opts.metrics.toolDuration.startTimer({ tool_name: "ollama_chat" });
      let content = "";
      let pod: PodCall | undefined;
      try {
        const opened = await onPod(model, (podConfig) =>
          new Ollama(podConfig).chat({ ...chatRequest(model, messages), stream: true }),
        );
        pod = opened.pod;
        const stream = opened.value;
        let last: ChatResponse | LastMessage | undefined;
        let chunks = 0;
        try {
          for await (const part of stream) {
            const piece: unknown = part.message?.content;
            // As a JSON answer's (chatResult): an object here went into the answer as "[object Object]", cached.
            if (piece !== undefined && typeof piece !== "string") {
              stream.abort();
              throw chatWithoutContent();
            }
            // Each chunk but the done message is at least a token, with content or not (a thinking model's are
            // empty): one past num_predict means the upstream ignores it (Ollama keeps to it, and sends no empty
            // chunk of its own: server/routes.go ChatHandler). The answer is cut there at its length; left to run, it
            // held its answer slot with no one to stop it, after every client had left (probe BE; probe BP: with
            // empty chunks, only those with content were counted).
            if (!part.done) {
              if (chunks === opts.maxAnswerTokens) {
                stream.abort();
                last = { done: true, done_reason: "length", eval_count: chunks };
                break;
              }
              chunks++;
            }
            if (piece) {
              content += piece;
              yield piece;
            }
            if (part.done) {
              last = part;
              break;
            }
          }
        } catch (err) {
          // A stream that ends cleanly without a done message: Ollama stopped a model that looped (ChatResult.looped).
          if ((err as Error).message !== NO_DONE_MESSAGE) throw err;
        }
        opts.metrics.toolCalls.inc({ tool_name: "ollama_chat", success: "true" });
        return chatResult(content, last ?? { done: false });
      } catch (err) {
        opts.metrics.toolCalls.inc({ tool_name: "ollama_chat", success: "false" });
        throw toAppError(err, opts.timeoutMs, "ollama_chat");
      } finally {
        pod?.release();
        stop();
      }
    },

    version: () => client.version(),
  };
}

export type OllamaService = ReturnType<typeof createOllama>;
