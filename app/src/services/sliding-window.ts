// The rate limiter's Redis script, registered on the client (cache.ts) and called by ratelimit.ts.
import { type CommandParser, defineScript } from "redis";

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
