import type { Deadline } from "../deadline.ts";
import { AppError, dependencyUnavailable } from "../errors.ts";
import { storable } from "../text.ts";
import type { Logger } from "../log.ts";
import { isForeignKeyViolation, isUnavailable, takeBackTurns, withDeadline, type Sql } from "./db.ts";
import { createSourceSets, type Source, type SourceSet, sourceSetOf } from "./source-sets.ts";

export type { Source };

export interface Turn {
  request_id: string;
  session_id: string;
  question: string;
  answer: string;
  sources: Source[];
  model: string;
  prompt_tokens: number;
  completion_tokens: number;
  latency_ms: number;
  cached: boolean;
  /** The answer was cut before the model ended it (ChatResult.truncated; migration 006). */
  truncated: boolean;
}

/**
 * A turn as its statement takes it: every text `storable` (text.ts), and its sources by hash. One literal builds every
 * row, so all rows share one hidden class: a rest-and-spread copy (`{ ...turn, owner, ord }`) makes V8 create a new
 * one per row, which cost the writer about a third more CPU per turn.
 */
type TurnRow = Omit<Turn, "sources"> & {
  owner: string;
  sources_hash: string;
  /** Its place in the batch: the first turn of a new session creates it. */
  ord: number;
};

const turnRow = (owner: string, t: Turn, sources: SourceSet): TurnRow => ({
  request_id: storable(t.request_id),
  session_id: storable(t.session_id),
  owner: storable(owner),
  question: storable(t.question),
  answer: storable(t.answer),
  sources_hash: sources.hash,
  model: storable(t.model),
  prompt_tokens: t.prompt_tokens,
  completion_tokens: t.completion_tokens,
  latency_ms: t.latency_ms,
  cached: t.cached,
  truncated: t.truncated,
  ord: 0,
});

