import { defineScript, type CommandParser } from "redis";
import type { Cache } from "./cache.ts";

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the oldest request in the window leaves it. */
  resetSeconds: number;
  store: "redis" | "memory";
}

/**
 * Sliding-window log in one sorted set per key: drop entries older than the window, count, admit if under the
 * limit. Runs atomically in Redis and uses the server clock so replicas with skewed clocks agree.
 */
const SLIDING_WINDOW_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, count, reset}`;

/**
 * Registered on the Redis client (cache.ts): node-redis sends EVALSHA with the script's SHA1 and falls back to EVAL
 * (which loads it) only on NOSCRIPT, so the script text crosses the network once per server, not once per request.
 */
export const slidingWindow = defineScript({
  SCRIPT: SLIDING_WINDOW_SCRIPT,
  NUMBER_OF_KEYS: 1,
  parseCommand(parser: CommandParser, key: string, windowMs: string, limit: string, member: string) {
    parser.pushKey(key);
    parser.push(windowMs, limit, member);
  },
  transformReply: (reply: unknown) => reply as [number, number, number],
});

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
        const [allowed, count, resetMs] = await cache.client.slidingWindow(`ratelimit:${key}`, windowString, limitString, memberPrefix + memberSeq++);
        return decision(allowed === 1, count, resetMs, "redis");
      } catch {
        return checkInMemory(key);
      }
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
