import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import postgres from "postgres";
import { dependencyUnavailable } from "../errors.ts";

export type Sql = postgres.Sql;

export function createDb(url: string, opts: { max: number; connectTimeoutMs: number }): Sql {
  return postgres(url, {
    max: opts.max,
    connect_timeout: Math.max(1, Math.ceil(opts.connectTimeoutMs / 1000)),
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "agent-api" },
  });
}

/** Arbitrary constant shared by every replica: only one of them applies migrations at a time. */
const MIGRATION_LOCK_ID = 724_310_001;

/** Applies app/migrations/*.sql in name order, once each, inside one transaction under an advisory lock. */
export async function migrate(sql: Sql, dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set((await tx<{ name: string }[]>`SELECT name FROM schema_migrations`).map((r) => r.name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await tx.unsafe(await readFile(path.join(dir, file), "utf8"));
      await tx`INSERT INTO schema_migrations (name) VALUES (${file})`;
      applied.push(file);
    }
    return applied;
  });
}

const CONNECTION_ERROR_CODES = /^(ECONN|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EPIPE|CONNECT_TIMEOUT|CONNECTION_|08|57P0)/;

/** True when the error says Postgres could not be reached, as opposed to a bad statement. */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONNECTION_ERROR_CODES.test(code);
}

/** Runs a database call; a connection failure becomes a 503 with a reason. */
export async function withDb<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isConnectionError(err)) {
      throw dependencyUnavailable("postgres", (err as { code: string }).code);
    }
    throw err;
  }
}
