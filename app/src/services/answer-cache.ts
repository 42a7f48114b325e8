import { LRUCache } from "lru-cache";
import type { Cache } from "./cache.ts";
import type { Source } from "./store.ts";

export interface CachedAnswer {
  answer: string;
  sources: Source[];
}

export interface AnswerCacheOptions {
  /** Lifetime in Redis (RESPONSE_CACHE_TTL_SECONDS). */
  ttlSeconds: number;
  /** Entries kept in this process (RESPONSE_LOCAL_CACHE_ENTRIES); 0 turns the local copy off. */
  localEntries: number;
  /** Lifetime of the local copy (RESPONSE_LOCAL_CACHE_TTL_SECONDS). */
  localTtlSeconds: number;
}

/** Bound on the local copy's memory: characters of answers and source texts across all entries. */
const LOCAL_MAX_CHARS = 16 * 1024 * 1024;

const sizeOf = (entry: CachedAnswer) => entry.answer.length + entry.sources.reduce((n, s) => n + s.text.length, 1);

/**
 * Cached answers in Redis, shared by every replica, with the hot ones also kept in this process so a repeated question
 * costs no Redis round trip. A key carries the corpus version, so an entry is never stale: the local copy needs no
 * invalidation, and its short lifetime only bounds how long it outlives the Redis entry.
 */
export function createAnswerCache(cache: Cache, opts: AnswerCacheOptions) {
  const local =
    opts.localEntries > 0
      ? new LRUCache<string, CachedAnswer>({
          max: opts.localEntries,
          maxSize: LOCAL_MAX_CHARS,
          sizeCalculation: sizeOf,
          ttl: Math.min(opts.localTtlSeconds, opts.ttlSeconds) * 1000,
        })
      : undefined;

  /** The answer held in this process, if any (no I/O). */
  function held(key: string): CachedAnswer | undefined {
    const entry = local?.get(key);
    if (entry) cache.count("response", "hit");
    return entry;
  }

  /** The answer in Redis (counted as a hit, miss or error), then held here too. */
  async function fetch(key: string): Promise<CachedAnswer | undefined> {
    const found = await cache.lookup("response", async (c) => {
      const raw = await c.get(key);
      return raw ? (JSON.parse(raw) as CachedAnswer) : undefined;
    });
    if (found) local?.set(key, found);
    return found;
  }

  return {
    held,
    fetch,

    set(key: string, entry: CachedAnswer): void {
      local?.set(key, entry);
      cache.write("response", (c) => c.set(key, JSON.stringify(entry), { EX: opts.ttlSeconds }));
    },
  };
}

export type AnswerCache = ReturnType<typeof createAnswerCache>;
