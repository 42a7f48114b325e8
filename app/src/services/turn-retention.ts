import type { Gauge } from "prom-client";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import { counted, type Sql } from "./db.ts";
import { runPeriodically } from "./periodic.ts";

/** Turns looked at per transaction: each stays short whatever the backlog (a first sweep of a year of turns). */
export const PRUNE_BATCH = 1_000;

/** pg_try_advisory_xact_lock key: one replica prunes at a time (another would wait on the same rows). */
export const PRUNE_LOCK = 0x7475726e; // "turn"

export interface Pruned {
  turns: number;
  sessions: number;
  sourceSets: number;
  /** Another replica held the lock: nothing was looked at. */
  skipped: boolean;
}

/**
 * Deletes the turns older than `days` among the `batch` oldest, then the sessions and source lists they leave without
 * a turn: migration 012's prune_turns, which says how, in one statement. As a transaction of several statements
 * (postgres.js sql.begin), a connection reset in its middle ended the process (porsager/postgres#1208).
 */
export async function pruneTurns(sql: Sql, days: number, batch = PRUNE_BATCH): Promise<Pruned> {
  const [row] = await counted(
    sql,
    sql<{ locked: boolean; turns_deleted: number; sessions_deleted: number; source_sets_deleted: number }[]>`
      SELECT * FROM prune_turns(${PRUNE_LOCK}::bigint, ${days}::integer, ${batch}::integer)`,
  );
  const { locked, turns_deleted, sessions_deleted, source_sets_deleted } = row!;
  return { turns: turns_deleted, sessions: sessions_deleted, sourceSets: source_sets_deleted, skipped: !locked };
}

/** When a sweep last finished on this database (migration 015), in seconds since the epoch. */
async function readLastSweep(sql: Sql): Promise<number> {
  const [row] = await counted(
    sql,
    sql<{ at: number }[]>`SELECT extract(epoch FROM last_finished)::float8 AS at FROM turn_retention_sweeps`,
  );
  return row!.at;
}

/** Dates the database's last finished sweep now; returns that date as `readLastSweep` does. */
async function markSweepFinished(sql: Sql): Promise<number> {
  const [row] = await counted(
    sql,
    sql<{ at: number }[]>`
      UPDATE turn_retention_sweeps SET last_finished = now() RETURNING extract(epoch FROM last_finished)::float8 AS at`,
  );
  return row!.at;
}

/**
 * The first sweep runs this long after the start, give or take half (replicas started together spread out), not a
 * whole TURN_RETENTION_SWEEP_MS later: a replica shows the database's date at once, and after a long stop (a rollback,
 * retention turned back on, every pod down) that date is past TurnRetentionStalled's 6 h until a sweep (review N24).
 */
const FIRST_SWEEP_MS = 60_000;

export interface TurnRetentionOptions {
  /** TURN_RETENTION_DAYS; 0 keeps every turn. */
  days: number;
  /** TURN_RETENTION_SWEEP_MS: how often a replica tries to prune. */
  everyMs: number;
  log: Logger;
  /**
   * Set to when a sweep last finished on the database, whichever replica ran it: read at the start and after each
   * sweep, or dated by this replica's. The TurnRetentionStalled alert reads it.
   */
  lastSuccess: Gauge;
}

/** Prunes every `everyMs` until stopped, a batch after another while whole batches are old enough. */
export function startTurnRetention(sql: Sql, { days, everyMs, log, lastSuccess }: TurnRetentionOptions): { stop(): void } {
  if (days === 0) return { stop: () => {} };
  let shown = 0;
  /** Only forward: a read sent before a sweep dated the row may answer after it. */
  const show = (at: number) => {
    shown = Math.max(at, shown);
    lastSuccess.set(shown);
  };
  const read = (why: string) =>
    readLastSweep(sql).then(
      show,
      // Left at 0, which the alert skips: the other replicas show the date (a replica's own start shown here hid
      // sweeps that all failed); logged, as a table this role cannot read would leave every replica at 0.
      (err: unknown) => log.warn({ err: describe(err) }, `turn retention: the last sweep's date could not be read ${why}`),
    );
  void read("at start");
  const sweep = async (stopped: () => boolean) => {
    const total = { turns: 0, sessions: 0, sourceSets: 0 };
    let ran = false;
    for (let more = true; more && !stopped(); ) {
      const pruned = await pruneTurns(sql, days);
      ran ||= !pruned.skipped;
      total.turns += pruned.turns;
      total.sessions += pruned.sessions;
      total.sourceSets += pruned.sourceSets;
      more = pruned.turns === PRUNE_BATCH;
    }
    if (total.turns > 0) log.info({ ...total, retention_days: days }, "turns past their retention deleted");
    // Another replica holding the sweep dates it when it finishes; this one shows the date it reads.
    if (ran && !stopped()) show(await markSweepFinished(sql));
    else await read("after a sweep another replica held");
  };
  return runPeriodically(
    (stopped) =>
      sweep(stopped).catch((err: unknown) => {
        log.warn({ err: describe(err) }, "turn retention sweep failed; trying again later");
        // Its date read again: a replica whose start read failed showed 0 for good while every sweep failed.
        return read("after a failed sweep");
      }),
    Math.min(everyMs, FIRST_SWEEP_MS) * (0.5 + Math.random()),
    everyMs,
  );
}
