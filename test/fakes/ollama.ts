import { Hono, type Context } from "hono";
import { stream } from "hono/streaming";
import { embedText } from "./embedding.ts";
import { listen, sleep, Timings, type Knobs, type Listening } from "./http.ts";

export interface FakeOllamaOptions {
  port?: number;
  /** The loopback address to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Embedding size (default 256). */
  dim?: number;
  /** Models the fake knows; any other name gets Ollama's 404. Default: every name is known. */
  models?: string[];
  latencyMs?: number;
}

export interface FakeOllama extends Listening {
  knobs: Knobs & {
    /** Time to generate each token (ms): the pause between streamed chunks; an unstreamed answer takes all of them. */
    tokenDelayMs: number;
    /** Embedding size answered now (`dim` at start): another model loaded under the same name answers another size. */
    dim: number;
    /**
     * When set, a streamed answer stops after this many chunks with Ollama's mid-stream error line (server/routes.go
     * streamResponse: once the response is written, an error is sent as `{"error": ...}` and the stream ends).
     */
    failAfterChunks: number | null;
    /**
     * Context window per request (OLLAMA_CONTEXT_LENGTH). A longer prompt loses its system messages, as in Ollama, or,
     * sent with `truncate: false`, is refused with Ollama's 400.
     */
    contextLength: number;
    /**
     * How the prompt's tokens are counted: "chars" (4 characters a token, cheap) or "cl100k" (a real BPE tokenizer,
     * cl100k_base via js-tiktoken: Llama 3's tokenizer is its 100K tokens and 28K more for other languages).
     */
    tokenizer: "chars" | "cl100k";
    /**
     * The embedding model's window (nomic-embed-text: 2,048). A longer input is embedded by its head alone or, sent
     * with `truncate: false`, refused with Ollama's 400 (0.13.5 server/routes.go EmbedHandler).
     */
    embedContextLength: number;
    /** When set, the model does not stop by itself: its answer runs on for this many words, unless num_predict ends it. */
    runawayWords: number | null;
    /** When set, the model loops: after its answer it repeats this token until Ollama's repeat guard stops it. */
    repeatToken: string | null;
    /**
     * OLLAMA_NUM_PARALLEL: answers generated at once (null: any number; Ollama counts per model, the fake over all).
     * The others wait in order, without limit, as on a loaded model in Ollama 0.13 (the runner's semaphore,
     * llm/server.go Completion); a request whose client left stops waiting.
     */
    parallel: number | null;
    /** How long generating an answer holds its slot (ms). */
    generationMs: number;
  };
  /** Answers generated, the most at once, and those whose client had left before they were sent. */
  load: { generated: number; peak: number; wasted: number };
  /** Requests by endpoint, e.g. calls["/api/chat"]. */
  calls: Record<string, number>;
  /** Model named in each /api/chat request, in order. */
  chatModels: string[];
  /** Numbered sources (`[n] `) in the system message of each /api/chat request, in order, refused ones included. */
  chatSources: number[];
  timings: Timings;
}

interface ChatMessage {
  role: string;
  content: string;
}

/** A runner failure after the answer began (llm/llama_server.go wraps the runner's message this way). */
export const MODEL_FAILED_MID_ANSWER = "an error was encountered while running the model: CUDA error: out of memory";

const ollamaError = (c: Context, status: number, error: string) => c.json({ error }, status as 400);

/**
 * Ollama 0.13.5's refusal (400) of a prompt, or an input to embed, longer than the window sent with `truncate: false`
 * (runner/ollamarunner/runner.go errorInputTooLong, passed on by server/routes.go ChatHandler and EmbedHandler; the
 * embed one said "input exceeds maximum context length" up to 0.13.2).
 */
export const INPUT_TOO_LONG = "the input length exceeds the context length";

/** What Ollama answers with 503 when its queue is full (server/sched.go ErrMaxQueue, via handleScheduleError). */
export const OLLAMA_BUSY = "server busy, please try again.  maximum pending requests exceeded";

/** A deterministic reply built from the context the app sent, so tests can check what reached the model. */
export function fakeAnswer(messages: ChatMessage[]): string {
  const question = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
  const system = messages.find((m) => m.role === "system")?.content ?? "";
  const firstSource = /\[1\] ([^\n]*)/.exec(system)?.[1];
  if (!firstSource) return `I do not know the answer to: ${question}`;
  return `Based on [1]: ${firstSource.slice(0, 200)}`;
}

const countTokens = (text: string) => text.split(/\s+/).filter(Boolean).length;

/**
 * Ollama 0.13.5 llm/server.go Completion: a token (trimmed) equal to the one before it, over 30 times in a row, ends
 * the answer before it is sent, with no done message. Returns the pieces sent and whether the guard stopped them.
 */
function repeatGuard(pieces: string[]): { sent: string[]; stopped: boolean } {
  let last = "";
  let repeats = 0;
  for (const [i, piece] of pieces.entries()) {
    if (piece.trim() === last) repeats++;
    else [last, repeats] = [piece.trim(), 0];
    if (repeats > 30) return { sent: pieces.slice(0, i), stopped: true };
  }
  return { sent: pieces, stopped: false };
}

