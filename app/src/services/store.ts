import { AppError } from "../errors.ts";
import { withDb, type Sql } from "./db.ts";

export interface Source {
  id: string;
  score: number;
  title: string | null;
  text: string;
}

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
}

export interface StoredTurn extends Turn {
  created_at: Date;
}

export interface DocumentRecord {
  id: string;
  title: string | null;
  metadata: Record<string, unknown>;
  chunk_count: number;
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

/** All SQL the app runs, in one place. Every call maps a lost connection to a 503. */
export function createStore(sql: Sql) {
  const insertTurn = (owner: string, t: Turn) => sql<{ id: string }[]>`
    WITH new_session AS (
      INSERT INTO sessions (id, owner) VALUES (${t.session_id}, ${owner})
      ON CONFLICT (id) DO NOTHING RETURNING owner
    ), session_owner AS (
      SELECT owner FROM new_session UNION ALL SELECT owner FROM sessions WHERE id = ${t.session_id} LIMIT 1
    )
    INSERT INTO turns (request_id, session_id, question, answer, sources, model,
                       prompt_tokens, completion_tokens, latency_ms, cached)
    SELECT ${t.request_id}, ${t.session_id}, ${t.question}, ${t.answer}, ${sql.json(t.sources as never)}, ${t.model},
           ${t.prompt_tokens}, ${t.completion_tokens}, ${t.latency_ms}, ${t.cached}
    FROM session_owner WHERE owner = ${owner}
    RETURNING id`;

  return {
    ping: () => withDb(() => sql`SELECT 1`),

    /** Stores a turn, creating its session for `owner` on first use; another key's session is refused. */
    recordTurn: (owner: string, turn: Turn) =>
      withDb(async () => {
        // A session created concurrently by this same key is invisible to the first statement's snapshot: retry once.
        for (let attempt = 0; attempt < 2; attempt++) {
          if ((await insertTurn(owner, turn)).length === 1) return;
        }
        throw new AppError(403, "session_id belongs to another API key", "session_forbidden");
      }),

    /** A session's turns oldest first, or null when it does not exist for this owner. */
    sessionTurns: (sessionId: string, owner: string) =>
      withDb(async () => {
        const [session] = await sql<{ owner: string }[]>`SELECT owner FROM sessions WHERE id = ${sessionId}`;
        if (!session || session.owner !== owner) return null;
        return sql<StoredTurn[]>`
          SELECT request_id, session_id, question, answer, sources, model, prompt_tokens,
                 completion_tokens, latency_ms, cached, created_at
          FROM turns WHERE session_id = ${sessionId} ORDER BY created_at, id`;
      }),

    upsertDocument: (doc: DocumentRecord, createdBy: string) =>
      withDb(
        () => sql`
          INSERT INTO documents (id, title, metadata, chunk_count, created_by)
          VALUES (${doc.id}, ${doc.title}, ${sql.json(doc.metadata as never)}, ${doc.chunk_count}, ${createdBy})
          ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, metadata = EXCLUDED.metadata,
            chunk_count = EXCLUDED.chunk_count, updated_at = now()`,
      ),

    documentExists: (id: string) =>
      withDb(async () => (await sql`SELECT 1 FROM documents WHERE id = ${id}`).length === 1),

    deleteDocument: (id: string) =>
      withDb(async () => (await sql`DELETE FROM documents WHERE id = ${id}`).count === 1),

    /** Records feedback on a turn of one of the caller's sessions; false when there is no such turn. */
    insertFeedback: (fb: FeedbackInput, owner: string) =>
      withDb(async () => {
        const rows = await sql`
          INSERT INTO feedback (request_id, quality_score, is_correct, comment, created_by)
          SELECT t.request_id, ${fb.quality_score}, ${fb.is_correct ?? null}, ${fb.comment ?? null}, ${owner}
          FROM turns t JOIN sessions s ON s.id = t.session_id
          WHERE t.request_id = ${fb.request_id} AND s.owner = ${owner}
          RETURNING id`;
        return rows.length === 1;
      }),

    feedbackSummary: () =>
      withDb(async () => {
        const rows = await sql<{ model: string; count: string; avg_score: string; correct: string; incorrect: string }[]>`
          SELECT t.model, count(*) AS count, avg(f.quality_score) AS avg_score,
                 count(*) FILTER (WHERE f.is_correct) AS correct,
                 count(*) FILTER (WHERE NOT f.is_correct) AS incorrect
          FROM feedback f JOIN turns t ON t.request_id = f.request_id
          GROUP BY t.model ORDER BY t.model`;
        return rows.map(
          (r): ModelFeedback => ({
            model: r.model,
            count: Number(r.count),
            avg_score: Math.round(Number(r.avg_score) * 100) / 100,
            correct: Number(r.correct),
            incorrect: Number(r.incorrect),
          }),
        );
      }),

    /** Scopes of a stored, unrevoked key looked up by its SHA-256 hash. */
    findApiKey: (keyHash: string) =>
      withDb(async () => {
        const [row] = await sql<{ id: string; scopes: string[] }[]>`
          SELECT id, scopes FROM api_keys WHERE key_hash = ${keyHash} AND revoked_at IS NULL`;
        return row ?? null;
      }),
  };
}

export type Store = ReturnType<typeof createStore>;
