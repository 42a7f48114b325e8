import { createMetrics } from "../../app/src/metrics.ts";
import { createOllama } from "../../app/src/services/ollama.ts";

/** The app's Ollama service on `url` (a fake, a stand-in or a proxy), with the app's defaults. */
export const ollamaAt = (url: string, timeoutMs = 5_000, maxAnswerTokens = 1_024) =>
  createOllama({ url, timeoutMs, embedModel: "fake-embed", batchSize: 32, maxAnswerTokens, metrics: createMetrics() });

/** One line of an Ollama 0.13 chat stream (NDJSON) from model "m". */
export const chatLine = (message: object) => `${JSON.stringify({ model: "m", ...message })}\n`;
