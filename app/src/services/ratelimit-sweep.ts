import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Cache } from "./cache.ts";
import { runPeriodically } from "./periodic.ts";

/** How often a replica offers to sweep; the first replica to take the period's lock sweeps for all. */
const SWEEP_EVERY_MS = 10 * 60_000;
/** The lock's key, outside `ratelimit:*`, so no sweep meets it. */
const SWEEP_LOCK = "ratelimit-sweep";
/** Keys asked of SCAN per step: one step and its trim each take about a millisecond of Redis' time. */
const SCAN_COUNT = 1_000;

export interface SweepResult {
  scanned: number;
  deleted: number;
}

/**
 * One pass over the rate limiter's logs (`ratelimit:*`), deleting those with no entry left in the window. A log has no
 * expiry, so `volatile-lru` cannot evict a busy key's window (sliding-window.ts), and nothing else deleted an idle one:
 * probe CN's 30,000 keys sending 8 requests each left 30,000 logs, 9.6 MB, for good. Each SCAN step and its trim run
 * within the command deadline (`cache.run`); `stopped` ends the pass between steps.
 */
export async function sweepIdleRateLogs(cache: Pick<Cache, "run">, windowMs: number, stopped = () => false) {
  const window = String(windowMs);
  const result: SweepResult = { scanned: 0, deleted: 0 };
  let cursor = "0";
  do {
    const step = await cache.run((c) => c.scan(cursor, { MATCH: "ratelimit:*", COUNT: SCAN_COUNT, TYPE: "zset" }), "ratelimit");
    cursor = step.cursor;
    result.scanned += step.keys.length;
    if (step.keys.length > 0) result.deleted += await cache.run((c) => c.trimIdleLogs(step.keys, window), "ratelimit");
  } while (cursor !== "0" && !stopped());
  return result;
}

/**
 * Sweeps every SWEEP_EVERY_MS, first at a random point of the period so that replicas started together do not meet;
 * a replica sweeps only when it takes the period's lock, so one sweep a period serves them all.
 */
export function startRateLogSweeps(cache: Pick<Cache, "run">, windowMs: number, log: Logger, everyMs = SWEEP_EVERY_MS) {
  const sweep = async (stopped: () => boolean) => {
    try {
      const locked = await cache.run((c) => c.set(SWEEP_LOCK, "1", { NX: true, PX: Math.floor(everyMs * 0.9) }), "ratelimit");
      if (locked !== "OK" || stopped()) return;
      const result = await sweepIdleRateLogs(cache, windowMs, stopped);
      log.info(result, "rate-limit logs swept: idle ones deleted");
    } catch (err) {
      log.warn({ err: describe(err) }, "rate-limit log sweep failed; trying again next period");
    }
  };
  return runPeriodically(sweep, everyMs * Math.random(), everyMs);
}
