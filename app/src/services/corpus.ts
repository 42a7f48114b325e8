import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Sql } from "./db.ts";
import type { Store } from "./store.ts";

const CHANNEL = "corpus_version";

/**
 * The corpus version this replica keys cached answers by, kept in memory so a cache lookup costs no Postgres round
 * trip. Postgres holds the truth (store.bumpCorpusVersion); other replicas' bumps arrive by LISTEN, and the value is
 * re-read whenever the listening connection (re)connects, so a notification missed during an outage is not lost, and
 * every `refreshMs`: a listening connection gone silent (a failover that did not reset it) is never reconnected, and
 * the replica kept serving answers cached before other replicas' deletes for as long as they lived in Redis.
 */
export async function createCorpusVersion(sql: Sql, store: Store, log: Logger, refreshMs: number) {
  let version = await store.corpusVersion();
  const advance = (v: number) => {
    if (Number.isFinite(v) && v > version) version = v;
  };
  /** `quiet`: the periodic read, which fails every few seconds through an outage that other errors report. */
  const refresh = (quiet = false) =>
    store.corpusVersion().then(advance, (err: unknown) => {
      if (!quiet) log.warn({ err: describe(err) }, "corpus version refresh failed");
    });

  let first = true;
  await sql.listen(
    CHANNEL,
    (payload) => advance(Number(payload)),
    () => {
      if (!first) void refresh();
      first = false;
    },
  );

  const timer = setInterval(() => void refresh(true), refreshMs).unref();

  return {
    current: () => version,
    stop: () => clearInterval(timer),
    /** Called after an ingest or delete reached both stores. */
    bump: async () => advance(await store.bumpCorpusVersion()),
    /** A version a write bumped to in its own statement (store.deleteDocument). */
    advanceTo: advance,
  };
}

export type CorpusVersion = Awaited<ReturnType<typeof createCorpusVersion>>;
