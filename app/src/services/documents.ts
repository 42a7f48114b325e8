import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Config } from "../config.ts";
import { RETRY_FIRST_MS, retryUntil } from "../deadline.ts";
import { Counts } from "../counts.ts";
import { AppError, describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import { chunkText, chunkTextYielding } from "./chunking.ts";
import type { CorpusVersion } from "./corpus.ts";
import { EmbedInputTooLong, notVectorsOfOneSize, type OllamaService } from "./ollama.ts";
import { type QdrantService, retryCannotHelp, VectorSizeMismatch, writeMayLand } from "./qdrant.ts";
import { type Busy, type Lease, type Store, statementTimeoutMs } from "./store.ts";
import type { VectorFit } from "./vector-fit.ts";

/**
 * Statements and publishes retried in the background at once, at most: in an outage every failed write adds up to
 * two (a publish sent again, and a release with its corpus bump or a bump alone), and past this a release is left to
 * expire (which bumps), a bump to the cache's TTL and a publish to the document's next write.
 */
const MAX_RETRIED = 64;

export interface DocumentInput {
  id?: string | undefined;
  title?: string | null | undefined;
  text: string;
  metadata?: Record<string, unknown> | undefined;
}

/**
 * Another request is writing one of these documents. A write usually ends within a second, so Retry-After says 1;
 * only a lease whose writer crashed lasts until it expires, which the message gives.
 */
const documentsBusy = ({ ids, leftSeconds }: Busy) =>
  new AppError(
    "document_busy",
    `document ${ids.join(", ")} is being written by another request; retry shortly (its hold ends within ${leftSeconds} s)`,
    { busy: ids },
    { "Retry-After": "1" },
  );

/**
 * A key already ingesting half of INGEST_MAX_BYTES_IN_FLIGHT on this replica: a 429, its own use. Without the half, one
 * key resubmitting large ingests within its rate limit kept the whole budget, and another key's ingests were 503s, 32
 * of 34 (probe BT).
 */
const ingestBusyForKey = (mine: number, max: number) =>
  new AppError(
    "ingest_busy_key",
    `this API key is already ingesting ${mine} bytes of documents on this replica, and one key may hold half of INGEST_MAX_BYTES_IN_FLIGHT (${max}) once its first ingest runs: ask again shortly`,
    undefined,
    { "Retry-After": "5" },
  );

/** Past INGEST_MAX_BYTES_IN_FLIGHT: the ALB sends the retry to whichever replica, and an ingest takes seconds. */
const ingestBusy = (ingesting: number, max: number) =>
  new AppError(
    "ingest_busy",
    `this replica is already ingesting ${ingesting} bytes of documents (INGEST_MAX_BYTES_IN_FLIGHT ${max}): ask again shortly`,
    undefined,
    { "Retry-After": "5" },
  );

export interface DocumentsDeps {
  config: Config;
  store: Store;
  corpus: CorpusVersion;
  ollama: OllamaService;
  qdrant: QdrantService;
  vectorFit: Pick<VectorFit, "refused">;
  log: Logger;
}

/**
 * Documents one publish call shows at most (two operations each). Qdrant applies a call's operations one after another,
 * all within one QDRANT_TIMEOUT_MS, and a failed call is sent again whole, the operations it applied already too: at
 * 100 documents a call, 200 of them at each try.
 */
const PUBLISH_MAX_DOCUMENTS = 20;

/**
 * Writes to the corpus: ingest (chunk, embed, record, write the chunks to Qdrant) and delete, each bumping the corpus
 * version that keys cached answers (corpus.ts). A document is held by one write at a time (migration 005).
 */
export function createDocuments({ config, store, corpus, ollama, qdrant, vectorFit, log }: DocumentsDeps) {
  /**
   * A write starts no Qdrant call past its request's deadline (answered 504 then), at most REQUEST_TIMEOUT_MS away, and
   * holds its documents (migration 005) until the last call it started has ended too: REQUEST_TIMEOUT_MS more, or
   * QDRANT_TIMEOUT_MS where that is longer (a delete running first left a late upsert's chunks without a record). Only
   * a failed publish sent again and a discard may come later: neither can hide or remove a later write's chunks.
   */
  const newLease = (): Lease => ({
    writer: randomUUID(),
    ms: config.REQUEST_TIMEOUT_MS + Math.max(config.REQUEST_TIMEOUT_MS, config.QDRANT_TIMEOUT_MS),
  });
  /**
   * Checked before each Ollama and Qdrant call of a write (one upsert is several: collection, indexes, points); `stopAt`
   * is the request's 504.
   */
  const callsUntil = (stopAt: number) => () => {
    if (performance.now() > stopAt)
      throw new AppError("document_write_timeout", `document write stopped after ${config.REQUEST_TIMEOUT_MS} ms`);
  };

  /** Calls being retried in the background now (releases, corpus bumps, publishes sent again). */
  let retrying = 0;

  /**
   * `attempt` until it succeeds: the tries within `waitMs` (default: the first only) are awaited, the rest go on in the
   * background until `endsAt` (performance.now() ms), and `giveUp` hears the last error, or the first that is not
   * `retryable`. While Postgres cannot take a statement that must follow a write, it is tried again rather than dropped
   * after one blip. Resolves with the awaited tries' last error when none succeeded, else undefined.
   */
  function persist(
    attempt: () => Promise<unknown>,
    endsAt: number,
    giveUp: (err: unknown) => void,
    { waitMs = 0, retryable }: { waitMs?: number; retryable?: (err: unknown) => boolean } = {},
  ): Promise<unknown> {
    return retryUntil(attempt, performance.now() + waitMs, { retryable }).then(
      () => undefined,
      (err: unknown) => {
        if (retrying >= MAX_RETRIED || !(retryable?.(err) ?? true)) giveUp(err);
        else {
          retrying++;
          void sleep(RETRY_FIRST_MS, undefined, { ref: false })
            .then(() => retryUntil(attempt, endsAt, { unref: true, retryable }))
            .catch(giveUp)
            .finally(() => retrying--);
        }
        return err;
      },
    );
  }

  /**
   * Gives the documents back, tried until the lease would have ended anyway: otherwise a blip of a second held them,
   * and answered every retry 409, for the whole lease. After a write that changed what searches find (`bump`), with
   * the corpus bump in the same statement (see `invalidate` for why it bumps), never without it: if every try fails,
   * the lease expires and the replica that ends it bumps then (store.corpusVersion). Resolves with the first try's
   * error if it failed.
   */
  const release = (ids: string[], lease: Lease, { bump = false, waitMs = 0 }: { bump?: boolean; waitMs?: number } = {}) =>
    persist(
      async () => {
        if (!bump) return store.releaseDocuments(ids, lease.writer);
        corpus.advanceTo(await store.releaseDocumentsAndBump(ids, lease.writer));
      },
      performance.now() + lease.ms,
      (err) =>
        log.warn(
          { err: describe(err), documents: ids.length },
          bump
            ? "document lease not released: it expires, and the corpus version is bumped then"
            : "document lease not released: it expires",
        ),
      { waitMs },
    );

  /**
   * Bumps the corpus version, in a statement of its own, after a write that changed or may still change what searches
   * find while its documents stay held (a Qdrant call that may still land; a publish that landed in the background):
   * answers cached under the current version cite chunks no longer there, or miss new ones, until they expire. (A
   * write that gives its documents back bumps in that statement: `release`.) Tried until the lease ends; when the
   * write may still land, once more after that, when no call of it is under way any more.
   */
  function invalidate(lease: Lease, mayLand: boolean): Promise<unknown> {
    const bump = () =>
      persist(corpus.bump, performance.now() + lease.ms, (err) =>
        log.warn(
          { err: describe(err) },
          "corpus version not bumped after a document write: answers cached before it are served until they expire",
        ),
      );
    if (mayLand) setTimeout(() => void bump(), lease.ms).unref();
    return bump();
  }

  /**
   * After a failed Qdrant write (`changed`: it sent a publish that may have been applied):
   * gives the documents back, with a corpus bump in the same statement if the points may have changed; unless Qdrant
   * may still apply the write (writeMayLand): then they stay held until the lease expires, so a delete cannot run
   * before a late upsert lands (pending chunks without a record: unsearchable, but left in Qdrant), and the cached
   * answers are invalidated now and once it can no longer land. A later write's chunks are safe from a late call
   * either way (store.ts Leased).
   */
  const afterFailedWrite = async (ids: string[], lease: Lease, err: unknown, changed: boolean): Promise<void> => {
    if (!writeMayLand(err)) {
      await release(ids, lease, { bump: changed });
      return;
    }
    log.warn(
      { err: describe(err), documents: ids.length },
      "qdrant write of unknown outcome: its documents stay held until the lease expires",
    );
    await invalidate(lease, true);
  };

  /**
   * A lease statement that failed past its deadline, or lost its connection, may still commit: the documents are
   * given back now (a no-op if it has not committed yet) and again once Postgres' statement_timeout has ended it
   * either way, in the background, and the failure goes on.
   */
  const unknownOutcome =
    (ids: string[], lease: Lease) =>
    (err: unknown): never => {
      void release(ids, lease);
      setTimeout(() => void release(ids, lease), statementTimeoutMs(config.DB_QUERY_TIMEOUT_MS)).unref();
      throw err;
    };

  /** Bytes of request bodies whose ingest is at work on this replica, per key and in all. */
  const ingesting = new Counts();

  /**
   * An ingest holds every chunk's vector until its documents are written, about 40 times its body (probe AO: a 2 MiB
   * body made 3,900 chunks and took 115 MiB), and nothing bounded how many ran at once: 8 at a time took a replica to
   * 760 MiB, past a dev pod's 512 MiB. Past INGEST_MAX_BYTES_IN_FLIGHT of bodies, another is a 503 (one alone always
   * runs). Its bytes count until its work ends, which may be after its 504. A key's first ingest takes any room there
   * is; past it, the key holds at most half the budget, so the other half stays for other keys.
   */
  async function ingest(
    docs: DocumentInput[],
    owner: string,
    bodyBytes: number,
    stopAt = performance.now() + config.REQUEST_TIMEOUT_MS,
  ): Promise<Array<{ id: string; chunks: number }>> {
    const max = config.INGEST_MAX_BYTES_IN_FLIGHT;
    const over = ingesting.overBudget(owner, bodyBytes, max);
    if (over === "key") throw ingestBusyForKey(ingesting.of(owner), max);
    if (over === "replica") throw ingestBusy(ingesting.total, max);
    ingesting.add(owner, bodyBytes);
    try {
      return await tracked(write(docs, owner, stopAt));
    } finally {
      ingesting.add(owner, -bodyBytes);
    }
  }

  /**
   * Writes and deletes under way, answered or not: one answered 504 goes on to its end, its documents held meanwhile.
   * Closed before it ended (SIGTERM after the 504), a write left its lease and pending chunks, and its documents
   * answered 409 for up to two minutes after a rollout (probe CL): `idle` lets shutdown wait for them.
   */
  const running = new Set<Promise<unknown>>();
  const tracked = <T>(write: Promise<T>): Promise<T> => {
    running.add(write);
    const done = () => running.delete(write);
    write.then(done, done);
    return write;
  };

  /** Resolves once no write is under way, those started meanwhile included, or after `ms`, whichever comes first. */
  async function idle(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (running.size > 0 && performance.now() < until)
      await Promise.race([Promise.allSettled([...running]), sleep(until - performance.now(), undefined, { ref: false })]);
  }

  /**
   * Sends a failed publish again until it lands: the first try awaited, the others in the background for the lease's
   * length, unless Qdrant refused it for good (retryCannotHelp: a bad request, a missing collection). Qdrant ends a
   * batch at its first failing operation, so a refused publish may have shown a document's new chunks beside its
   * old ones, and one that timed out may still land; sent again, it leaves the new ones alone either way (applied
   * already, it changes nothing, and it removes no later write's chunks). Taking the document back to its old chunks
   * instead was not safe: a refusal from a proxy may come after Qdrant applied it whole, and the old chunks are gone.
   * A try that lands in the background bumps the corpus version, since answers were cached meanwhile; so does the end
   * of the tries, once one that timed out would have landed. Resolves with the first try's error, if it failed.
   * `sentMayLand`: the publish that failed may still land (it timed out). When the tries give up, the chunks the call
   * has not shown are discarded once no call may land: discarded under a late publish, a document lost its new chunks
   * and then, as that publish landed, its old ones.
   */
  function republish(ids: string[], generation: number, lease: Lease, sentMayLand: boolean): Promise<unknown> {
    let tries = 0;
    let mayHaveLanded = sentMayLand;
    return persist(
      async () => {
        const late = tries++ > 0;
        await qdrant.publish(ids, generation).catch((err: unknown) => {
          mayHaveLanded ||= writeMayLand(err);
          throw err;
        });
        if (late) await corpus.bump();
      },
      performance.now() + lease.ms,
      (err) => {
        if (mayHaveLanded) setTimeout(() => void invalidate(lease, false), config.QDRANT_TIMEOUT_MS).unref();
        // The documents the call had not shown keep their old chunks: their new ones go, once no try may land.
        discardPending(ids, generation, lease, mayHaveLanded);
        log.warn(
          { err: describe(err), documents: ids },
          "document publish not completed: until their next write the documents may show their old chunks, their new ones or both",
        );
      },
      { retryable: (err) => !retryCannotHelp(err) },
    );
  }

  /**
   * Deletes a failed write's pending chunks of the documents in the background: unsearchable, but they take Qdrant's
   * space. A call that may still land is waited out (the lease's length); until then, or if this process dies first,
   * each document's next write or delete does it.
   */
  function discardPending(ids: string[], generation: number, lease: Lease, mayLand: boolean): void {
    const discard = () =>
      void qdrant
        .discard(ids, generation)
        .catch((err: unknown) => log.warn({ err: describe(err) }, "pending chunks of a failed document write left in qdrant"));
    if (mayLand) setTimeout(discard, lease.ms).unref();
    else discard();
  }

  /**
   * Chunks and embeds (batched), records the documents in Postgres, then writes their chunks to Qdrant, then bumps the
   * corpus version. Postgres first: every chunk in Qdrant has a record, so a failed ingest can always be deleted or
   * retried (same id), and a Postgres outage stops the ingest before Qdrant is touched. The records are leased to
   * this request until its chunks are written: a concurrent ingest or delete of one of them is a 409.
   */
  async function write(docs: DocumentInput[], owner: string, stopAt: number): Promise<Array<{ id: string; chunks: number }>> {
    const beforeCall = callsUntil(stopAt);
    const named = docs.flatMap((d) => (d.id === undefined ? [] : [d.id]));
    const busy = named.length > 0 ? await store.busyDocuments(named) : undefined;
    if (busy) throw documentsBusy(busy);
    const chunked: string[][] = [];
    for (const d of docs) chunked.push(await chunkTextYielding(d.text, config.CHUNK_SIZE_CHARS, config.CHUNK_OVERLAP_CHARS));
    const items = chunked.flatMap((chunks, doc) => chunks.map((text) => ({ doc, text })));
    const embedded = await embedWhole(items, beforeCall);
    // One size for them all, also when chunks too long for a batch were embedded one call each: the first ingest
    // creates the collection at the first vector's size (review N15).
    if (embedded.some((c) => c.vector.length !== embedded[0]!.vector.length)) throw notVectorsOfOneSize();
    beforeCall(); // embedding took the request's time: it was answered 504, so nothing is written
    const prepared = docs.map((d) => ({
      id: d.id ?? randomUUID(),
      title: d.title ?? null,
      metadata: d.metadata ?? {},
      chunks: [] as typeof embedded,
    }));
    for (const chunk of embedded) prepared[chunk.doc]!.chunks.push(chunk);
    const lease = newLease();
    const ids = prepared.map((d) => d.id);
    const leased = await store
      .upsertDocuments(
        prepared.map((d) => ({ id: d.id, title: d.title, metadata: d.metadata, chunk_count: d.chunks.length })),
        owner,
        lease,
      )
      .catch(unknownOutcome(ids, lease));
    if ("ids" in leased) throw documentsBusy(leased);
    const { generation } = leased;
    // Searches see a document's new chunks only once they are all written, and its old ones go in the same call
    // (qdrant.ts publish): a write failing midway leaves each document as it was or as it is now (a failed publish is
    // sent again until it lands), not half of each. Every document's chunks are written first, in as few calls as their
    // size allows, then published PUBLISH_MAX_DOCUMENTS at a time: a call of each per document cost an ingest of 100
    // short documents 200 calls.
    const groups: string[][] = [];
    for (let i = 0; i < ids.length; i += PUBLISH_MAX_DOCUMENTS) groups.push(ids.slice(i, i + PUBLISH_MAX_DOCUMENTS));
    /** Publish calls that succeeded: their documents are shown. */
    let published = 0;
    /** Every document's chunks were written, pending: no call of theirs is under way. */
    let upserted = false;
    /** The current publish call passed its gate: it may have been applied, in part or whole. */
    let publishSent = false;
    const beforePublish = () => {
      beforeCall();
      publishSent = true;
    };
    /** The failed publish call may have been applied in part, and sending it again can help: it is left to its tries. */
    const resending = (err: unknown) => publishSent && !retryCannotHelp(err);
    try {
      const points = prepared.flatMap((doc) =>
        doc.chunks.map(({ text, vector }, chunkIndex) => ({
          documentId: doc.id,
          chunkIndex,
          title: doc.title,
          text,
          metadata: doc.metadata,
          vector,
        })),
      );
      await qdrant.upsert(points, generation, beforeCall);
      upserted = true;
      for (const group of groups) {
        publishSent = false;
        await qdrant.publish(group, generation, beforePublish).catch(async (err: unknown) => {
          // Sent, so perhaps applied in part: sent again at once, before the answers are invalidated (afterFailedWrite)
          // so none is cached from a document half shown. Landed, the write goes on; its 201 then says so, where a
          // 502 had a client send documents without ids again, and store them twice.
          if (!resending(err)) throw err;
          if ((await republish(group, generation, lease, writeMayLand(err))) !== undefined) throw err;
        });
        published++;
      }
    } catch (err) {
      if (err instanceof VectorSizeMismatch) vectorFit.refused(err); // the vectors were embedded just now
      // A publish sent and refused, or timed out, is left to its tries (republish); the documents no call showed were
      // written with the others, and their chunks go, once no call of theirs may land.
      const unshown = groups.slice(published + (resending(err) ? 1 : 0)).flat();
      if (unshown.length > 0) discardPending(unshown, generation, lease, !upserted && writeMayLand(err));
      await afterFailedWrite(ids, lease, err, published > 0 || publishSent);
      throw err;
    }
    // A 201 says the documents are free to write or delete and the answers cached before are dropped, so a written
    // ingest keeps trying its release and bump for up to DB_QUERY_TIMEOUT_MS rather than answer while a failed first
    // try leaves them held until the background retry. (Not longer: in an outage the 503 should come within a second.)
    const notReleased = await release(ids, lease, { bump: true, waitMs: config.DB_QUERY_TIMEOUT_MS });
    if (notReleased !== undefined) throw notReleased; // a 503: the documents are written, released in the background
    log.info({ documents: prepared.length, chunks: embedded.length }, "documents ingested");
    return prepared.map((d) => ({ id: d.id, chunks: d.chunks.length }));
  }

  /**
   * Each chunk with its vector, embedded whole. Ollama 0.13.5 embeds only the head of a text longer than the embedding
   * model's window (server/routes.go EmbedHandler truncates unless told not to), so a fact in the rest of the chunk
   * could not be found. Sent with truncation off, in batches of EMBED_BATCH_SIZE; a batch refused for such a chunk is
   * halved until the chunk is alone, and a chunk refused alone is split in two (at a sentence or a word where it can),
   * each part embedded the same way. Every chunk of the ingest had been embedded one call each once any batch was
   * refused: one long line in 1.8 MB took 1,802 calls and 50 s where 56 calls took 3.5 s (probe CL).
   */
  async function embedWhole<T extends { text: string }>(
    chunks: T[],
    beforeCall: () => void,
  ): Promise<Array<T & { vector: number[] }>> {
    const out: Array<T & { vector: number[] }> = [];
    for (let i = 0; i < chunks.length; i += config.EMBED_BATCH_SIZE)
      out.push(...(await embedBatch(chunks.slice(i, i + config.EMBED_BATCH_SIZE), beforeCall)));
    return out;
  }

  async function embedBatch<T extends { text: string }>(
    chunks: T[],
    beforeCall: () => void,
  ): Promise<Array<T & { vector: number[] }>> {
    try {
      // Checked before each call: checked once before them all, an ingest answered 504 went on embedding every batch.
      const vectors = await ollama.embed(
        chunks.map((c) => c.text),
        { whole: true, beforeBatch: beforeCall },
      );
      return chunks.map((c, i) => ({ ...c, vector: vectors[i]! }));
    } catch (err) {
      if (!(err instanceof EmbedInputTooLong)) throw err;
      const [only] = chunks;
      const half = Math.ceil(chunks.length / 2);
      const parts =
        chunks.length > 1
          ? [chunks.slice(0, half), chunks.slice(half)]
          : chunkText(only!.text, Math.ceil(only!.text.length / 2), 0).map((text) => [{ ...only!, text }]);
      if (parts.length < 2) throw err; // one character: nothing left to split
      const out: Array<T & { vector: number[] }> = [];
      for (const part of parts) out.push(...(await embedBatch(part, beforeCall)));
      return out;
    }
  }

  /**
   * Leases the record, removes the document's chunks, then the record (a failure in between leaves it, to retry). The
   * record goes in the statement that bumps the corpus version: a removal committing after its request gave up (a 503,
   * then a 404 on retry) still invalidates the answers cached from the document.
   */
  const remove = (id: string, stopAt = performance.now() + config.REQUEST_TIMEOUT_MS): Promise<boolean> =>
    tracked(removeDocument(id, stopAt));

  async function removeDocument(id: string, stopAt: number): Promise<boolean> {
    const lease = newLease();
    const leased = await store.leaseDocument(id, lease).catch(unknownOutcome([id], lease));
    if (leased === "missing") return false;
    if ("ids" in leased) throw documentsBusy(leased);
    let version: number | undefined;
    try {
      await qdrant.deleteChunks(id, leased.generation, callsUntil(stopAt));
    } catch (err) {
      // Refused after Qdrant applied it (a proxy's 502, a 500 from a shard that failed after the delete on another),
      // the chunks may be gone: answers cached from them are dropped. Taken as changing nothing, they were served
      // until their TTL. Only a refusal a retry meets again (a bad request, no collection) changed nothing for sure.
      await afterFailedWrite([id], lease, err, !retryCannotHelp(err));
      throw err;
    }
    try {
      version = await store.deleteDocument(id, lease.writer);
    } catch (err) {
      await afterFailedWrite([id], lease, err, true); // the chunks are gone
      throw err;
    }
    if (version !== undefined) corpus.advanceTo(version);
    return version !== undefined;
  }

  return { ingest, remove, idle };
}

export type Documents = ReturnType<typeof createDocuments>;
