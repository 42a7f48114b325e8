import { randomUUID } from "node:crypto";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Sql } from "./db.ts";
import { CORPUS_CHANNEL, type Store } from "./store.ts";

/**
 * The corpus version this replica keys cached answers by, kept in memory so a cache lookup costs no Postgres round
 * trip. Postgres holds the truth (store.bumpCorpusVersion); other replicas' bumps arrive by LISTEN, on a client of its
 * own (`openListener`), and the value is re-read whenever the listening connection (re)connects, so a notification
 * missed during an outage is not lost, and every `refreshMs`.
 *
 * Each refresh also sends this replica a probe on the channel, and a listener that did not hear the last one is
 * replaced by a new client's. postgres.js 3.4.9 loses a LISTEN for good when Postgres ended the listening connection
 * mid-statement (a restart or failover): the next connection's first statement, the LISTEN sent again, is failed with
 * the old connection's error (connection.js keeps it), and that connection stays open without it. The replica then
 * heard other replicas' ingests and deletes only at its next refresh. A listening connection gone silent (a failover
 * that did not reset it) is never reconnected either.
 *
 * Each read of the version also ends the document leases their writers left to expire (store.corpusVersion): a write
 * whose process was killed midway bumped the version when it took its lease, but not after the chunks it wrote.
 */
export async function createCorpusVersion(openListener: () => Sql, store: Store, log: Logger, refreshMs: number) {
  /** Read once the listener is in place (below): a bump between a read and the LISTEN would be neither read nor heard. */
  let version = Number.NEGATIVE_INFINITY;
  /** The highest version read from the row or returned by a bump (a notification's is not counted: see `wentBack`). */
  let rowVersion = Number.NEGATIVE_INFINITY;
  const advance = (v: number) => {
    if (Number.isFinite(v) && v > version) version = v;
  };
  /** A version the row held: read, or written by a bump of this replica. */
  const fromRow = (v: number) => {
    if (Number.isFinite(v) && v > rowVersion) rowVersion = v;
    advance(v);
  };
  /**
   * The version only rises, so one below the version held means the database went back: restored from a snapshot or
   * to a point in time, with Qdrant as it was, or restored too. It is bumped past the clock (store.ts), which every
   * replica takes: the answers they cached before the restore would otherwise be served until their TTL.
   */
  const wentBack = async () => {
    log.warn("the corpus version went back (a database restore): bumped past it");
    fromRow(await store.bumpCorpusVersion(version));
  };
  /** `quiet`: the periodic read, which fails every few seconds through an outage that other errors report. */
  const refresh = (quiet = false) => {
    // Compared with what the row held before the read went out: a version taken meanwhile (a bump's, a notification's)
    // may be above what the read saw without anything having gone back.
    const held = rowVersion;
    return store
      .corpusVersion()
      .then((v) => (v < held ? wentBack() : fromRow(v)))
      .catch((err: unknown) => {
        if (!quiet) log.warn({ err: describe(err) }, "corpus version refresh failed");
      });
  };

  // Not a number: every replica's `advance` ignores another's probe.
  const probe = `probe ${randomUUID()}`;
  /** A probe Postgres took that the listener has not heard yet. */
  let probeUnheard = false;
  let first = true;
  const listen = (client: Sql) =>
    client.listen(
      CORPUS_CHANNEL,
      (payload) => {
        if (payload === probe) probeUnheard = false;
        else advance(Number(payload));
      },
      () => {
        if (!first) void refresh();
        first = false;
      },
    );
  let listener = openListener();
  try {
    await listen(listener);
    // Another replica's ingest committed while this one started (a rolling deploy, a scale-up) is in the row now, and
    // any later one is heard. Read first, a bump committed before the LISTEN was in place was heard by no one here:
    // cached answers from before it were served for up to `refreshMs`.
    fromRow(await store.corpusVersion());
  } catch (err) {
    await listener.end({ timeout: 0 });
    throw err;
  }

  /** Refreshes, then judges the last probe, a whole `refreshMs` after Postgres took it, or sends the next. */
  const check = async () => {
    void refresh(true);
    if (probeUnheard) {
      probeUnheard = false;
      log.warn("corpus version notifications stopped arriving: listening on a new connection");
      void listener.end({ timeout: 0 });
      listener = openListener();
      // Its LISTEN re-reads the version once it is done; until Postgres answers, postgres.js tries it again. It gets
      // until the next check to LISTEN: a probe sent at once went unheard by a healthy one, and the listener was
      // replaced at every check after its first replacement.
      listen(listener).catch(() => {});
      return;
    }
    // Through the pool, not the listener: a Postgres that cannot take the probe tells nothing about the listener.
    // Set first: the listener may hear it before the statement's answer arrives.
    probeUnheard = true;
    await store.notifyCorpusListeners(probe).catch(() => {
      probeUnheard = false;
    });
  };
  // Each check after the last one ended: overlapping, a slow probe was judged before it could arrive.
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (!stopped) timer = setTimeout(() => void check().finally(schedule), refreshMs).unref();
  };
  schedule();

  return {
    current: () => version,
    /** Stops the refresh and closes the listener. */
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      return listener.end({ timeout: 0 });
    },
    /** Bumps the version on its own: after a document write whose Qdrant calls may land late, or land in the background. */
    bump: async () => fromRow(await store.bumpCorpusVersion()),
    /** A version a write bumped to in its own statement (store.deleteDocument, store.releaseDocumentsAndBump). */
    advanceTo: fromRow,
  };
}

export type CorpusVersion = Awaited<ReturnType<typeof createCorpusVersion>>;
