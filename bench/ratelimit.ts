/**
 * `npm run bench:ratelimit`: the rate limiter's per-process fallback (Redis down) at a high limit beside a low one, in
 * the same process. A busy key makes CHECKS checks within one window; at a limit of 60 its log never holds more than
 * 60 entries, at 100,000 it holds every check. The ratio of the two per-check costs says whether a check's cost grows
 * with the limit (it did while each check copied the whole log: a Redis outage then slowed a busy key's requests).
 * Not a test: it prints the numbers and the ratio.
 */
import type { Cache } from "../app/src/services/cache.ts";
import { createRateLimiter } from "../app/src/services/ratelimit.ts";

const CHECKS = Number(process.env.BENCH_CHECKS ?? 20_000);
const redisDown = { run: () => Promise.reject(new Error("ECONNREFUSED")) } as unknown as Cache;

async function usPerCheck(limit: number): Promise<number> {
  const limiter = createRateLimiter(redisDown, limit);
  const started = performance.now();
  for (let i = 0; i < CHECKS; i++) await limiter.check("busy-key");
  return ((performance.now() - started) * 1000) / CHECKS;
}

const LOW = 60;
const HIGH = 100_000;
await usPerCheck(LOW); // warm-up
const rounds: Record<number, number[]> = { [LOW]: [], [HIGH]: [] };
for (let round = 0; round < 3; round++) for (const limit of [LOW, HIGH]) rounds[limit]!.push(await usPerCheck(limit));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [low, high] = [median(rounds[LOW]!), median(rounds[HIGH]!)];
console.log(`rate limiter with Redis down: ${CHECKS} checks of one key within a window, median of 3 rounds`);
console.table([
  { limit: LOW, "us per check": low.toFixed(2) },
  { limit: HIGH, "us per check": high.toFixed(2) },
]);
console.log(`limit ${HIGH} / limit ${LOW} cost per check: ${(high / low).toFixed(1)}x (goal: about 1x)`);