/** An answer that repeats itself, `words` long: what a model that never emits its stop token produces. */
const runaway = (words: number) => Array.from({ length: words }, (_, i) => ["and", "so", "on"][i % 3]).join(" ");

type CountTokens = (text: string) => number;

const byChars: CountTokens = (text) => Math.ceil(text.length / 4);

let cl100k: Promise<CountTokens> | undefined;
/** Loaded on first use: 0.6 s and about 80 MB of heap that the tests counting by characters need not pay. */
const tokenizer = (kind: "chars" | "cl100k"): Promise<CountTokens> =>
  kind === "chars"
    ? Promise.resolve(byChars)
    : (cl100k ??= import("js-tiktoken").then(({ getEncoding }) => {
        const encoding = getEncoding("cl100k_base");
        return (text) => encoding.encode(text).length;
      }));

/** Tokens the messages take in the rendered prompt: their text, and the template's header around each. */
const tokensOf = (messages: ChatMessage[], count: CountTokens) => messages.reduce((n, m) => n + count(m.content ?? "") + 5, 0);

/**
 * The messages the model sees. Ollama 0.13.5 server/prompt.go chatPrompt: when the rendered prompt is longer than
 * the window, messages are dropped from the front, and a system message is kept only if one after it stays; the last
 * message always stays. For a system prompt and a question, a prompt too long is the question alone.
 */
function promptWithin(messages: ChatMessage[], tokens: number, contextLength: number): ChatMessage[] {
  return tokens > contextLength ? messages.slice(-1) : messages;
}

const numberedSources = (messages: ChatMessage[]) =>
  messages.find((m) => m.role === "system")?.content.match(/^\[\d+\] /gm)?.length ?? 0;

