import type { Gauge } from "prom-client";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Sql } from "./db.ts";

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
 * Deletes the turns older than `days` among the `batch` oldest by id (their feedback goes with them: ON DELETE
 * CASCADE), then the sessions and source lists they leave without a turn. Ids follow insertion, so once pruned the
 * oldest turns are the ones kept and this reads `batch` index entries, not the table: no index on created_at to
 * maintain on every insert.
 */
export function pruneTurns(sql: Sql, days: number, batch = PRUNE_BATCH): Promise<Pruned> {
  return sql.begin(async (tx) => {
    const [lock] = await tx<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${PRUNE_LOCK}) AS locked`;
    if (!lock?.locked) return { turns: 0, sessions: 0, sourceSets: 0, skipped: true };
    const gone = await tx<{ session_id: string; sources_hash: string | null }[]>`
      DELETE FROM turns WHERE id IN (
        SELECT id FROM (SELECT id, created_at FROM turns ORDER BY id LIMIT ${batch}) oldest
        WHERE created_at < now() - make_interval(days => ${days}))
      RETURNING session_id, sources_hash`;
    if (gone.length === 0) return { turns: 0, sessions: 0, sourceSets: 0, skipped: false };
    const sessions = [...new Set(gone.map((r) => r.session_id))];
    const hashes = [...new Set(gone.flatMap((r) => (r.sources_hash ? [r.sources_hash] : [])))];
    // Lists go as jsonb: without fetch_types postgres.js has no array serializer (db.ts).
    const ids = (values: string[]) => tx`ARRAY(SELECT jsonb_array_elements_text(${tx.json(values)}))`;
    // Locked before they are checked, each check in a statement of its own (a snapshot taken once the locks are held).
    // A turn being written holds a lock on its session (its foreign key) and on a source list it sent (turns.ts) until
    // it commits: checked in the DELETE's own snapshot, taken before that commit, the row looked unused, and deleting
    // a session cascaded to the turn just acknowledged. Locked in the order a turn's statement takes them, lists then
    // sessions: PostgreSQL runs an unreferenced data-modifying CTE before the foreign key checks (execMain.c
    // standard_ExecutorFinish). A turn arriving after the lock fails its foreign key (23503) once its session is gone,
    // and the turn writer writes it again into a session created anew; a list it sends is inserted again.
    await tx`SELECT hash FROM source_sets WHERE hash = ANY(${ids(hashes)}) ORDER BY hash FOR UPDATE`;
    await tx`SELECT id FROM sessions WHERE id = ANY(${ids(sessions)}) ORDER BY id FOR UPDATE`;
    const unusedSets = await tx`
      DELETE FROM source_sets s WHERE hash = ANY(${ids(hashes)})
        AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.sources_hash = s.hash)`;
    const emptied = await tx`
      DELETE FROM sessions s WHERE id = ANY(${ids(sessions)})
        AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id)`;
    return { turns: gone.length, sessions: emptied.count, sourceSets: unusedSets.count, skipped: false };
  });
}

export interface TurnRetentionOptions {
  /** TURN_RETENTION_DAYS; 0 keeps every turn. */
  days: number;
  /** TURN_RETENTION_SWEEP_MS: how often a replica tries to prune. */
  everyMs: number;
  log: Logger;
  /** Set to the time of each finished sweep (and of the start): the TurnRetentionStalled alert reads it. */
  lastSuccess: Gauge;
}

/** Prunes every `everyMs` until stopped, a batch after another while whole batches are old enough. */
export function startTurnRetention(sql: Sql, { days, everyMs, log, lastSuccess }: TurnRetentionOptions): { stop(): void } {
  if (days === 0) return { stop: () => {} };
  lastSuccess.setToCurrentTime();
  let stopped = false;
  let running = false;
  const sweep = async () => {
    const total = { turns: 0, sessions: 0, sourceSets: 0 };
    for (let more = true; more && !stopped; ) {
      const pruned = await pruneTurns(sql, days);
      total.turns += pruned.turns;
      total.sessions += pruned.sessions;
      total.sourceSets += pruned.sourceSets;
      more = pruned.turns === PRUNE_BATCH;
    }
    if (total.turns > 0) log.info({ ...total, retention_days: days }, "turns past their retention deleted");
    lastSuccess.setToCurrentTime();
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweep()
      .catch((err: unknown) => log.warn({ err: describe(err) }, "turn retention sweep failed; trying again later"))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
