import type { Deadline } from "../deadline.ts";
import { dependencyUnavailable } from "../errors.ts";
import { coalesce } from "../coalesce.ts";
import { storableJson } from "../text.ts";
import type { Logger } from "../log.ts";
import { isPartialWrite, reachable, withDeadline, type Sql } from "./db.ts";
import { createTurnWriter, TURN_WRITE, type Turn } from "./turns.ts";

export type { Source, Turn } from "./turns.ts";

export interface StoredTurn extends Turn {
  created_at: Date;
}

export interface SessionPage {
  turns: StoredTurn[];
  /** More turns follow the last one of this page. */
  hasMore: boolean;
}

export interface DocumentRecord {
  id: string;
  title: string | null;
  metadata: Record<string, unknown>;
  chunk_count: number;
}

/** A write's hold on the documents it writes (migration 005): its id and how long the hold lasts. */
export interface Lease {
  writer: string;
  ms: number;
}

/**
 * A lease taken, and its write's generation: the corpus version the lease statement bumped, higher at every bump (past
 * a restored database's too). Writes of one document hold its lease one after another, so a later write has a higher
 * generation, and a write's Qdrant calls that land late remove only chunks of older ones (qdrant.ts `publish`,
 * `deleteChunks`).
 */
export interface Leased {
  generation: number;
}

/** Documents another write holds, and the seconds until its lease ends at the latest. */
export interface Busy {
  ids: string[];
  leftSeconds: number;
}

export interface FeedbackInput {
  request_id: string;
  quality_score: number;
  is_correct?: boolean | undefined;
  comment?: string | undefined;
}

export interface ModelFeedback {
  model: string;
  count: number;
  avg_score: number;
  correct: number;
  incorrect: number;
}

/** Where a corpus version bump is announced to every replica (NOTIFY; corpus.ts listens). */
export const CORPUS_CHANNEL = "corpus_version";

/** Reports and other whole-table reads get this many times the per-statement deadline (and Postgres' statement_timeout). */
export const SLOW_READ_FACTOR = 10;

/** The longest any statement of the store may run: Postgres' statement_timeout for the app's connections (start.ts). */
export const statementTimeoutMs = (queryTimeoutMs: number) => queryTimeoutMs * SLOW_READ_FACTOR;

/**
 * All SQL the app runs, in one place. Every statement has a deadline (`timeoutMs`); a lost connection or a missed
 * deadline is a 503. Text headed for Postgres goes through `storableJson` (see text.ts).
 */
