import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Sql } from "./db.ts";
import type { Store } from "./store.ts";

const CHANNEL = "corpus_version";

/**
 * The corpus version this replica keys cached answers by, kept in memory so a cache lookup costs no Postgres round
 * trip. Postgres holds the truth (store.bumpCorpusVersion); other replicas' bumps arrive by LISTEN, and the value is
 * re-read whenever the listening connection (re)connects, so a notification missed during an outage is not lost.
 */
export async function createCorpusVersion(sql: Sql, store: Store, log: Logger) {
  let version = await store.corpusVersion();
  const advance = (v: number) => {
    if (Number.isFinite(v) && v > version) version = v;
  };
  const refresh = () =>
    store.corpusVersion().then(advance, (err: unknown) => log.warn({ err: describe(err) }, "corpus version refresh failed"));

  let first = true;
  await sql.listen(
    CHANNEL,
    (payload) => advance(Number(payload)),
    () => {
      if (!first) void refresh();
      first = false;
    },
  );

  return {
    current: () => version,
    /** Called after an ingest or delete reached both stores. */
    bump: async () => advance(await store.bumpCorpusVersion()),
  };
}

export type CorpusVersion = Awaited<ReturnType<typeof createCorpusVersion>>;
