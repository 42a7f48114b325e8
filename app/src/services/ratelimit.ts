import type { Cache } from "./cache.ts";

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the oldest request in the window leaves it. */
  resetSeconds: number;
  store: "redis" | "memory";
}

/** Unique per request within the window: the process's random prefix and a counter (cheaper than a UUID each). */
const memberPrefix = `${process.pid}:${Math.random().toString(36).slice(2)}:`;
let memberSeq = 0;

const MAX_MEMORY_KEYS = 10_000;

/** Per-key limit in Redis; while Redis fails, the same limit is enforced per process instead of failing requests. */
export function createRateLimiter(cache: Cache, limit: number, windowMs = 60_000) {
  const memory = new Map<string, number[]>();
  const windowString = String(windowMs);
  const limitString = String(limit);

  function checkInMemory(key: string): RateDecision {
    const now = Date.now();
    const hits = (memory.get(key) ?? []).filter((t) => t > now - windowMs);
    const allowed = hits.length < limit;
    if (allowed) hits.push(now);
    memory.delete(key); // re-insert so Map order is least-recently-used first
    memory.set(key, hits);
    if (memory.size > MAX_MEMORY_KEYS) memory.delete(memory.keys().next().value!);
    const resetMs = hits.length > 0 ? hits[0]! + windowMs - now : windowMs;
    return decision(allowed, hits.length, resetMs, "memory");
  }

  function decision(allowed: boolean, count: number, resetMs: number, store: RateDecision["store"]): RateDecision {
    return { allowed, limit, remaining: Math.max(0, limit - count), resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)), store };
  }

  return {
    windowMs,

    async check(key: string): Promise<RateDecision> {
      try {
        const [allowed, count, resetMs] = await cache.client.slidingWindow(
          `ratelimit:${key}`,
          windowString,
          limitString,
          memberPrefix + memberSeq++,
        );
        return decision(allowed === 1, count, resetMs, "redis");
      } catch {
        return checkInMemory(key);
      }
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