export function createStore(sql: Sql, timeoutMs: number, log?: Logger) {
  const run = <T>(query: Promise<T> & { cancel(): void }, ms = timeoutMs, onLate?: (rows: T) => void) =>
    withDeadline(sql, query, ms, onLate);
  const turns = createTurnWriter(sql, timeoutMs, log);
  const until = (lease: Lease) => sql`now() + ${lease.ms} * interval '1 millisecond'`;
  /** The documents of `ids` another write holds (migration 005), as a FROM clause. */
  const heldAmong = (ids: string[]) =>
    sql`documents WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(${sql.json(ids)}))) AND writing_until > now()`;
  // Whole seconds, at least 1, until a lease ends.
  const secondsLeft = (writingUntil: ReturnType<typeof sql>) =>
    sql`greatest(1, ceil(extract(epoch FROM ${writingUntil} - now())))::int`;
  /**
   * True when the CTE `name` returned rows, read to its end: so every document row it locks is locked before the
   * bump locks the version's row, the order every statement here takes them in. `EXISTS` stops at the first row: a
   * statement then held one document and the version while another held the next document and waited for the version,
   * a deadlock until lock_timeout ended one of them with a 503 (probe N).
   */
  const allLocked = (name: string): ReturnType<typeof sql> => sql`(SELECT count(*) FROM ${sql(name)}) > 0`;
  /**
   * The end of a statement that bumps the corpus version when `when` holds and tells the other replicas (NOTIFY
   * corpus_version): a row with the new version, or none. The new version is past the clock's milliseconds as well as
   * the last one: replicas take only a higher version than the one they hold (corpus.ts), so after the row went back
   * (a database restored from a snapshot) a bump by one was ignored everywhere, and answers cached before an
   * acknowledged ingest were served until their TTL.
   */
  const bumped = (when: ReturnType<typeof sql>, above = 0) => sql`
    bumped AS (
      UPDATE corpus_version
      SET version = greatest(version + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, ${above}::bigint + 1)
      WHERE ${when} RETURNING version
    )`;
  const notifyBumped = sql`pg_notify(${CORPUS_CHANNEL}, version::text)`;
  const bumpVersion = (when: ReturnType<typeof sql> = sql`true`, above = 0) =>
    sql`${bumped(when, above)} SELECT version::text, ${notifyBumped} FROM bumped`;
  /** For a statement whose own result is something else: the other replicas, and this one, hear its bump by NOTIFY. */
  const notifyIfBumped = sql`(SELECT ${notifyBumped} FROM bumped)`;
  /** The end of a statement that may bump: the version it bumped to, else the current one; notifies if it bumped. */
  const versionAfterBump = sql`
    SELECT COALESCE((SELECT version FROM bumped), (SELECT version FROM corpus_version))::text AS version, ${notifyIfBumped}`;
  /** A lease statement's column giving its write's generation (Leased): the corpus version its lease bumped. */
  const generation = sql`(SELECT version FROM bumped)::float8 AS generation`;
  /**
   * The CTE `released`: ends `writer`'s lease on these documents, their rows locked in id order as every writer locks
   * them. An UPDATE by `= ANY` locks them in the order its scan meets them (storage order), and a retry of a release
   * after its lease had expired deadlocked with a re-ingest taking the same documents over (review N8: 40P01).
   */
  const released = (ids: string[], writer: string) => sql`
    releasing AS (
      SELECT id FROM documents
      WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(${sql.json(ids)}))) AND writer = ${writer}::uuid
      ORDER BY id FOR UPDATE
    ), released AS (
      UPDATE documents SET writer = NULL, writing_until = NULL WHERE id IN (SELECT id FROM releasing) RETURNING id
    )`;
  const release = async (ids: string[], writer: string) => {
    if (ids.length === 0) return;
    await run(sql`WITH ${released(ids, writer)} SELECT count(*) FROM released`);
  };

  /**
   * The documents of `ids` another write holds, if any: a check before an ingest embeds (upsertDocuments' lease is
   * the authority). Each retry of an ingest whose documents were held embedded the whole body again only to be told
   * 409: a 177-chunk document retried by Retry-After cost 66 embed calls against 6 (probe CL).
   */
  const busyDocuments = async (ids: string[]): Promise<Busy | undefined> => {
    const [row] = await run(
      sql<{ busy: string[] | null; busy_seconds: number | null }[]>`
        SELECT jsonb_agg(id ORDER BY id) AS busy, ${secondsLeft(sql`max(writing_until)`)} AS busy_seconds
        FROM ${heldAmong(ids)}`,
    );
    return row?.busy ? { ids: row.busy, leftSeconds: row.busy_seconds! } : undefined;
  };

  // A node that refuses writes (a standby, a switchover's old primary) still answers reads: readiness asks for writes.
  // It reports it and leaves the pool be: dropped at each probe (public, no key), the pool cut the reads such a node
  // serves; a write's 25006 drops it (db.ts withDeadline).
  const ping = async () => {
    const [row] = await run(sql<{ read_only: string }[]>`SELECT current_setting('transaction_read_only') AS read_only`);
    if (row?.read_only === "on") throw dependencyUnavailable("postgres", "25006");
  };

  /**
   * Feedback by model, and over all of it. The overall average is taken from the unrounded sums: rebuilt from the
   * models' rounded averages it was 0.01 off the rows (1.34 for 8 points in 6, probe A). One at a time in this replica
   * (coalesce): a full scan of the feedback, 0.5 s at a million ratings, each holding a connection of the pool for up
   * to 10x a statement's deadline, and ten admin pollers took the whole pool: other keys' questions were 503s (probe CO).
   */
  const feedbackSummary = coalesce(async () => {
    // The report may take 10x a statement's deadline, but an unreachable Postgres is told apart at 1x like every
    // other request: during a partition the report waited its whole 10 s for its 503.
    await ping();
    const rows = await run(
      sql<{ model: string; count: string; score_sum: string; correct: string; incorrect: string }[]>`
        SELECT model, count(*) AS count, sum(quality_score) AS score_sum,
               count(*) FILTER (WHERE is_correct) AS correct,
               count(*) FILTER (WHERE NOT is_correct) AS incorrect
        FROM (
          SELECT model, quality_score, is_correct FROM feedback WHERE model IS NOT NULL
          UNION ALL -- stored before migration 010: its turn's model
          SELECT t.model, f.quality_score, f.is_correct
          FROM feedback f JOIN turns t ON t.request_id = f.request_id WHERE f.model IS NULL
        ) rated
        GROUP BY model ORDER BY model`,
      statementTimeoutMs(timeoutMs),
    );
    const round = (score: number) => Math.round(score * 100) / 100;
    const total = rows.reduce((n, r) => n + Number(r.count), 0);
    const scoreSum = rows.reduce((n, r) => n + Number(r.score_sum), 0);
    const byModel = rows.map(
      (r): ModelFeedback => ({
        model: r.model,
        count: Number(r.count),
        avg_score: round(Number(r.score_sum) / Number(r.count)),
        correct: Number(r.correct),
        incorrect: Number(r.incorrect),
      }),
    );
    return { total, average_score: total ? round(scoreSum / total) : null, by_model: byModel };
  });

  return {
    ping,

    /**
     * Before a question's embedding and model call: while the pool's last statement failed for want of Postgres, a
     * statement of its own first. A question that cannot store its turn is then a 503 at DB_QUERY_TIMEOUT_MS, not after
     * its whole answer (probe CM: 4.5 s over fakes; the model's 10-30 s in use), with no answer slot taken.
     */
    confirmReachable: async (): Promise<void> => {
      if (!reachable(sql)) await ping();
    },

    /** Stores a turn (group commit), creating its session for `owner` on first use; another key's session is refused. */
    recordTurn: (owner: string, turn: Turn, deadline?: Deadline) => turns.record(owner, turn, deadline),

    /** The key id that owns a session, or undefined when there is no such session. */
    sessionOwner: async (sessionId: string): Promise<string | undefined> => {
      const [session] = await run(sql<{ owner: string }[]>`SELECT owner FROM sessions WHERE id = ${sessionId}`);
      return session?.owner;
    },

    /**
     * One page of a session's turns, oldest first: `limit` turns after the turn whose request_id is `after` (keyset
     * on the (session_id, created_at, id) index), ending early with the turn that reaches `maxBytes` of JSON (at least
     * one turn). "no_session" when the session does not exist for this owner, "no_after" when `after` is not one of
     * its turns.
     */
    sessionTurns: async (
      sessionId: string,
      owner: string,
      page: { limit: number; after?: string | undefined; maxBytes: number },
    ): Promise<SessionPage | "no_session" | "no_after"> => {
      // The cursor turn is read here, once. Its created_at travels as text both ways: as a JS Date (postgres.js' type
      // for a timestamptz result, and its serializer for a timestamptz parameter) it would lose its microseconds.
      // And the horizon: a turn's created_at is when its statement started (turns.ts), so one still uncommitted may
      // sort before turns already committed, and a client following the session with `after` past those never saw it
      // (probe BQ: 18 of 676 turns with one replica under load; two replicas alike). Every such statement is one of
      // the app's role's statements running now that begin with TURN_WRITE, shown in pg_stat_activity before its
      // created_at is taken, with its xact_start, or its query_start while StartTransaction has yet to publish that
      // (review N19); this statement's start bounds those begun since. The role's other statements (a report, an
      // operator's session) write no turn and hold no page back. The page lists only turns before the horizon, read in
      // a later snapshot.
      const [session] = await run(
        sql<{ owner: string; after_at: string | null; after_id: string | null; horizon: string }[]>`
          SELECT s.owner, c.created_at::text AS after_at, c.id AS after_id,
                 least(statement_timestamp(), (
                   SELECT min(least(a.xact_start, a.query_start)) FROM pg_stat_activity a
                   WHERE a.datname = current_database() AND a.usename = current_user AND a.pid <> pg_backend_pid()
                     AND a.state <> 'idle' AND starts_with(a.query, ${TURN_WRITE})))::text AS horizon
          FROM sessions s LEFT JOIN turns c ON c.request_id = ${page.after ?? null} AND c.session_id = s.id
          WHERE s.id = ${sessionId}`,
      );
      if (!session || session.owner !== owner) return "no_session";
      if (page.after !== undefined && session.after_id === null) return "no_after";
      const after =
        page.after === undefined
          ? sql``
          : sql`AND (t.created_at, t.id) > (${session.after_at}::text::timestamptz, ${session.after_id}::bigint)`;
      // A turn's size: its question's and answer's bytes as JSON strings (a control character is six, `\u0001`: counted
      // as one by octet_length, a page of them passed the budget sixfold, 12.6 MB, and 20 clients reading such pages
      // slowly got a 512Mi pod OOM-killed, probe BF), stored with the turn (migration 017), and its source list's JSON
      // bytes, stored with the list (migration 008). Measured on the page's limit + 1 rows in Postgres: turns past the
      // budget are neither sent nor parsed here, and `page_rows` says whether the budget left any out.
      const rows = await run(
        sql<Array<StoredTurn & { page_rows: number; settled: boolean }>>`
          WITH page AS (
            SELECT t.request_id, t.session_id, t.question, t.answer, COALESCE(s.sources, t.sources) AS sources, t.model,
                   t.prompt_tokens, t.completion_tokens, t.latency_ms, t.cached, t.truncated, t.created_at, t.id,
                   t.created_at < ${session.horizon}::text::timestamptz AS settled,
                   COALESCE(t.json_bytes, turn_json_bytes(t.question, t.answer))
                     + COALESCE(s.bytes, octet_length(COALESCE(s.sources, t.sources)::text), 0) AS bytes
            FROM turns t LEFT JOIN source_sets s ON s.hash = t.sources_hash
            WHERE t.session_id = ${sessionId} ${after}
              -- The owner again, in this statement's snapshot: the session may have been deleted since the check
              -- above (turn retention, its owner's DELETE) and created anew by another key, whose turns it then held.
              AND EXISTS (SELECT 1 FROM sessions o WHERE o.id = ${sessionId} AND o.owner = ${owner})
            ORDER BY t.created_at, t.id LIMIT ${page.limit + 1}
          ), running AS (
            SELECT *, count(*) OVER () AS page_rows,
                   sum(bytes) OVER (ORDER BY created_at, id ROWS UNBOUNDED PRECEDING) - bytes AS bytes_before
            FROM page
          )
          SELECT request_id, session_id, question, answer, sources, model, prompt_tokens, completion_tokens,
                 latency_ms, cached, truncated, created_at, page_rows::int, settled
          FROM running WHERE bytes_before < ${page.maxBytes}
          ORDER BY created_at, id`,
      );
      // Rows come in created_at order: from the first past the horizon on, none is listed yet, and more follow.
      const unsettled = rows.findIndex((r) => !r.settled);
      const listed = unsettled === -1 ? rows : rows.slice(0, unsettled);
      const turns = listed.slice(0, page.limit).map(({ page_rows: _rows, settled: _settled, ...turn }) => turn);
      return {
        turns,
        hasMore: unsettled !== -1 || rows.length > page.limit || rows.length < (rows[0]?.page_rows ?? 0),
      };
    },

    busyDocuments,

    /**
     * Records documents, leased to `lease.writer` for `lease.ms` (migration 005), before their chunks go to Qdrant: every
     * stored chunk has a record to delete it by. When another write holds any of them, none is written. Taking a lease
     * bumps the corpus version (as leaseDocument's does): answers cached before the write starts changing Qdrant are
     * no longer served, even if its writer dies before its own bump at the end (a killed process). Those cached while
     * it runs: corpusVersion.
     */
    upsertDocuments: async (docs: DocumentRecord[], createdBy: string, lease: Lease): Promise<Busy | Leased> => {
      const rows = storableJson(docs.map((d) => ({ ...d, created_by: createdBy })));
      const ids = docs.map((d) => d.id);
      // By `= ANY(ARRAY(...))`: an index scan once the table's statistics know its size. A plan a connection cached
      // while the table was small (a new stack's first ingests) scans it instead, about 8 ms a statement at 100,000
      // documents, until autovacuum's next ANALYZE of it: kept on this cold path (turns.ts probes by id instead).
      const [result] = await run(
        sql<{ busy: string[] | null; busy_seconds: number | null; generation: number }[]>`
          WITH busy AS (
            SELECT id, writing_until FROM ${heldAmong(ids)}
          ), written AS (
            INSERT INTO documents (id, title, metadata, chunk_count, created_by, writer, writing_until)
            SELECT id, title, metadata, chunk_count, created_by, ${lease.writer}::uuid, ${until(lease)}
            FROM jsonb_to_recordset(${sql.json(rows as never)})
              AS t(id text, title text, metadata jsonb, chunk_count integer, created_by text)
            WHERE NOT EXISTS (SELECT 1 FROM busy)
            -- In id order, as every writer locks them: two batches of the same ids in other orders deadlocked (a 503,
            -- or a 500 when the deadlock was detected before the deadline).
            ORDER BY id
            ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, metadata = EXCLUDED.metadata,
              chunk_count = EXCLUDED.chunk_count, updated_at = now(), writer = EXCLUDED.writer,
              writing_until = EXCLUDED.writing_until
            WHERE documents.writing_until IS NULL OR documents.writing_until <= now()
            RETURNING id
          ), ${bumped(allLocked("written"))}
          SELECT (SELECT jsonb_agg(id ORDER BY id) FROM busy) AS busy,
                 ${secondsLeft(sql`(SELECT max(writing_until) FROM busy)`)} AS busy_seconds, ${generation},
                 refuse_partial_write((SELECT count(*) FROM written),
                                      CASE WHEN EXISTS (SELECT 1 FROM busy) THEN 0 ELSE ${ids.length}::int END),
                 ${notifyIfBumped}`,
      ).catch((err: unknown) => {
        if (isPartialWrite(err)) return [undefined];
        throw err;
      });
      if (!result) {
        // Another write leased some of them after this statement's snapshot was taken: the statement was undone whole
        // (migration 018; Postgres logs it as an ERROR with the statement, one per such race). The documents held now
        // are those to wait for; if that write has ended already, a retry at once is right.
        return (await busyDocuments(ids)) ?? { ids, leftSeconds: 1 };
      }
      if (result.busy) return { ids: result.busy, leftSeconds: result.busy_seconds! };
      return { generation: result.generation };
    },

    /**
     * Leases a stored document to `writer` (before its chunks are deleted), bumping the corpus version as
     * upsertDocuments does; "missing" when there is no such document.
     */
    leaseDocument: async (id: string, lease: Lease): Promise<Leased | "missing" | Busy> => {
      const [row] = await run(
        sql<{ leased: boolean; busy_seconds: number | null; generation: number }[]>`
          WITH leased AS (
            UPDATE documents SET writer = ${lease.writer}::uuid, writing_until = ${until(lease)}
            WHERE id = ${id} AND (writing_until IS NULL OR writing_until <= now()) RETURNING id
          ), ${bumped(allLocked("leased"))}
          SELECT EXISTS (SELECT 1 FROM leased) AS leased, ${secondsLeft(sql`writing_until`)} AS busy_seconds,
                 ${generation}, ${notifyIfBumped}
          FROM documents WHERE id = ${id}`,
      );
      if (!row) return "missing";
      return row.leased ? { generation: row.generation } : { ids: [id], leftSeconds: row.busy_seconds! };
    },

    /** Ends `writer`'s lease on these documents, so the next write need not wait for it to expire. */
    releaseDocuments: (ids: string[], writer: string) => release(ids, writer),

    /**
     * Ends `writer`'s lease on these documents and bumps the corpus version in the same statement: the new version, or
     * the current one when it held none of them any more (ended already, and bumped then: by an earlier try that
     * committed after its deadline, or the lease's expiry). Released apart from its bump, a write whose bump was then
     * lost (its process killed, Postgres gone past the lease) left the answers cached while it ran served until their
     * TTL, since only a lease left to expire is ended with a bump (corpusVersion; probe AS).
     */
    releaseDocumentsAndBump: async (ids: string[], writer: string) => {
      const [row] = await run(
        sql<{ version: string }[]>`WITH ${released(ids, writer)}, ${bumped(allLocked("released"))} ${versionAfterBump}`,
      );
      return Number(row!.version);
    },

    /**
     * Deletes a document's record, if `writer` still holds its lease, and bumps the corpus version in the same
     * statement: the new version, or undefined when nothing was deleted.
     */
    deleteDocument: async (id: string, writer: string) => {
      const [row] = await run(sql<{ version: string }[]>`
        WITH deleted AS (DELETE FROM documents WHERE id = ${id} AND writer = ${writer}::uuid RETURNING id),
        ${bumpVersion(allLocked("deleted"))}`);
      return row ? Number(row.version) : undefined;
    },

    /**
     * The corpus version every cached answer is keyed by (migration 002), read after ending the document leases that
     * expired unreleased, with a bump if there were any. Their writer died mid-write (its process killed), or could
     * not reach Postgres until the lease ended, after its chunks may have changed Qdrant and before its own bump
     * (releaseDocumentsAndBump), so answers cached while it wrote were served until their TTL. (A live writer's lease
     * outlasts every call it starts: documents.ts `newLease`.) Every replica's refresh reads it, so one is left to end
     * them; on a partial index of the few leased rows (migration 009).
     */
    corpusVersion: async () => {
      // In id order, as writers lock them, and skipping those a writer holds (it is taking the lease over).
      const [row] = await run(sql<{ version: string }[]>`
        WITH expired AS (
          SELECT id FROM documents WHERE writing_until <= now() ORDER BY id FOR UPDATE SKIP LOCKED
        ), ended AS (
          UPDATE documents SET writer = NULL, writing_until = NULL WHERE id IN (SELECT id FROM expired) RETURNING id
        ), ${bumped(allLocked("ended"))} ${versionAfterBump}`);
      return Number(row!.version);
    },

    /** Sends `payload` to every replica listening on CORPUS_CHANNEL, this one included. */
    notifyCorpusListeners: (payload: string) => run(sql`SELECT pg_notify(${CORPUS_CHANNEL}, ${payload})`),

    /**
     * Bumps the corpus version, past `above` too (a version replicas hold that the row went back from), and tells the
     * other replicas (NOTIFY corpus_version): after a write that may still change Qdrant, and after a restore.
     */
    bumpCorpusVersion: async (above = 0) => {
      const [row] = await run(sql<{ version: string }[]>`WITH ${bumpVersion(sql`true`, above)}`);
      return Number(row!.version);
    },

    /**
     * Records feedback on a turn of one of the caller's sessions, replacing any stored before on it (migration 013);
     * false when there is no such turn. A post answered 503 whose statement commits after all is not taken back: the
     * client's retry replaces it, and taken back it would also have removed the earlier feedback it replaced.
     */
    insertFeedback: async (input: FeedbackInput, owner: string) => {
      const fb = storableJson(input);
      // The turn is locked before the insert, so its foreign key check cannot find it deleted (retention): NULL then.
      const [row] = await run(
        sql<{ id: string | null }[]>`
          SELECT record_feedback(${fb.request_id}::text, ${owner}::text, ${fb.quality_score}::smallint,
                                 ${fb.is_correct ?? null}::boolean, ${fb.comment ?? null}::text) AS id`,
      );
      return (row?.id ?? null) !== null;
    },

    feedbackSummary,

    /** Every stored, unrevoked key: its row id, SHA-256 hash and scopes. */
    liveApiKeys: () =>
      run(sql<{ id: string; key_hash: string; scopes: string[] }[]>`
        SELECT id, key_hash, to_jsonb(scopes) AS scopes FROM api_keys WHERE revoked_at IS NULL`),
  };
}

export type Store = ReturnType<typeof createStore>;
