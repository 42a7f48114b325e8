import { beforeDeadline } from "../deadline.ts";
import type { Logger } from "../log.ts";
import { VectorSizeMismatch } from "./qdrant.ts";

export interface VectorFitDeps {
  /** The size of the embedding model's vectors (one short text embedded). */
  embeddingSize(): Promise<number>;
  /** The size of the collection's vectors; null when there is no collection yet. */
  collectionSize(): Promise<number | null>;
  collection: string;
  /**
   * How long a comparison may take; past it nothing is compared. Under the readiness probe's own timeout: a hung
   * Ollama or Qdrant would otherwise fail this critical check, and a pod starting then would never be ready.
   */
  timeoutMs: number;
  log: Logger;
}

/**
 * Whether the embedding model's vectors fit the collection. A model of another size over an existing collection
 * (EMBED_MODEL changed, or another model pulled under its name) failed every uncached question with a 502 while
 * readiness said 200, so a rolling deploy went on replacing pods that answered with pods that could not.
 *
 * Readiness compares the two sizes until they have matched once, and again after a question or an ingest found them
 * apart, until they match again. Without a collection there is nothing to mismatch (ingest creates it at the model's
 * size), and no embedding is asked for. Without an answer from Ollama or Qdrant (their own probes say so) nothing is
 * compared, and what was found stands. One comparison runs at a time, and one slower than the probe still records
 * what it found: otherwise, with Ollama slower than `timeoutMs`, every probe asked it for an embedding.
 */
export function createVectorFit(deps: VectorFitDeps) {
  let fits = false;
  let mismatch: VectorSizeMismatch | undefined;
  let comparing: Promise<void> | undefined;
  let admitted = false;

  /** `known`: the sizes were compared (without a collection they were not, and neither fits nor differs). */
  const found = (next: VectorSizeMismatch | undefined, known = true) => {
    if (next && !mismatch) deps.log.error({ collection: deps.collection }, next.message);
    if (!next && mismatch) deps.log.info({ collection: deps.collection }, "the embedding model's vectors no longer differ");
    mismatch = next;
    fits = known && !next;
  };

  async function compare(): Promise<void> {
    const collectionSize = await deps.collectionSize();
    if (collectionSize === null) return found(undefined, false);
    const embeddingSize = await deps.embeddingSize();
    found(embeddingSize === collectionSize ? undefined : new VectorSizeMismatch(deps.collection, collectionSize, embeddingSize));
  }

  async function check(): Promise<void> {
    if (fits) return;
    comparing ??= compare()
      .catch(() => {})
      .finally(() => {
        comparing = undefined;
      });
    await beforeDeadline(comparing, deps.timeoutMs, () => new Error("no sizes in time")).catch(() => {});
    if (mismatch) throw mismatch;
  }

  return {
    /** The readiness probe (/health/ready): throws while the sizes are known to differ. */
    check,

    /**
     * Whether to take this instance into service (/health/serving): the same check until the sizes were first found
     * to fit, then nothing. A pod whose own EMBED_MODEL differs never enters service, so a rolling deploy that changes
     * it stops there. A mismatch found later, in a pod that served, arose in Ollama or Qdrant, which every replica
     * shares (a model pulled again under the name): all of them out of service would put the load balancer's 503 page
     * in front of the cached answers, sessions and feedback they still serve (probe N2).
     */
    async admit(): Promise<void> {
      if (admitted) return;
      await check();
      admitted = fits;
    },

    /** Qdrant refused a vector the model had just returned (not one cached under the model's name): they differ. */
    refused(err: VectorSizeMismatch): void {
      found(err);
    },
  };
}

export type VectorFit = ReturnType<typeof createVectorFit>;
