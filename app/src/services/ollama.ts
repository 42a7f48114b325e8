import { Ollama, type Message } from "ollama";
import { Agent, type Dispatcher, type RequestInit as UndiciRequestInit, fetch as undiciFetch } from "undici";
import { AppError, describe, isAbortError, upstreamFailure, upstreamTimeout } from "../errors.ts";
import { timeTool, type Metrics } from "../metrics.ts";

export interface ChatResult {
  content: string;
  promptTokens: number;
  completionTokens: number;
}

export type ChatMessage = Message;

/**
 * The Ollama client's transport: undici's own fetch over one keep-alive Agent per client (the `ollama` library takes
 * any fetch: README "Custom client", `fetch` option). Not the global fetch: Node's bundled fetch uses whatever
 * global dispatcher the first imported undici installed, and undici 7.28.0-7.29.0 delays every request on a reused
 * connection by a setTimeout(0) (~1.3 ms; nodejs/undici#5493, fixed by a setImmediate in 7.29.1, #5769).
 * Every request gets a deadline that also covers reading a streamed body; the caller's own signal is kept.
 */
export function fetchWithTimeout(timeoutMs: number, dispatcher: Dispatcher = new Agent()): typeof fetch {
  return (input, init) => {
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    // undici's Request/Response are the web types Node's globals are built from; only their TypeScript names differ.
    return undiciFetch(input as Parameters<typeof undiciFetch>[0], {
      ...(init as UndiciRequestInit),
      signal,
      dispatcher,
    }) as unknown as Promise<Response>;
  };
}

function toAppError(err: unknown, timeoutMs: number): AppError {
  if (err instanceof AppError) return err;
  if (isAbortError(err)) return upstreamTimeout("ollama", timeoutMs);
  const status = (err as { status_code?: unknown }).status_code;
  if (typeof status === "number") return upstreamFailure("ollama", `HTTP ${status}: ${(err as Error).message}`);
  return upstreamFailure("ollama", describe(err));
}

export function createOllama(opts: { url: string; timeoutMs: number; embedModel: string; batchSize: number; metrics: Metrics }) {
  const client = new Ollama({ host: opts.url, fetch: fetchWithTimeout(opts.timeoutMs) });
  const call = async <T>(tool: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await timeTool(opts.metrics, tool, fn);
    } catch (err) {
      throw toAppError(err, opts.timeoutMs);
    }
  };

  return {
    /** Embeds texts in batches of EMBED_BATCH_SIZE through /api/embed. */
    async embed(texts: string[]): Promise<number[][]> {
      const vectors: number[][] = [];
      for (let i = 0; i < texts.length; i += opts.batchSize) {
        const input = texts.slice(i, i + opts.batchSize);
        const res = await call("ollama_embed", () => client.embed({ model: opts.embedModel, input }));
        if (res.embeddings.length !== input.length) {
          throw upstreamFailure("ollama", `expected ${input.length} embeddings, got ${res.embeddings.length}`);
        }
        vectors.push(...res.embeddings);
      }
      return vectors;
    },

    chat: (model: string, messages: ChatMessage[]): Promise<ChatResult> =>
      call("ollama_chat", async () => {
        const res = await client.chat({ model, messages, stream: false });
        return {
          content: res.message.content,
          promptTokens: res.prompt_eval_count ?? 0,
          completionTokens: res.eval_count ?? 0,
        };
      }),

    /** Streams the answer token by token; the generator's return value carries the token counts. */
    async *chatStream(model: string, messages: ChatMessage[]): AsyncGenerator<string, ChatResult> {
      const stop = opts.metrics.toolDuration.startTimer({ tool_name: "ollama_chat" });
      let content = "";
      try {
        const stream = await client.chat({ model, messages, stream: true });
        for await (const part of stream) {
          if (part.message?.content) {
            content += part.message.content;
            yield part.message.content;
          }
          if (part.done) {
            opts.metrics.toolCalls.inc({ tool_name: "ollama_chat", success: "true" });
            return { content, promptTokens: part.prompt_eval_count ?? 0, completionTokens: part.eval_count ?? 0 };
          }
        }
        throw new Error("stream ended without done");
      } catch (err) {
        opts.metrics.toolCalls.inc({ tool_name: "ollama_chat", success: "false" });
        throw toAppError(err, opts.timeoutMs);
      } finally {
        stop();
      }
    },

    version: () => client.version(),
  };
}

export type OllamaService = ReturnType<typeof createOllama>;
