import type { Config } from "./config.ts";
import { createDb } from "./services/db.ts";
import { createStore } from "./services/store.ts";

/**
 * `node dist/main.js bump-corpus-version`, run in an API pod after Qdrant is restored (docs/restore-runbook.md): the
 * answers every replica cached before the restore cite chunks as they were, and are keyed by the corpus version, which
 * a Qdrant restore does not move. Through the app's own connection settings: the runbook's inline script connected
 * without DATABASE_CA_FILE, so TLS to RDS failed, and bumped by one, which replicas ignore after a Postgres restore.
 */
export async function bumpCorpusVersion(config: Config): Promise<number> {
  const sql = createDb(config.DATABASE_URL, {
    max: 1,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    ca: config.DATABASE_CA_FILE?.contents,
  });
  try {
    return await createStore(sql, config.DB_QUERY_TIMEOUT_MS).bumpCorpusVersion();
  } finally {
    await sql.end({ timeout: 5 });
  }
}
