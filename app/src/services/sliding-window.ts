// The rate limiter's Redis scripts, registered on the client (cache.ts) and called by ratelimit.ts and ratelimit-sweep.ts.
import { type CommandParser, defineScript } from "redis";

/**
 * Sliding-window log in one sorted set per key: drop entries older than the window, and the entries ARGV[6] to ARGV[7]
 * of the lease ARGV[5] (admissions a replica took and did not use), count, then admit up to ARGV[4] requests at once
 * while under the limit (one entry each, ARGV[3] .. n, so the log's size is the count). Runs atomically in Redis and
 * uses the server clock so replicas with skewed clocks agree. An entry is dated ARGV[8] ms ahead, the longest a
 * replica may hold it before use: dated when taken, an admission used 99 ms later left the window 99 ms early, and two
 * replicas admitted 209 within a window of 200. Returns {granted, count, reset ms}.
 * The key has no expiry, so ElastiCache's `volatile-lru` (infra/platform/cache.ts) never evicts it, as it evicts cached
 * answers: with one, a flood of distinct questions evicted a busy key's log and each replica admitted the limit again
 * (2 replicas: 60 of 30, probe AB). Redis deletes the set when its last entry is dropped; an idle key's log is
 * deleted by the periodic sweep (`trimIdleLogs`, ratelimit-sweep.ts).
 */
const SLIDING_WINDOW_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local usedBy = now + tonumber(ARGV[8])
-- Runs command on the members numbered first..last of a lease, 500 at a time (unpack's stack limit).
local function onMembers(command, first, last, add)
  for from = first, last, 500 do
    local args = {}
    for k = from, math.min(last, from + 499) do add(args, k) end
    redis.call(command, KEYS[1], unpack(args))
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
onMembers('ZREM', tonumber(ARGV[6]), tonumber(ARGV[7]), function(args, k) args[#args + 1] = ARGV[5] .. k end)
local count = redis.call('ZCARD', KEYS[1])
local granted = math.max(0, math.min(tonumber(ARGV[4]), limit - count))
onMembers('ZADD', 1, granted, function(args, k)
  args[#args + 1] = usedBy
  args[#args + 1] = ARGV[3] .. k
end)
count = count + granted
-- A log an earlier version gave an expiry (during a rolling deploy) would otherwise still end with it.
if granted > 0 then redis.call('PERSIST', KEYS[1]) end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {granted, count, reset}`;

/**
 * Registered on the Redis client (cache.ts): node-redis sends EVALSHA with the script's SHA1 and falls back to EVAL
 * (which loads it) only on NOSCRIPT, so the script text crosses the network once per server, not once per request.
 */
export const slidingWindow = defineScript({
  SCRIPT: SLIDING_WINDOW_SCRIPT,
  NUMBER_OF_KEYS: 1,
  parseCommand(
    parser: CommandParser,
    key: string,
    windowMs: string,
    limit: string,
    memberPrefix: string,
    wanted: string,
    unused: { memberPrefix: string; from: string; to: string },
    holdMs: string,
  ) {
    parser.pushKey(key);
    parser.push(windowMs, limit, memberPrefix, wanted, unused.memberPrefix, unused.from, unused.to, holdMs);
  },
  transformReply: (reply: unknown) => reply as [number, number, number],
});

/**
 * Drops the entries that left the window from each log in KEYS (ARGV[1]: the window, ms), as `slidingWindow` does
 * first: Redis deletes a set once its last entry goes, so an idle key's log is deleted. Returns how many were.
 * Nothing a later check decides changes.
 */
const TRIM_IDLE_LOGS_SCRIPT = `
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local deleted = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  if redis.call('EXISTS', key) == 0 then deleted = deleted + 1 end
end
return deleted`;

/** Takes any number of keys: without NUMBER_OF_KEYS, node-redis leaves the count to `parseCommand`. */
export const trimIdleLogs = defineScript({
  SCRIPT: TRIM_IDLE_LOGS_SCRIPT,
  parseCommand(parser: CommandParser, keys: string[], windowMs: string) {
    parser.push(String(keys.length));
    for (const key of keys) parser.pushKey(key);
    parser.push(windowMs);
  },
  transformReply: (reply: unknown) => reply as number,
});