interface Pending {
  row: TurnRow;
  sources: SourceSet;
  attempt: number;
  /** Set once the turn's deadline passed or it was settled: it is skipped if still queued. */
  done: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

/** A question naming a session of another key (session-owners.ts refuses most of them before they are answered). */
export const sessionForbidden = () => new AppError("session_forbidden", "session_id belongs to another API key");

/**
 * The start of every statement that inserts turns: a session page's horizon (store.ts sessionTurns) waits only for
 * the app's statements that begin with it, as pg_stat_activity shows their text from Bind (postgres.c
 * exec_bind_message reports it before it starts the transaction). Any statement of the role had held pages back: a
 * 2 s feedback summary kept a just-answered turn off its session page for 0.5-4.3 s (probe BU).
 */
export const TURN_WRITE = "/* turn write */";

/** Turns per statement: bounds the statement size under a burst. */
const MAX_BATCH = 200;
/**
 * Statements in flight at once. One while each ends quickly: every turn arriving meanwhile joins the next statement. A
 * second one in flight halves the batches, and each statement's round trip costs more client CPU than the rows it
 * carries. Once the newest has run a tenth of the turns' deadline (SLOW_SHARE), the turns queued behind it leave in a
 * statement of their own, up to this many at once: a turn waiting for a slow statement had its deadline cover two,
 * and once Postgres took half the deadline to answer, 40 % of questions were a 503 though every statement was in time
 * (probe BL, a 500 ms round trip; 95 % at 800 ms).
 */
const MAX_IN_FLIGHT = 4;
const SLOW_SHARE = 0.1;
/**
 * Event-loop passes a statement keeps its slot after it ends: the requests it answered are sent their responses, and
 * requests already readable are read, so their turns leave with those queued meanwhile, not in a statement of their
 * own just after. A statement's write and its reply each wake another process, which costs this VM about 100 us of
 * CPU (cpu-prof of `BENCH_ONLY=hit npm run bench:app`: postgres.js' socket write was 6.6 % of the samples). Turns per
 * statement at 10 connections (BENCH_DOCS=short): 4.6 without the wait, 6.1 with it. A turn arriving while none is
 * running still leaves at the next pass.
 */
const PASSES_AFTER_STATEMENT = 2;

/**
 * Group commit: a turn is written by the first statement that can take it, together with every other turn that
 * arrived while the previous statement was running, and its promise resolves only once that statement committed.
 * At low load a turn is written alone and at once; under load one commit serves many requests.
 */
export function createTurnWriter(sql: Sql, timeoutMs: number, log?: Logger) {
  let queue: Pending[] = [];
  let inFlight = 0;
  /** When each statement in flight started, oldest first. */
  const running: number[] = [];
  let recheck: NodeJS.Timeout | undefined;
  const slowMs = timeoutMs * SLOW_SHARE;
  const sourceSets = createSourceSets();

  /**
   * Inserts the batch's source lists not yet known to be stored, those of turns the statement inserts (`inserted`, a
   * condition on `s.hash`); a data-modifying CTE runs even unreferenced. A list already stored is locked, not rewritten
   * (`WHERE false` updates nothing, but ON CONFLICT DO UPDATE locks the row: PostgreSQL's INSERT reference,
   * `condition`): turn retention, deleting a list no turn refers to, waits for this statement's turns and then sees
   * them. Rows are taken in hash order, as retention takes them: two replicas' batches holding the same lists in other
   * orders deadlocked, and every turn of both was a 503. The list of a turn refused as another key's session was
   * stored with no turn to refer to it, which retention never deletes (probe BJ: a row of up to CONTEXT_TOKEN_BUDGET
   * of text per refused question).
   */
  const newSourceSets = (batch: Pending[], inserted: ReturnType<typeof sql>) => sql`
    new_sets AS (
      INSERT INTO source_sets (hash, sources, bytes)
      SELECT hash, sources, octet_length(sources::text)
      FROM jsonb_to_recordset(${sourceSets.unsent(batch.map((p) => p.sources))}::text::jsonb)
        AS s(hash text, sources jsonb)
      WHERE ${inserted}
      ORDER BY hash
      ON CONFLICT (hash) DO UPDATE SET sources = EXCLUDED.sources WHERE false
    )`;

  /** Turns answered 503 or 504 whose statement committed after all: deleted again, so the client's retry stores one. */
  const takeBack = (requestIds: string[]) => takeBackTurns(sql, requestIds, timeoutMs, log);
  /** A statement that commits after its own deadline answered its turns 503. */
  const takeBackLate = (rows: { request_id: string }[]) => takeBack(rows.map((r) => r.request_id));

  /**
   * One statement for many turns: each turn's session is created for its owner on first use (the first turn in the
   * batch wins a new session), and a turn whose session belongs to another key is not inserted. A turn's created_at,
   * its place in its session, is `statement_timestamp()`: when Postgres received the Execute message, after the Bind
   * (or Parse) before it had shown the transaction in pg_stat_activity, which a session page reads for its horizon
   * (store.ts sessionTurns). now(), the default, is fixed before that (review N19: a page read between the two listed
   * a later turn, and a client following with `after` skipped this one).
   */
  const insertBatch = async (batch: Pending[]): Promise<Set<string>> => {
    const rows = batch.map(({ row }, ord) => {
      row.ord = ord;
      return row;
    });
    // Each named session's owner is looked up by its own subquery, one probe of sessions_pkey per id: a join or
    // `= ANY(...)` is planned by the table's size, and the plan a connection caches for this statement (postgres.js
    // prepares it; PostgreSQL keeps a generic plan after five runs) was a sequential scan of every session when it was
    // cached while the table was small, as on a new stack. Until the next ANALYZE, each batch then read the whole
    // table: 50 concurrent writers fell from 11,000 to 1,900 turns/s within 12 s. A session this statement created
    // comes first: one deleted (turn retention) after the statement's snapshot is created anew for the batch's first
    // turn's key, while the snapshot still names its old owner, and both keys' turns went into it, each key reading
    // the other's. (jsonb, not text[]: see fetch_types in db.ts.) Rows go in by session id, so their foreign key checks
    // lock the sessions in id order, as turn retention does (migration 012): in the batch's order, a batch naming B then
    // A deadlocked with a sweep holding A and waiting for B, and every turn of the batch was a 503 (probe BG).
    const sessionIds = [...new Set(rows.map((r) => r.session_id))];
    const inserted = await withDeadline(
      sql,
      sql<{ request_id: string }[]>`${sql.unsafe(TURN_WRITE)}
        WITH input AS (
          SELECT * FROM jsonb_to_recordset(${sql.json(rows as never)}) AS t(
            request_id text, session_id text, owner text, question text, answer text, sources_hash text, model text,
            prompt_tokens integer, completion_tokens integer, latency_ms integer, cached boolean, truncated boolean,
            ord integer)
        ), new_sessions AS (
          INSERT INTO sessions (id, owner)
          SELECT DISTINCT ON (session_id) session_id, owner FROM input ORDER BY session_id, ord
          ON CONFLICT (id) DO NOTHING RETURNING id, owner
        ), owners AS (
          SELECT k.id, COALESCE((SELECT owner FROM new_sessions n WHERE n.id = k.id),
                                (SELECT owner FROM sessions s WHERE s.id = k.id)) AS owner
          FROM jsonb_array_elements_text(${sql.json(sessionIds)}) AS k(id)
        ), owned AS (
          SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM owners o WHERE o.id = i.session_id AND o.owner = i.owner)
        ), ${newSourceSets(batch, sql`s.hash IN (SELECT sources_hash FROM owned)`)}
        INSERT INTO turns (request_id, session_id, question, answer, sources_hash, model,
                           prompt_tokens, completion_tokens, latency_ms, cached, truncated, json_bytes, created_at)
        SELECT request_id, session_id, question, answer, sources_hash, model,
               prompt_tokens, completion_tokens, latency_ms, cached, truncated, turn_json_bytes(question, answer),
               statement_timestamp()
        FROM owned ORDER BY session_id, ord
        RETURNING request_id`,
      timeoutMs,
      takeBackLate,
    );
    return new Set(inserted.map((r) => r.request_id));
  };

  /** The same rules for a single turn: a cheaper statement, for the common case of a turn arriving alone. */
  const insertOne = async (p: Pending): Promise<Set<string>> => {
    const t = p.row;
    const inserted = await withDeadline(
      sql,
      sql<{ request_id: string }[]>`${sql.unsafe(TURN_WRITE)}
        WITH new_session AS (
          INSERT INTO sessions (id, owner) VALUES (${t.session_id}, ${t.owner})
          ON CONFLICT (id) DO NOTHING RETURNING owner
        ), session_owner AS (
          SELECT owner FROM new_session UNION ALL SELECT owner FROM sessions WHERE id = ${t.session_id} LIMIT 1
        ), ${newSourceSets([p], sql`EXISTS (SELECT 1 FROM session_owner WHERE owner = ${t.owner})`)}
        INSERT INTO turns (request_id, session_id, question, answer, sources_hash, model,
                           prompt_tokens, completion_tokens, latency_ms, cached, truncated, json_bytes, created_at)
        SELECT ${t.request_id}, ${t.session_id}, question, answer, ${t.sources_hash}, ${t.model},
               ${t.prompt_tokens}, ${t.completion_tokens}, ${t.latency_ms}, ${t.cached}, ${t.truncated},
               turn_json_bytes(question, answer), statement_timestamp()
        FROM session_owner, (VALUES (${t.question}::text, ${t.answer}::text)) AS given(question, answer)
        WHERE owner = ${t.owner}
        RETURNING request_id`,
      timeoutMs,
      takeBackLate,
    );
    return new Set(inserted.map((r) => r.request_id));
  };

  /** Queues the turn for the next statement once; a second time it is refused with `otherwise`. */
  const retryOnce = (p: Pending, otherwise: AppError) => {
    if (p.attempt > 0) return p.reject(otherwise);
    p.attempt = 1;
    queue.push(p);
  };

  const settle = (batch: Pending[], inserted: Set<string>) => {
    for (const p of batch) {
      if (inserted.has(p.row.request_id)) p.resolve();
      // A session created concurrently by another statement is invisible to this statement's snapshot: retry once.
      else retryOnce(p, sessionForbidden());
    }
  };

  async function write(batch: Pending[]): Promise<void> {
    try {
      const inserted = await (batch.length === 1 ? insertOne(batch[0]!) : insertBatch(batch));
      // Already settled here means answered 503 or 504 by a deadline that passed while the statement ran: taken back.
      const late = batch.filter((p) => p.done && inserted.has(p.row.request_id));
      if (late.length > 0) takeBack(late.map((p) => p.row.request_id));
      // Only sets a committed turn refers to: turn retention may delete one that no turn refers to (source-sets.ts).
      sourceSets.committed(batch.filter((p) => !p.done && inserted.has(p.row.request_id)).map((p) => p.sources));
      settle(batch, inserted);
    } catch (err) {
      // The turn's session was deleted while the statement ran (turn-retention.ts): written again, the statement
      // creates the session anew for this key.
      if (batch.length === 1 && isForeignKeyViolation(err)) {
        retryOnce(batch[0]!, new AppError("session_deleted", "the session was being deleted: ask again"));
        return;
      }
      if (batch.length === 1 || isUnavailable(err) || err instanceof AppError) {
        for (const p of batch) p.reject(err);
        return;
      }
      // A statement error caused by one turn must not fail the others: write them one by one, except those whose
      // deadline passed meanwhile (answered 503 or 504: stored now, a retry would store them twice).
      for (const p of batch) if (!p.done) await write([p]);
    }
  }

  /**
   * Flushes once the current event-loop turn is over: the requests Node read in one go record their turns in the
   * same turn, so they leave in one statement instead of the first alone and the rest after it.
   */
  let flushScheduled = false;
  function scheduleFlush(): void {
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      flush();
    });
  }

  const afterPasses = (passes: number, then: () => void): void => {
    if (passes === 0) then();
    else setImmediate(() => afterPasses(passes - 1, then));
  };

  /**
   * Starts a statement for the turns waiting when none is in flight, or when the youngest in flight has run `slowMs`
   * (a timer calls this again then); each finished statement starts the next.
   */
  function flush(): void {
    for (;;) {
      queue = queue.filter((p) => !p.done);
      if (queue.length === 0) return;
      if (inFlight > 0) {
        // Ended and holding its slot for a few passes (PASSES_AFTER_STATEMENT), or as many in flight as may be.
        if (running.length === 0 || inFlight >= MAX_IN_FLIGHT) return;
        const wait = running[running.length - 1]! + slowMs - performance.now();
        if (wait > 0) {
          // A timer may fire a little early against performance.now(): then it is set again.
          if (!recheck) {
            recheck = setTimeout(() => {
              recheck = undefined;
              flush();
            }, Math.ceil(wait));
          }
          return;
        }
      }
      const batch = queue.slice(0, MAX_BATCH);
      queue = queue.slice(MAX_BATCH);
      inFlight++;
      const startedAt = performance.now();
      running.push(startedAt);
      void write(batch).finally(() => {
        running.splice(running.indexOf(startedAt), 1);
        afterPasses(PASSES_AFTER_STATEMENT, () => {
          inFlight--;
          flush();
        });
      });
    }
  }

  return {
    /**
     * Resolves once the turn is committed; a session of another key is a 403, an outage a 503, and a turn not
     * committed by its request's `deadline` what that deadline says (its 504).
     */
    record(owner: string, turn: Turn, deadline?: Deadline): Promise<void> {
      // Before the promise and its deadline: sources that cannot be stored reject the call, and arm no timer.
      let sourceSet: SourceSet;
      try {
        sourceSet = sourceSetOf(turn.sources);
      } catch (err) {
        return Promise.reject(err);
      }
      // Answered 504 already: not even queued.
      if (deadline && deadline.at <= performance.now()) return Promise.reject(deadline.passed());
      return new Promise<void>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const settle = (fn: () => void) => {
          clearTimeout(timer);
          if (!pending.done) fn();
          pending.done = true;
        };
        const pending: Pending = {
          row: turnRow(owner, turn, sourceSet),
          sources: sourceSet,
          attempt: 0,
          done: false,
          resolve: () => settle(resolve),
          reject: (err) => settle(() => reject(err)),
        };
        // Each turn has its own deadline from the moment it is queued: a statement stuck on a dead connection must
        // not hold up the turns behind it. Its request's 504 comes first when it is sooner. One still queued at its
        // deadline is dropped, and one whose statement commits after it is deleted again (`write`), so a turn answered
        // 503 or 504 is not stored (probe BH: a turn queued behind a statement waiting on a lock was written after
        // its 504, and the client's retry put the question in the session twice).
        const untilDeadline = deadline ? deadline.at - performance.now() : Number.POSITIVE_INFINITY;
        timer =
          untilDeadline < timeoutMs
            ? setTimeout(() => pending.reject(deadline!.passed()), untilDeadline)
            : setTimeout(() => pending.reject(dependencyUnavailable("postgres", `no answer within ${timeoutMs} ms`)), timeoutMs);
        queue.push(pending);
        scheduleFlush();
      });
    },
  };
}

export type TurnWriter = ReturnType<typeof createTurnWriter>;
