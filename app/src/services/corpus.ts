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
/** How far past this replica's clock a heard version may be: room for the database's clock running ahead of it. */
const HEARD_AHEAD_MAX_MS = 24 * 3600_000;

/**
 * The corpus version this replica keys cached answers by, kept in memory so a cache lookup costs no Postgres round
 * trip. Postgres holds the truth (store.bumpCorpusVersion); other replicas' bumps arrive by LISTEN, on a client of its
 * own (`openListener`), and the value is re-read whenever the listening connection (re)connects, so a notification
 * missed during an outage is not lost, and every `refreshMs`.
 *
 * The version is given out (`current`) only while the connection whose LISTEN was in place before the last read is
 * open, and no doubt (below) is raised. Once it closed (a reset, a restart) bumps may be missed until it listens again
 * and the version is read, and meanwhile callers use no answer cached under it: given out, a replica whose Postgres
 * connections were reset as another replica acknowledged a write served the answers cached before it for 0.2-1.1 s
 * after they came back (probe AW).
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
  /**
   * The highest version the row is known to have held: read, written by a bump of this replica, or heard. A bump
   * commits before Postgres sends its notification, so any read sent after one was heard sees it or a later one.
   * Read once the listener is in place (below): a bump between a read and the LISTEN would be neither read nor heard.
   */
  let version = Number.NEGATIVE_INFINITY;
  const advance = (v: number) => {
    if (Number.isSafeInteger(v) && v > version) version = v;
  };
  /**
   * A version heard: a bump's is the clock's ms, or one past the version before it. One far past the clock (a NOTIFY
   * by hand: `1e308`, or 2^53 - 1, which the next bump takes past 2^53) froze every replica's version, each refresh
   * taking the row for gone back (probe CE, review N21); it is left to the row's next read.
   */
  const heard = (v: number) => {
    if (v <= Date.now() + HEARD_AHEAD_MAX_MS) advance(v);
  };
  /**
   * The version only rises, so one below the version held means the database went back: restored from a snapshot or
   * to a point in time, with Qdrant as it was, or restored too. It is bumped past the clock (store.ts), which every
   * replica takes: the answers they cached before the restore would otherwise be served until their TTL.
   */
  const wentBack = async () => {
    log.warn("the corpus version went back (a database restore): bumped past it");
    advance(await store.bumpCorpusVersion(version));
  };
  /** True once the version is read. `quiet`: the periodic read, which fails every few seconds through an outage. */
  const refresh = async (quiet = false): Promise<boolean> => {
    // Compared with what the row held before the read went out: a version taken meanwhile (a bump's, a notification's)
    // may be above what the read saw without anything having gone back. Heard versions count: compared only with the
    // versions read or bumped here, a restore to a point between those and the versions heard since went unseen.
    const held = version;
    try {
      const v = await store.corpusVersion();
      if (v < held) await wentBack();
      else advance(v);
      return true;
    } catch (err) {
      if (!quiet) log.warn({ err: describe(err) }, "corpus version refresh failed");
      return false;
    }
  };

  let stopped = false;
  /** The connection the listener's LISTEN went out on, once Postgres took it, and the doubt (below) it came after. */
  let listenedOn: Socket | undefined;
  let listenedAfter = 0;
  /** That connection once a read of the version followed its LISTEN: while it is open, every later bump is heard. */
  let heardOn: Socket | undefined;
  /**
   * Raised (counted) when the pool's connections were dropped as silent (a partition) or on a read-only node: the
   * listener may be missing bumps though its connection is open. The version is not given out until a probe sent
   * after the last one is heard, or a LISTEN made after it is followed by a read. Given out, a request prepared in a
   * partition took the answer cached before another replica's write, and was answered with it once the partition
   * healed, however long after the write (probe AX: 21 s).
   */
  let doubts = 0;
  let doubted = false;
  const listening = () => heardOn !== undefined && !heardOn.destroyed;
  /** Reads the version, then trusts the listener's connection if it is still the one that listened. */
  const readAfterListen = async (client: Sql, socket: Socket | undefined, quiet = false) => {
    // Reads go through the pool and may end out of order: one that ends after its connection closed trusts nothing.
    if (!(await refresh(quiet)) || client !== listener || socket !== listenedOn || !socket || socket.destroyed) return;
    heardOn = socket;
    if (listenedAfter === doubts) doubted = false;
  };

  // Not a number: every replica's `advance` ignores another's probe. Each one sent is told apart by its count.
  const probe = `probe ${randomUUID()}`;
  let probesSent = 0;
  let awaited = "";
  /** Set while a probe is out: called when the listener hears it. */
  let probeHeard: (() => void) | undefined;
  let first = true;
  const listen = (client: Sql) =>
    client.listen(
      CORPUS_CHANNEL,
      (payload) => {
        if (payload === awaited) probeHeard?.();
        else heard(Number(payload));
      },
      () => {
        if (client !== listener) return;
        listenedOn = openConnection(client);
        listenedAfter = doubts;
        // Listening again (postgres.js sends the LISTEN again on its new connection): trusted once the version is read.
        if (!first) void readAfterListen(client, listenedOn);
        first = false;
      },
    );
  let listener = openListener();
  try {
    await listen(listener);
    // Another replica's ingest committed while this one started (a rolling deploy, a scale-up) is in the row now, and
    // any later one is heard. Read first, a bump committed before the LISTEN was in place was heard by no one here:
    // cached answers from before it were served for up to `refreshMs`.
    advance(await store.corpusVersion());
    heardOn = listenedOn;
  } catch (err) {
    await listener.end({ timeout: 0 });
    throw err;
  }

  /** A new client listens in place of the one that stopped hearing; its LISTEN reads the version once it is done. */
  const replaceListener = (why: string) => {
    // A probe judged or a check ending after `stop`: a listener opened then would never be ended.
    if (stopped) return;
    log.warn(`${why}: listening on a new connection`);
    listenedOn = heardOn = undefined;
    void listener.end({ timeout: 0 });
    listener = openListener();
    listen(listener).catch(() => {});
  };

  /**
   * Sends a probe, and replaces the listener if it has not heard it PROBE_GRACE_MS after Postgres took it. A probe
   * Postgres did not take tells nothing about the listener: it is sent again, PROBE_RETRY_MS later and then twice as
   * late each time, for a refresh period (one sent on a connection gone silent was not taken, while the pool's other
   * connections answered).
   */
  const probeListener = async (doubt = false) => {
    if (doubt) {
      doubts++;
      doubted = true;
    }
    if (probeHeard || !listening()) return;
    const on = heardOn;
    /** The doubts raised before the probe Postgres took went out. */
    let after = doubts;
    let heard = false;
    let wake = () => {};
    // Set first: the listener may hear it before the statement's answer arrives.
    probeHeard = () => {
      heard = true;
      wake();
    };
    const stillOn = () => !stopped && heardOn === on && listening();
    try {
      // Through the pool, not the listener: a Postgres that cannot take the probe tells nothing about the listener.
      const sent = () => {
        awaited = `${probe} ${++probesSent}`;
        return store.notifyCorpusListeners(awaited).then(
          () => true,
          () => false,
        );
      };
      const giveUpAt = performance.now() + refreshMs;
      for (let retryMs = PROBE_RETRY_MS; ; retryMs *= 2) {
        after = doubts;
        if (await sent()) break;
        // Unref'd, as the checks' timer: a replica whose start-up was given up on is never stopped.
        await sleep(retryMs, undefined, { ref: false });
        if (heard || !stillOn() || performance.now() > giveUpAt) return;
      }
      if (!heard) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          // Decided on a setImmediate, after the I/O that came in meanwhile is read (deadline.ts says why).
          setTimeout(() => setImmediate(resolve), PROBE_GRACE_MS).unref();
        });
      }
      if (heard && after === doubts) doubted = false;
      // A connection closed meanwhile lost the probe: it is listening again, or `check` sees that it is not.
      if (!heard && stillOn()) replaceListener("corpus version notifications stopped arriving");
    } finally {
      probeHeard = undefined;
    }
    // Heard, but sent before a doubt raised while it was out: that doubt needs a probe of its own.
    if (heard && doubted && !stopped) void probeListener();
  };

  /** Checks in a row that found the listener not listening while Postgres answered. */
  let notListening = 0;
  /** Refreshes and probes the listener; reads again after its LISTEN, or replaces one that is not listening. */
  const check = async () => {
    if (listening()) {
      notListening = 0;
      void refresh(true);
      // Not awaited: its retries would hold the next check back.
      void probeListener();
      return;
    }
    // Listening, but the read after it failed: read again.
    if (listenedOn !== undefined && !listenedOn.destroyed) return readAfterListen(listener, listenedOn, true);
    // Its LISTEN was lost (postgres.js, above), or not taken for a whole period though Postgres answers reads. While
    // it does not, a new client cannot listen either.
    if (!(await refresh(true)) || ++notListening < 2) return;
    notListening = 0;
    replaceListener("corpus version listener not listening again");
  };
  // Each check after the last one ended.
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (!stopped) timer = setTimeout(() => void check().finally(schedule), refreshMs).unref();
  };
  schedule();

  return {
    /** The version to key cached answers by; undefined while this replica may have missed a bump (see above). */
    current: (): number | undefined => (listening() && !doubted ? version : undefined),
    /**
     * A statement of the pool got no answer, or (`doubt`) its connections were dropped: the listener's may be cut off
     * too, and with `doubt` the version is not given out until the listener is shown to hear.
     */
    probeListener: (doubt = false) => void probeListener(doubt),
    /** Stops the refresh and closes the listener. */
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      return listener.end({ timeout: 0 });
    },
    /** Bumps the version on its own: after a document write whose Qdrant calls may land late, or land in the background. */
    bump: async () => advance(await store.bumpCorpusVersion()),
    /** A version a write bumped to in its own statement (store.deleteDocument, store.releaseDocumentsAndBump). */
    advanceTo: advance,
  };
}

export type CorpusVersion = Awaited<ReturnType<typeof createCorpusVersion>>;
