import { startFakeOllama, type FakeOllama, type FakeOllamaOptions } from "../fakes/ollama.ts";
import { startFakeQdrant, type FakeQdrant, type FakeQdrantOptions } from "../fakes/qdrant.ts";

export interface Fakes {
  ollama: FakeOllama;
  qdrant: FakeQdrant;
  stop(): Promise<void>;
}

/** Starts the Ollama and Qdrant protocol fakes on free loopback ports. */
export async function startFakes(opts: { ollama?: FakeOllamaOptions; qdrant?: FakeQdrantOptions } = {}): Promise<Fakes> {
  const [ollama, qdrant] = await Promise.all([startFakeOllama(opts.ollama), startFakeQdrant(opts.qdrant)]);
  return { ollama, qdrant, stop: async () => void (await Promise.all([ollama.close(), qdrant.close()])) };
}
