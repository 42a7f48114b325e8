import { Hono, type Context } from "hono";
import { stream } from "hono/streaming";
import { embedText } from "./embedding.ts";
import { listen, sleep, Timings, type Knobs, type Listening } from "./http.ts";

export interface FakeOllamaOptions {
  port?: number;
  /** Embedding size (default 256). */
  dim?: number;
  /** Models the fake knows; any other name gets Ollama's 404. Default: every name is known. */
  models?: string[];
  latencyMs?: number;
}

export interface FakeOllama extends Listening {
  knobs: Knobs & {
    /** Pause between streamed chunks (ms). */
    tokenDelayMs: number;
    /**
     * When set, a streamed answer stops after this many chunks with Ollama's mid-stream error line (server/routes.go
     * streamResponse: once the response is written, an error is sent as `{"error": ...}` and the stream ends).
     */
    failAfterChunks: number | null;
  };
  /** Requests by endpoint, e.g. calls["/api/chat"]. */
  calls: Record<string, number>;
  /** Model named in each /api/chat request, in order. */
  chatModels: string[];
  timings: Timings;
}

interface ChatMessage {
  role: string;
  content: string;
}

/** A runner failure after the answer began (llm/llama_server.go wraps the runner's message this way). */
export const MODEL_FAILED_MID_ANSWER = "an error was encountered while running the model: CUDA error: out of memory";

const ollamaError = (c: Context, status: number, error: string) => c.json({ error }, status as 400);

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

/** A small HTTP server speaking Ollama's REST API: /api/version, /api/tags, /api/embed and /api/chat (NDJSON stream). */
export async function startFakeOllama(opts: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const dim = opts.dim ?? 256;
  const knobs = {
    latencyMs: opts.latencyMs ?? 0,
    failStatus: null as number | null,
    tokenDelayMs: 0,
    failAfterChunks: null as number | null,
  };
  const calls: Record<string, number> = {};
  const chatModels: string[] = [];
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

  app.get("/api/version", (c) => c.json({ version: "0.12.0" }));

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
    const body = await c.req.json<{ model?: string; input?: string | string[] }>().catch(() => null);
    if (!body) return ollamaError(c, 400, "invalid JSON body");
    if (!body.model) return ollamaError(c, 400, "model is required");
    if (!known(body.model)) return ollamaError(c, 404, `model "${body.model}" not found, try pulling it first`);
    const inputs = typeof body.input === "string" ? [body.input] : body.input;
    if (!Array.isArray(inputs) || inputs.some((i) => typeof i !== "string"))
      return ollamaError(c, 400, "input must be a string or a list of strings");
    return c.json({
      model: body.model,
      embeddings: inputs.map((text) => embedText(text, dim)),
      total_duration: 1_000_000,
      load_duration: 1000,
      prompt_eval_count: inputs.reduce((n, t) => n + countTokens(t), 0),
    });
  });

  app.post("/api/chat", async (c) => {
    const body = await c.req.json<{ model?: string; messages?: ChatMessage[]; stream?: boolean }>().catch(() => null);
    if (!body) return ollamaError(c, 400, "invalid JSON body");
    if (!body.model) return ollamaError(c, 400, "model is required");
    if (!known(body.model)) return ollamaError(c, 404, `model "${body.model}" not found, try pulling it first`);
    chatModels.push(body.model);
    const messages = body.messages ?? [];
    const answer = fakeAnswer(messages);
    const promptTokens = messages.reduce((n, m) => n + countTokens(m.content ?? ""), 0);
    const pieces = answer.match(/\S+\s*/g) ?? [];
    const final = {
      model: body.model,
      created_at: new Date().toISOString(),
      done: true,
      done_reason: "stop",
      total_duration: 2_000_000,
      load_duration: 1000,
      prompt_eval_count: promptTokens,
      prompt_eval_duration: 500_000,
      eval_count: pieces.length,
      eval_duration: 1_000_000,
    };
    if (body.stream === false) {
      return c.json({ ...final, message: { role: "assistant", content: answer } });
    }
    c.header("Content-Type", "application/x-ndjson");
    return stream(c, async (s) => {
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
      await s.write(`${JSON.stringify({ ...final, message: { role: "assistant", content: "" } })}\n`);
    });
  });

  app.notFound((c) => c.text("404 page not found", 404));
  const server = await listen(app, opts.port);
  return { ...server, knobs, calls, chatModels, timings };
}
