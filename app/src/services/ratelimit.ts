import type { Cache } from "./cache.ts";

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the oldest request in the window leaves it. */
  resetSeconds: number;
  store: "redis" | "memory";
}

/** Unique per lease within the window: the process's random prefix and a counter (cheaper than a UUID each). */
const memberPrefix = `${process.pid}:${Math.random().toString(36).slice(2)}:`;
let leaseSeq = 0;

const MAX_MEMORY_KEYS = 10_000;

/**
 * How long admissions taken from Redis ahead of use stay usable here, and how fast a lease must go to grow; longer
 * when Redis answers slower (renew).
 */
const LEASE_MS = 100;
/** The longest a lease is held, however slow the last round trip was (an event loop stalled seconds by a GC). */
const MAX_HOLD_MS = 2_000;
/** Share of a key's limit one replica may hold ahead of use: the most the limit can be under-used by. */
const LEASE_SHARE = 0.05;
const MAX_LEASE = 1_000;

/**
 * One key's admissions in the window while Redis fails, oldest first; those before `first` have left it. Each check
 * drops only what left since the last one (a copy that filtered the whole log cost O(limit) time and memory per request:
 * at a limit of 100,000 a minute, a Redis outage made a busy key's every request copy tens of thousands of timestamps).
 */
interface WindowLog {
  hits: number[];
  first: number;
}

/** Admissions this replica took from the Redis log ahead of use, for one key. */
interface Lease {
  tokens: number;
  /** Admissions Redis granted to the last renewal; 0 means the window was full until `resetAt`. */
  granted: number;
  /** Their entries in the Redis log are this and 1 to `granted`. */
  memberPrefix: string;
  /** What Redis said was left in the window once this lease was taken. */
  remainingAfter: number;
  resetAt: number;
  expiresAt: number;
  size: number;
  pending?: Promise<number> | undefined;
}

/**
 * Per-key sliding-window limit in Redis, shared by every replica. A key seen at a high rate takes admissions in
 * leases (doubling while each lease lasts under LEASE_MS, at most LEASE_SHARE of the limit) and answers from the
 * lease without a Redis round trip; a key at a low rate or a small limit takes one at a time, exactly as before.
 * Leased admissions are logged in Redis when taken and dated their hold ahead (LEASE_MS, or twice the round trip to a
 * slower Redis), the longest one is held before use, so replicas together never admit more than the limit in any
 * window (but for an admission taken alone, used as its reply comes back: it leaves the window that much early); an
 * unused lease expires after its hold, and the next renewal takes its rest out of the log. While Redis fails, the same
 * limit is enforced per process instead of failing requests.
 */
