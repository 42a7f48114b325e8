import { loadConfig } from "../../app/src/config.ts";
import { createMetrics } from "../../app/src/metrics.ts";
import type { Cache } from "../../app/src/services/cache.ts";
import { createRag, type RagDeps } from "../../app/src/services/rag.ts";
import { appEnv, UNUSED_URLS } from "./app.ts";

/** A Cache over a stand-in Redis client: reads and writes go to `client`; each count is pushed to `counted`. */
function cacheOver<C>(client: C, counted: string[] = []): Cache {
  return {
    read: async (_name: string, read: (c: C) => Promise<unknown>) => {
      const value = await read(client);
      return { value, result: value === undefined ? "miss" : "hit" };
    },
    write: (_name: string, op: (c: C) => Promise<unknown>) => void op(client),
    count: (name: string, result: string) => counted.push(`${name} ${result}`),
  } as unknown as Cache;
}

/** A Cache whose Redis is a Map, counting GETs (what the local copy saves). */
export function mapCache() {
  const redis = new Map<string, string>();
  let gets = 0;
  const cache = cacheOver({
    get: async (k: string) => {
      gets++;
      return redis.get(k) ?? null;
    },
    set: async (k: string, v: string) => redis.set(k, v),
  });
  return { cache, redis, gets: () => gets };
}

/** createRag over a Redis whose GET answers `answerFor(key)` once `gate` opens; what it requested and counted. */
export function ragOverRedis(answerFor: (key: string) => string | null, gate: Promise<void>, deps: Partial<RagDeps> = {}) {
  const requested: string[] = [];
  const counted: string[] = [];
  const client = {
    get: async (key: string) => {
      requested.push(key.split(":")[0]!);
      await gate;
      return answerFor(key);
    },
    set: async () => "OK",
  };
  const rag = createRag({
    config: loadConfig(appEnv(UNUSED_URLS)),
    cache: cacheOver(client, counted),
    store: { confirmReachable: async () => {} } as never,
    corpus: { current: () => 1 } as never,
    ollama: { embed: async () => [[0.1, 0.2]] } as never,
    qdrant: { search: async () => [] } as never,
    vectorFit: { refused: () => {} },
    metrics: createMetrics(),
    ...deps,
  });
  return { rag, requested, counted };
}
