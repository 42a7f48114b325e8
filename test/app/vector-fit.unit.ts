import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { VectorSizeMismatch } from "../../app/src/services/qdrant.ts";
import { createVectorFit } from "../../app/src/services/vector-fit.ts";
import { capturedLog } from "../support/log.ts";

/** A vector fit over stub sizes; `sizes` is changed by each test as an operator would change the model. */
/** What Ollama and Qdrant answer for the sizes; an Error is a failed call. */
interface Sizes {
  embedding: number | Error | "slow";
  collection: number | null | Error;
}

function fitOver(sizes: Sizes) {
  const calls = { embedding: 0, collection: 0 };
  // "slow": the model's size (384), answered well after the comparison's time limit.
  const answer = <T>(value: T | Error | "slow") =>
    value === "slow" ? delay(1_500, 384 as T) : value instanceof Error ? Promise.reject(value) : Promise.resolve(value);
  const { log, lines } = capturedLog("info");
  const fit = createVectorFit({
    embeddingSize: () => {
      calls.embedding++;
      return answer(sizes.embedding);
    },
    collectionSize: () => {
      calls.collection++;
      return answer(sizes.collection);
    },
    collection: "documents",
    timeoutMs: 200,
    log,
  });
  return { fit, calls, lines };
}

test("readiness fails while the embedding model's vectors do not fit the collection, naming both keys", async () => {
  const sizes: Sizes = { embedding: 384, collection: 256 };
  const { fit, calls, lines } = fitOver(sizes);
  await assert.rejects(fit.check(), (err: Error) => {
    assert.ok(err instanceof VectorSizeMismatch);
    assert.match(err.message, /documents \(QDRANT_COLLECTION\) holds 256-dimensional .* \(EMBED_MODEL\) returns 384/);
    return true;
  });
  assert.equal(lines.filter((l) => l.includes("EMBED_MODEL")).length, 1, "the mismatch is logged once");

  sizes.embedding = new Error("ollama down");
  await assert.rejects(fit.check(), VectorSizeMismatch, "a mismatch found stands while Ollama cannot be asked");

  sizes.embedding = 256; // the model set back
  await fit.check();
  const asked = { ...calls };
  await fit.check();
  assert.deepEqual(calls, asked, "once they fit, readiness asks neither Ollama nor Qdrant again");
});

test("with no collection, or Ollama or Qdrant not answering, nothing is compared and readiness passes", {
  timeout: 5_000,
}, async () => {
  const sizes: Sizes = { embedding: 384, collection: null };
  const { fit, calls } = fitOver(sizes);
  await fit.check();
  assert.equal(calls.embedding, 0, "no collection: ingest creates it at the model's size, so no embedding is asked for");
  sizes.collection = new Error("qdrant down");
  await fit.check();
  sizes.collection = 256;
  sizes.embedding = new Error("ollama down");
  await fit.check();
  sizes.embedding = 384;
  await assert.rejects(fit.check(), VectorSizeMismatch, "compared once both answer");
});

test("an Ollama slower than the probe: readiness passes meanwhile, asks for one embedding, and keeps what it answers", {
  timeout: 5_000,
}, async () => {
  const sizes: Sizes = { embedding: "slow", collection: 256 };
  const { fit, calls } = fitOver(sizes);
  const started = performance.now();
  await fit.check(); // this check is critical, Ollama is not: a hung one must not keep a starting pod out of service
  await fit.check();
  assert.ok(performance.now() - started < 1_200, "each gave up within the comparison's time limit");
  assert.equal(calls.embedding, 1, "before, every probe asked for another embedding");
  await delay(1_300);
  await assert.rejects(fit.check(), VectorSizeMismatch, "its late answer was kept");
});

test("a mismatch found ends once the collection is gone: there is nothing to mismatch, and ingest creates it anew", async () => {
  const sizes: Sizes = { embedding: 384, collection: 256 };
  const { fit, calls } = fitOver(sizes);
  await assert.rejects(fit.check(), VectorSizeMismatch);
  sizes.collection = null; // dropped to be rebuilt for the new model
  const embeddings = calls.embedding;
  await fit.check(); // before, it failed until an ingest recreated the collection, which could then not reach the pod
  assert.equal(calls.embedding, embeddings);
  sizes.collection = 384;
  await fit.check();
});

test("a vector Qdrant refused makes readiness fail from then on, until the sizes are found to fit again", async () => {
  const sizes: Sizes = { embedding: 256, collection: 256 };
  const { fit } = fitOver(sizes);
  await fit.check(); // fits: readiness asks nothing more
  sizes.embedding = 384; // the model changed under a running pod
  await fit.check();
  fit.refused(new VectorSizeMismatch("documents", 256, 384));
  await assert.rejects(fit.check(), VectorSizeMismatch);
  sizes.embedding = 256;
  await fit.check();
});

test("out of service only until the sizes first fit: a pod whose own model differs never enters, one that served stays", async () => {
  const sizes: Sizes = { embedding: 384, collection: 256 };
  const { fit } = fitOver(sizes);
  await assert.rejects(fit.admit(), VectorSizeMismatch, "a rolling deploy that changes EMBED_MODEL stops at this pod");
  sizes.embedding = 256;
  await fit.admit();
  // Then the model is pulled again at another size under the same name: every replica sees it, and stays in service.
  sizes.embedding = 384;
  fit.refused(new VectorSizeMismatch("documents", 256, 384));
  await assert.rejects(fit.check(), VectorSizeMismatch, "readiness still says so");
  await fit.admit();
});

test("a pod that started with no collection enters service only once the sizes are found to fit", async () => {
  const sizes: Sizes = { embedding: 384, collection: null };
  const { fit } = fitOver(sizes);
  await fit.admit(); // nothing to compare yet: not kept out
  sizes.collection = 256; // created since, at another model's size
  await assert.rejects(fit.admit(), VectorSizeMismatch, "nothing had ever fit: the check still applies");
  sizes.embedding = 256;
  await fit.admit();
});
