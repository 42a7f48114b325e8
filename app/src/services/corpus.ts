import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import { openConnection, type Sql } from "./db.ts";
import { CORPUS_CHANNEL, type Store } from "./store.ts";

/**
 * How long a probe may go unheard after Postgres took it before the listener is replaced. Postgres sends the
 * notification as it commits the probe's statement, so a listening connection has it within milliseconds of the
 * answer; this is room for the two sockets being read in other event-loop turns. A listener replaced needlessly costs
 * a new connection, and cached answers go unused until it listens.
 */
const PROBE_GRACE_MS = 1_000;
const PROBE_RETRY_MS = 200;

/**
 * The corpus version this replica keys cached answers by, kept in memory so a cache lookup costs no Postgres round
 * trip. Postgres holds the truth (store.bumpCorpusVersion); other replicas' bumps arrive by LISTEN, on a client of its
 * own (`openListener`), and the value is re-read whenever the listening connection (re)connects, so a notification
 * missed during an outage is not lost, and every `refreshMs`.
 *
 * The version is given out (`current`) only while the connection whose LISTEN was in place before the last read is
 * open. Once it closed (a reset, a restart) bumps may be missed until it listens again and the version is read, and
 * meanwhile callers use no answer cached under it: given out, a replica whose Postgres connections were reset as
 * another replica acknowledged a write served the answers cached before it for 0.2-1.1 s after they came back (probe AW).
 *
 * A listening connection gone silent (a failover that did not reset it) stays open, so the replica sends itself a
 * probe on the channel at each refresh, and whenever a statement of its pool gets no answer, and replaces a listener
 * that has not heard it PROBE_GRACE_MS after Postgres took it: a pool partly silent served stale answers for 15 s,
 * a refresh period. A listener not listening again for a whole refresh period is replaced too: postgres.js 3.4.9 loses
 * a LISTEN for good when Postgres ended the listening connection mid-statement (a restart or failover): the next
 * connection's first statement, the LISTEN sent again, is failed with the old connection's error (connection.js keeps
 * it), and that connection stays open without it.
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
  /** True once the version is read. `quiet`: the periodic read, which fails every few seconds through an outage. */
  const refresh = async (quiet = false): Promise<boolean> => {
    // Compared with what the row held before the read went out: a version taken meanwhile (a bump's, a notification's)
    // may be above what the read saw without anything having gone back.
    const held = rowVersion;
    try {
      const v = await store.corpusVersion();
      if (v < held) await wentBack();
      else fromRow(v);
      return true;
    } catch (err) {
      if (!quiet) log.warn({ err: describe(err) }, "corpus version refresh failed");
      return false;
    }
  };

  let stopped = false;
  /** The listener's connection whose LISTEN was in place before the version was last read: every later bump is heard. */
  let heardOn: Socket | undefined;
  const listening = () => heardOn !== undefined && !heardOn.destroyed;

  // Not a number: every replica's `advance` ignores another's probe.
  const probe = `probe ${randomUUID()}`;
  /** Set while a probe is out: called when the listener hears it. */
  let probeHeard: (() => void) | undefined;
  let first = true;
  const listen = (client: Sql) =>
    client.listen(
      CORPUS_CHANNEL,
      (payload) => {
        if (payload === probe) probeHeard?.();
        else advance(Number(payload));
      },
      () => {
        // Listening again (postgres.js sends the LISTEN again on its new connection): trusted once the version is read.
        if (!first) {
          const socket = openConnection(client);
          void refresh().then((read) => {
            if (read && client === listener) heardOn = socket;
          });
        }
        first = false;
      },
    );
  let listener = openListener();
  try {
    await listen(listener);
    // Another replica's ingest committed while this one started (a rolling deploy, a scale-up) is in the row now, and
    // any later one is heard. Read first, a bump committed before the LISTEN was in place was heard by no one here:
    // cached answers from before it were served for up to `refreshMs`.
    const socket = openConnection(listener);
    fromRow(await store.corpusVersion());
    heardOn = socket;
  } catch (err) {
    await listener.end({ timeout: 0 });
    throw err;
  }

  /** A new client listens in place of the one that stopped hearing; its LISTEN reads the version once it is done. */
  const replaceListener = (why: string) => {
    // A probe judged or a check ending after `stop`: a listener opened then would never be ended.
    if (stopped) return;
    log.warn(`${why}: listening on a new connection`);
    heardOn = undefined;
    void listener.end({ timeout: 0 });
    listener = openListener();
    listen(listener).catch(() => {});
  };

  /**
   * Sends a probe, and replaces the listener if it has not heard it PROBE_GRACE_MS after Postgres took it. A probe
   * Postgres did not take is sent again PROBE_RETRY_MS later, until the next check: it tells nothing about the
   * listener, and one sent on a connection gone silent was not, while the pool's other connections answered.
   */
  const probeListener = async () => {
    if (probeHeard || !listening()) return;
    const client = listener;
    let heard = false;
    let wake = () => {};
    // Set first: the listener may hear it before the statement's answer arrives.
    probeHeard = () => {
      heard = true;
      wake();
    };
    try {
      // Through the pool, not the listener: a Postgres that cannot take the probe tells nothing about the listener.
      const sent = () =>
        store.notifyCorpusListeners(probe).then(
          () => true,
          () => false,
        );
      const nextCheckAt = performance.now() + refreshMs;
      while (!(await sent())) {
        // Unref'd, as the checks' timer: a replica whose start-up was given up on is never stopped.
        await sleep(PROBE_RETRY_MS, undefined, { ref: false });
        if (stopped || heard || client !== listener || !listening() || performance.now() > nextCheckAt) return;
      }
      if (!heard) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          // Decided on a setImmediate, after the I/O that came in meanwhile is read (deadline.ts says why).
          setTimeout(() => setImmediate(resolve), PROBE_GRACE_MS).unref();
        });
      }
      if (!heard && client === listener) replaceListener("corpus version notifications stopped arriving");
    } finally {
      probeHeard = undefined;
    }
  };

  /** Checks in a row that found the listener not listening. */
  let notListening = 0;
  /** Refreshes, and probes the listener, or replaces one that did not listen again since the last check. */
  const check = async () => {
    void refresh(true);
    if (listening()) {
      notListening = 0;
      return probeListener();
    }
    // Its LISTEN was lost (postgres.js, above) or Postgres has not taken it for a whole `refreshMs`.
    if (++notListening < 2) return;
    notListening = 0;
    replaceListener("corpus version listener not listening again");
  };
  // Each check after the last one ended: overlapping, a slow probe was judged before it could arrive.
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (!stopped) timer = setTimeout(() => void check().finally(schedule), refreshMs).unref();
  };
  schedule();

  return {
    /** The version to key cached answers by; undefined while this replica may have missed a bump (see above). */
    current: (): number | undefined => (listening() ? version : undefined),
    /** A statement of the pool got no answer, or its connections were dropped: the listener's may be cut off too. */
    probeListener: () => void probeListener(),
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
