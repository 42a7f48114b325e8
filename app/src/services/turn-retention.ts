import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Sql } from "./db.ts";

/** Turns looked at per transaction: each stays short whatever the backlog (a first sweep of a year of turns). */
export const PRUNE_BATCH = 1_000;

/** pg_try_advisory_xact_lock key: one replica prunes at a time (another would wait on the same rows). */
const PRUNE_LOCK = 0x7475726e; // "turn"

export interface Pruned {
  turns: number;
  sessions: number;
  /** Another replica held the lock: nothing was looked at. */
  skipped: boolean;
}

/**
 * Deletes the turns older than `days` among the `batch` oldest by id (their feedback goes with them: ON DELETE
 * CASCADE), then the sessions they leave without a turn. Ids follow insertion, so once pruned the oldest turns are the
 * ones kept and this reads `batch` index entries, not the table: no index on created_at to maintain on every insert.
 */
export function pruneTurns(sql: Sql, days: number, batch = PRUNE_BATCH): Promise<Pruned> {
  return sql.begin(async (tx) => {
    const [{ locked }] = (await tx`SELECT pg_try_advisory_xact_lock(${PRUNE_LOCK}) AS locked`) as unknown as [
      { locked: boolean },
    ];
    if (!locked) return { turns: 0, sessions: 0, skipped: true };
    const gone = await tx<{ session_id: string }[]>`
      DELETE FROM turns WHERE id IN (
        SELECT id FROM (SELECT id, created_at FROM turns ORDER BY id LIMIT ${batch}) oldest
        WHERE created_at < now() - make_interval(days => ${days}))
      RETURNING session_id`;
    if (gone.length === 0) return { turns: 0, sessions: 0, skipped: false };
    const ids = tx.json([...new Set(gone.map((r) => r.session_id))]);
    // Locked before they are checked, each check in a statement of its own (a snapshot taken once the locks are held).
    // A turn being written into one of these sessions holds a KEY SHARE lock on it (its foreign key) until it commits:
    // checked in the DELETE's own snapshot, taken before that commit, the session looked empty, and deleting it
    // cascaded to the turn just acknowledged. A turn arriving after the lock fails its foreign key (23503) once the
    // session is gone; the turn writer then writes it again into a session created anew (turns.ts).
    await tx`SELECT id FROM sessions WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(${ids}))) ORDER BY id FOR UPDATE`;
    const emptied = await tx`
      DELETE FROM sessions s WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(${ids})))
        AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id)`;
    return { turns: gone.length, sessions: emptied.count, skipped: false };
  });
}

export interface TurnRetentionOptions {
  /** TURN_RETENTION_DAYS; 0 keeps every turn. */
  days: number;
  /** TURN_RETENTION_SWEEP_MS: how often a replica tries to prune. */
  everyMs: number;
  log: Logger;
}

/** Prunes every `everyMs` until stopped, a batch after another while whole batches are old enough. */
export function startTurnRetention(sql: Sql, { days, everyMs, log }: TurnRetentionOptions): { stop(): void } {
  if (days === 0) return { stop: () => {} };
  let stopped = false;
  let running = false;
  const sweep = async () => {
    const total = { turns: 0, sessions: 0 };
    for (let more = true; more && !stopped; ) {
      const pruned = await pruneTurns(sql, days);
      total.turns += pruned.turns;
      total.sessions += pruned.sessions;
      more = pruned.turns === PRUNE_BATCH;
    }
    if (total.turns > 0) log.info({ ...total, retention_days: days }, "turns past their retention deleted");
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
