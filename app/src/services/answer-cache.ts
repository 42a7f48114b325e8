import { z } from "@hono/zod-openapi";
import { LRUCache } from "lru-cache";
import { SourceSchema } from "../schemas.ts";
import { type Cache, type CacheRead, readEntry } from "./cache.ts";
import type { Source } from "./store.ts";

export interface CachedAnswer {
  answer: string;
  sources: Source[];
  /** Set when the answer was cut before the model ended it (ChatResult.truncated). */
  truncated?: boolean;
}

/** A question's last generated answer and the hash of the prompt it was generated from. */
export interface LatestAnswer {
  prompt: string;
  answer: string;
  truncated?: boolean;
  /**
   * How many of the prompt's sources, best first, the model was given, when fewer than all: it refused the whole
   * prompt as longer than its window (rag.ts askWithin).
   */
  shown?: number;
}

export interface AnswerCacheOptions {
  /** Lifetime in Redis (RESPONSE_CACHE_TTL_SECONDS). */
  ttlSeconds: number;
  /** Entries kept in this process (RESPONSE_LOCAL_CACHE_ENTRIES); 0 turns the local copy off. */
  localEntries: number;
  /** Lifetime of the local copy (RESPONSE_LOCAL_CACHE_TTL_SECONDS). */
  localTtlSeconds: number;
}

/** Entries as read back from Redis; one of another shape is a read error, so a miss (parseEntry). */
const CachedAnswerSchema = z.object({ answer: z.string(), sources: z.array(SourceSchema), truncated: z.boolean().optional() });
const LatestAnswerSchema = z.object({
  prompt: z.string(),
  answer: z.string(),
  truncated: z.boolean().optional(),
  shown: z.number().int().nonnegative().optional(),
});

/** Bound on the local copy's memory: characters of answers and source texts across all entries. */
const LOCAL_MAX_CHARS = 16 * 1024 * 1024;

const sizeOf = (entry: CachedAnswer) => entry.answer.length + entry.sources.reduce((n, s) => n + s.text.length, 1);

/**
 * Cached answers in Redis, shared by every replica, with the hot ones also kept in this process so a repeated question
 * costs no Redis round trip. A key carries the corpus version, so an entry is never stale once this replica holds the
 * new version (corpus.ts: another replica's ingest or delete reaches it by NOTIFY, milliseconds after it was
 * acknowledged): the local copy needs no invalidation, and its short lifetime only bounds how long it outlives the
 * Redis entry.
 *
 * A question's last generated answer is also kept without the corpus version, with the hash of its prompt (model,
 * context, question and answer settings): after an ingest or delete, a question whose retrieval builds the same prompt
 * gets that answer instead of another model call. It is read in the same round trip as the versioned entry, so it costs none of its own.
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

  // None of these reads is counted: the caller counts each question once, under "response", when it knows whether
  // its answer came from the cache at any step.

  /** The answer held in this process, if any (no I/O). */
  const held = (key: string): CachedAnswer | undefined => local?.get(key);

  /** The answer in Redis under this corpus version, then held here too. */
  async function fetch(key: string): Promise<CacheRead<CachedAnswer>> {
    const found = await readEntry(cache, "response", key, CachedAnswerSchema);
    if (found.value) local?.set(key, found.value);
    return found;
  }

  /** The question's latest generated answer in Redis, whatever the corpus version. */
  const latest = (questionKey: string) => readEntry(cache, "response", `latest:${questionKey}`, LatestAnswerSchema);

  return {
    held,
    fetch,
    latest,

    /** Stores the answer under its versioned key and, for a newly generated one, as its question's latest. */
    set(key: string, entry: CachedAnswer, generated?: { questionKey: string; prompt: string; shown?: number }): void {
      local?.set(key, entry);
      cache.write("response", (c) => c.set(key, JSON.stringify(entry), { EX: opts.ttlSeconds }));
      if (!generated) return;
      const { prompt, shown } = generated;
      const value: LatestAnswer = { prompt, answer: entry.answer, truncated: entry.truncated, shown };
      cache.write("response", (c) => c.set(`latest:${generated.questionKey}`, JSON.stringify(value), { EX: opts.ttlSeconds }));
    },
  };
}

export type AnswerCache = ReturnType<typeof createAnswerCache>;