/** A small HTTP server speaking Ollama's REST API: /api/version, /api/tags, /api/embed and /api/chat (NDJSON stream). */
export async function startFakeOllama(opts: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const knobs = {
    dim: opts.dim ?? 256,
    latencyMs: opts.latencyMs ?? 0,
    failStatus: null as number | null,
    tokenDelayMs: 0,
    failAfterChunks: null as number | null,
    contextLength: 4096,
    tokenizer: "chars" as "chars" | "cl100k",
    embedContextLength: 2048,
    runawayWords: null as number | null,
    repeatToken: null as string | null,
    parallel: null as number | null,
    generationMs: 0,
  };
  const load = { generated: 0, peak: 0, wasted: 0 };
  let generating = 0;
  const waiting: Array<() => void> = [];
  /** Resolves to a release function once a slot is free, or to null if the client left first. */
  const slot = (signal: AbortSignal) =>
    new Promise<(() => void) | null>((resolve) => {
      const release = () => {
        const next = waiting.shift();
        if (next) next();
        else generating--;
      };
      const admit = () => {
        signal.removeEventListener("abort", leave);
        load.generated++;
        load.peak = Math.max(load.peak, generating);
        resolve(release);
      };
      const leave = () => {
        waiting.splice(waiting.indexOf(admit), 1);
        resolve(null);
      };
      if (knobs.parallel === null || generating < knobs.parallel) {
        generating++;
        admit();
      } else {
        waiting.push(admit);
        signal.addEventListener("abort", leave, { once: true });
      }
    });
  const calls: Record<string, number> = {};
  const chatModels: string[] = [];
  const chatSources: number[] = [];
  const timings = new Timings();
  const known = (model: string) =>
    !opts.models || opts.models.includes(model) || opts.models.includes(model.replace(/:latest$/, ""));

  const app = new Hono();
  app.use("/api/*", async (c, next) => {
    const started = performance.now();
    calls[c.req.path] = (calls[c.req.path] ?? 0) + 1;
    if (knobs.latencyMs > 0) await sleep(knobs.latencyMs);
    if (knobs.failStatus !== null)
      return ollamaError(c, knobs.failStatus, knobs.failStatus === 503 ? OLLAMA_BUSY : "the model failed to generate a response");
    await next();
    timings.add(c.req.path, performance.now() - started);
  });

  app.get("/api/version", (c) => c.json({ version: "0.13.5" }));

  app.get("/api/tags", (c) =>
    c.json({
      models: (opts.models ?? ["fake"]).map((name) => ({
        name,
        model: name,
        modified_at: "2025-01-01T00:00:00Z",
        size: 1_000_000,
        digest: "0".repeat(64),
        details: { format: "gguf", family: "fake", families: null, parameter_size: "1B", quantization_level: "Q4_0" },
      })),
    }),
  );

  app.post("/api/embed", async (c) => {
    const body = await c.req.json<{ model?: string; input?: string | string[]; truncate?: boolean }>().catch(() => null);
    if (!body) return ollamaError(c, 400, "invalid JSON body");
    if (!body.model) return ollamaError(c, 400, "model is required");
    if (!known(body.model)) return ollamaError(c, 404, `model '${body.model}' not found`);
    const inputs = typeof body.input === "string" ? [body.input] : body.input;
    if (!Array.isArray(inputs) || inputs.some((i) => typeof i !== "string"))
      return ollamaError(c, 400, "input must be a string or a list of strings");
    const count = await tokenizer(knobs.tokenizer);
    const limit = knobs.embedContextLength;
    // Within the window, or its head: the same share of its characters as the window is of its tokens.
    const within = (text: string) => {
      const tokens = count(text);
      return tokens <= limit ? text : text.slice(0, Math.floor((text.length * limit) / tokens));
    };
    const kept = inputs.map(within);
    if (body.truncate === false && kept.some((text, i) => text !== inputs[i])) return ollamaError(c, 400, INPUT_TOO_LONG);
    return c.json({
      model: body.model,
      embeddings: kept.map((text) => embedText(text, knobs.dim)),
      total_duration: 1_000_000,
      load_duration: 1000,
      prompt_eval_count: inputs.reduce((n, t) => n + countTokens(t), 0),
    });
  });

  app.post("/api/chat", async (c) => {
    type ChatBody = {
      model?: string;
      messages?: ChatMessage[];
      stream?: boolean;
      options?: { num_predict?: number };
      truncate?: boolean;
      shift?: boolean;
    };
    const body = await c.req.json<ChatBody>().catch(() => null);
    if (!body) return ollamaError(c, 400, "invalid JSON body");
    if (!body.model) return ollamaError(c, 400, "model is required");
    if (!known(body.model)) return ollamaError(c, 404, `model "${body.model}" not found, try pulling it first`);
    chatModels.push(body.model);
    const sent = body.messages ?? [];
    chatSources.push(numberedSources(sent));
    const count = await tokenizer(knobs.tokenizer);
    // ChatHandler passes `truncate` (default true) to chatPrompt; unset, the runner refuses a prompt too long.
    const sentTokens = tokensOf(sent, count);
    const tooLong = body.truncate === false && sentTokens > knobs.contextLength;
    const messages = promptWithin(sent, sentTokens, knobs.contextLength);
    let answer = knobs.runawayWords === null ? fakeAnswer(messages) : runaway(knobs.runawayWords);
    if (knobs.repeatToken !== null) answer += ` ${knobs.repeatToken}`.repeat(100);
    const promptTokens = messages === sent ? sentTokens : tokensOf(messages, count);
    const whole = answer.match(/\S+\s*/g) ?? [];
    // num_predict (default -1: no limit) ends an answer after that many tokens with done_reason "length"; so does a
    // full window when `shift` is false (runner.go). Shifting (the default), the answer runs on past it.
    const room = body.shift === false ? Math.max(0, knobs.contextLength - promptTokens) : Number.POSITIVE_INFINITY;
    const numPredict = body.options?.num_predict ?? -1;
    const limit = Math.min(numPredict < 0 ? Number.POSITIVE_INFINITY : numPredict, room);
    const { sent: pieces, stopped } = repeatGuard(whole.slice(0, limit));
    const final = {
      model: body.model,
      created_at: new Date().toISOString(),
      done: true,
      done_reason: pieces.length < whole.length ? "length" : "stop",
      total_duration: 2_000_000,
      load_duration: 1000,
      prompt_eval_count: promptTokens,
      prompt_eval_duration: 500_000,
      eval_count: pieces.length,
      eval_duration: 1_000_000,
    };
    const release = await slot(c.req.raw.signal);
    if (!release) return c.body(null); // the client left while waiting: nobody reads this
    // The runner refuses it once the request holds a slot (llm/server.go Completion takes the semaphore first).
    if (tooLong) {
      release();
      return ollamaError(c, 400, INPUT_TOO_LONG);
    }
    try {
      if (knobs.generationMs > 0) await sleep(knobs.generationMs);
      if (body.stream === false) {
        if (knobs.tokenDelayMs > 0) await sleep(knobs.tokenDelayMs * pieces.length);
        if (c.req.raw.signal.aborted) load.wasted++;
        const message = { role: "assistant", content: pieces.join("") };
        // Stopped by the guard, the answer is the last chunk as it came: done false, no done_reason or counts.
        if (stopped) return c.json({ model: body.model, created_at: final.created_at, message, done: false });
        return c.json({ ...final, message });
      }
    } finally {
      if (body.stream === false) release();
    }
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, async (s) => {
      s.onAbort(() => {
        load.wasted++;
      });
      try {
        for (const [sent, piece] of pieces.entries()) {
          if (knobs.tokenDelayMs > 0) await sleep(knobs.tokenDelayMs);
          if (sent === knobs.failAfterChunks) {
            await s.write(`${JSON.stringify({ error: MODEL_FAILED_MID_ANSWER })}\n`);
            return;
          }
          const chunk = {
            model: body.model,
            created_at: new Date().toISOString(),
            message: { role: "assistant", content: piece },
            done: false,
          };
          await s.write(`${JSON.stringify(chunk)}\n`);
        }
        if (!stopped) await s.write(`${JSON.stringify({ ...final, message: { role: "assistant", content: "" } })}\n`);
      } finally {
        release();
      }
    });
  });

  app.notFound((c) => c.text("404 page not found", 404));
  const server = await listen(app, opts.port, opts.hostname);
  return { ...server, knobs, calls, chatModels, chatSources, timings, load };
}