export function createRateLimiter(cache: Cache, limit: number, windowMs = 60_000) {
  const memory = new Map<string, WindowLog>();
  const leases = new Map<string, Lease>();
  const windowString = String(windowMs);
  const limitString = String(limit);
  const maxLease = Math.max(1, Math.min(MAX_LEASE, Math.floor(limit * LEASE_SHARE)));
  /** The last renewal's round trip: a lease is held for twice it when that is longer than LEASE_MS (see renew). */
  let roundTripMs = 0;

  /** The key's log of this process's admissions, trimmed to the window ending `now`. */
  function ownLog(key: string, now: number): WindowLog {
    const log = memory.get(key) ?? { hits: [], first: 0 };
    memory.delete(key); // re-insert so Map order is least-recently-used first
    memory.set(key, log);
    if (memory.size > MAX_MEMORY_KEYS) memory.delete(memory.keys().next().value!);
    while (log.first < log.hits.length && log.hits[log.first]! <= now - windowMs) log.first++;
    if (log.first > 64 && log.first * 2 > log.hits.length) {
      log.hits = log.hits.slice(log.first);
      log.first = 0;
    }
    return log;
  }

  /** Admits the request if this process's own admissions in the window leave room for it, and logs it. */
  function checkInMemory(key: string): RateDecision {
    const now = performance.now();
    const log = ownLog(key, now);
    const allowed = log.hits.length - log.first < limit;
    if (allowed) log.hits.push(now);
    const count = log.hits.length - log.first;
    const resetMs = count > 0 ? log.hits[log.first]! + windowMs - now : windowMs;
    return decision(allowed, limit - count, resetMs, "memory");
  }

  function decision(allowed: boolean, remaining: number, resetMs: number, store: RateDecision["store"]): RateDecision {
    return { allowed, limit, remaining: Math.max(0, remaining), resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)), store };
  }

  /**
   * Takes `lease.size` admissions (or what is left of the limit) from Redis; resolves to the number granted. The last
   * lease's unused admissions are taken out of the log in the same call: left there, each lease that expired early kept
   * its rest from the window, and a key at a steady rate was refused with 10-23 % of its limit never used.
   */
  async function renew(key: string, lease: Lease): Promise<number> {
    const unused = {
      memberPrefix: lease.memberPrefix,
      from: String(lease.granted - lease.tokens + 1),
      to: String(lease.granted),
    };
    lease.tokens = 0;
    const prefix = `${memberPrefix}${leaseSeq++}:`;
    // Usable for their hold from before the call, and dated that long after Redis took them (the script): each is used
    // before its date, and stays in the window a whole window after its use. The hold is LEASE_MS, or twice the last
    // round trip when Redis is slower: held for LEASE_MS, a lease that took longer to come back was expired on
    // arrival. One alone is used as it comes back (checkInRedis), so it is not held: dated when taken, the count a
    // key of a small limit is told stays exact.
    const sentAt = performance.now();
    const holdMs = lease.size === 1 ? 0 : Math.max(LEASE_MS, Math.min(MAX_HOLD_MS, Math.ceil(2 * roundTripMs)));
    const [granted, count, resetMs] = await cache.run(
      (c) => c.slidingWindow(`ratelimit:${key}`, windowString, limitString, prefix, String(lease.size), unused, String(holdMs)),
      "ratelimit",
    );
    const now = performance.now();
    roundTripMs = now - sentAt;
    lease.tokens = granted;
    lease.granted = granted;
    lease.memberPrefix = prefix;
    lease.remainingAfter = limit - count;
    lease.resetAt = now + resetMs;
    lease.expiresAt = sentAt + Math.max(LEASE_MS, holdMs);
    return granted;
  }

  function leaseFor(key: string): Lease {
    let lease = leases.get(key);
    if (!lease) {
      lease = { tokens: 0, granted: 0, memberPrefix: "", remainingAfter: limit, resetAt: 0, expiresAt: 0, size: 1 };
      leases.set(key, lease);
      if (leases.size > MAX_MEMORY_KEYS) leases.delete(leases.keys().next().value!);
    }
    return lease;
  }

  function take(lease: Lease, now: number): RateDecision {
    lease.tokens--;
    return decision(true, lease.remainingAfter + lease.tokens, lease.resetAt - now, "redis");
  }

  async function checkInRedis(key: string): Promise<RateDecision> {
    const lease = leaseFor(key);
    /** The lease this request waited for ran out before it came to take from it. */
    let outrun = false;
    for (;;) {
      const now = performance.now();
      if (lease.tokens > 0 && now < lease.expiresAt) return take(lease, now);
      // A full window frees its first slot when its oldest entry leaves (`resetAt`): until then every replica's
      // answer is no, so it is given here without asking Redis again.
      if (lease.granted === 0 && now < lease.resetAt && !lease.pending) return decision(false, 0, lease.resetAt - now, "redis");
      if (!lease.pending) {
        // A lease used up before it expired, or by the requests that waited for it, means this key is busy here: take
        // twice as many next time.
        const usedUp = lease.granted > 0 && lease.tokens === 0 && (outrun || now < lease.expiresAt);
        lease.size = usedUp ? Math.min(maxLease, lease.size * 2) : Math.max(1, lease.size >> 1);
        const pending = renew(key, lease).finally(() => {
          if (lease.pending === pending) lease.pending = undefined;
        });
        lease.pending = pending;
      }
      // Every request waiting for this lease takes from it as it comes back, or asks for the next one if it ran out.
      // One alone is taken even expired: held for LEASE_MS, every lease came back expired from a Redis slower than
      // that, and each waiting request asked again until its own deadline, a 504 (probe BK: every request at a round
      // trip of 100-250 ms). A larger one is not: its entries' date passed, they leave Redis's window before a whole
      // window after their use, and another replica took their place (review N17: 420 admitted in a window of 400).
      // The next lease is held for twice the round trip that came back late.
      if ((await lease.pending) === 0) return decision(false, 0, lease.resetAt - performance.now(), "redis");
      const back = performance.now();
      if (lease.tokens > 0 && (lease.granted === 1 || back < lease.expiresAt)) return take(lease, back);
      if (lease.tokens === 0) outrun = true;
    }
  }

  return {
    windowMs,

    /**
     * Redis decides while it answers, and this process's own log of its admissions (every one, from Redis or not)
     * while it fails; an admission from Redis is also checked against that log. Apart, each log ignored the other's
     * admissions, and a Redis outage's start or end let one process admit twice the limit in a window: 40 of 20
     * (probe X). Admissions made during an outage are not given to Redis: other replicas may still admit up to the
     * limit each across its end.
     */
    async check(key: string): Promise<RateDecision> {
      let fromRedis: RateDecision;
      try {
        fromRedis = await checkInRedis(key);
      } catch {
        return checkInMemory(key);
      }
      if (!fromRedis.allowed) return fromRedis;
      const own = checkInMemory(key);
      return own.allowed ? fromRedis : own;
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
