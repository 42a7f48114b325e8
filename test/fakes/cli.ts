/**
 * `npm run fakes`: serves the Ollama and Qdrant fakes on loopback until interrupted.
 * FAKE_OLLAMA_PORT (default 11434), FAKE_QDRANT_PORT (default 6333), FAKE_LATENCY_MS (default 0).
 */
import { startFakeOllama } from "./ollama.ts";
import { startFakeQdrant } from "./qdrant.ts";

const latencyMs = Number(process.env.FAKE_LATENCY_MS ?? 0);
const ollama = await startFakeOllama({ port: Number(process.env.FAKE_OLLAMA_PORT ?? 11434), latencyMs });
const qdrant = await startFakeQdrant({ port: Number(process.env.FAKE_QDRANT_PORT ?? 6333), latencyMs });
console.log(`OLLAMA_URL=${ollama.url}`);
console.log(`QDRANT_URL=${qdrant.url}`);

const stop = async () => {
  await Promise.all([ollama.close(), qdrant.close()]);
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
