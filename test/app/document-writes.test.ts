/**
 * A document's write to Qdrant shows in searches all at once or not at all (services/qdrant.ts publish,
 * services/documents.ts): its chunks go in pending, one batch call shows them and deletes the older ones, a failed
 * publish is sent again, and a write's generation keeps a late call from touching a later write's chunks.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Hono } from "hono";
import { loadConfig } from "../../app/src/config.ts";
import { createLogger } from "../../app/src/log.ts";
import { createDocuments } from "../../app/src/services/documents.ts";
import { type QdrantService, upsertBatches } from "../../app/src/services/qdrant.ts";
import { listen } from "../fakes/http.ts";
import { appEnv, UNUSED_URLS } from "../support/app.ts";
import { startFakes, type Fakes } from "../support/fakes.ts";
import { waitFor } from "../support/process.ts";
import { putChunks, qdrantAt } from "../support/qdrant.ts";

let fakes: Fakes;
before(async () => {
  fakes = await startFakes();
});
after(() => fakes.stop());

/**
 * What a proxy does with one call: forward it (by default, with another body if given, after `holdMs`), then answer it
 * itself (after `delayMs`).
 */
interface Verdict {
  forward?: boolean;
  body?: string;
  holdMs?: number;
  delayMs?: number;
  refuse?: { status: number; error: string };
}

/** A proxy in front of the fake Qdrant that lets `decide` refuse, rewrite or delay each call. */
async function qdrantProxy(decide: (method: string, path: string, body: string | undefined) => Verdict) {
  const proxy = new Hono();
  proxy.all("*", async (c) => {
    const body = ["GET", "HEAD"].includes(c.req.method) ? undefined : await c.req.text();
    const verdict = decide(c.req.method, c.req.path, body);
    let forwarded: Response | undefined;
    if (verdict.holdMs) await sleep(verdict.holdMs);
    if (verdict.forward !== false) {
      const url = new URL(c.req.url);
      forwarded = await fetch(`${fakes.qdrant.url}${url.pathname}${url.search}`, {
        method: c.req.method,
        headers: { "content-type": "application/json" },
        body: verdict.body ?? body,
      });
    }
    if (verdict.delayMs) await sleep(verdict.delayMs);
    if (verdict.refuse) return c.json({ status: { error: verdict.refuse.error }, time: 0 }, verdict.refuse.status as 500);
    return forwarded!;
  });
  return listen(proxy);
}

const isPublish = (method: string, path: string) => method === "POST" && path.endsWith("/points/batch");
const serverError = { status: 500, error: "Service internal error: shard failed" };
const badRequest = { status: 400, error: "Bad request: refused" };

/**
 * The documents service over `qdrant`, its store and corpus stood in for: each lease a new generation, and
 * `corpusBump` called at each bump of the corpus version, alone or with a release.
 */
function documentsOver(qdrant: QdrantService, corpusBump: () => Promise<void>, env: Record<string, string> = {}) {
  let generation = 0;
  return createDocuments({
    config: loadConfig(appEnv(UNUSED_URLS, env)),
    store: {
      busyDocuments: async () => undefined,
      upsertDocuments: async () => ({ generation: ++generation }),
      leaseDocument: async () => ({ generation: ++generation }),
      releaseDocuments: async () => {},
      releaseDocumentsAndBump: async () => {
        await corpusBump();
        return generation;
      },
    } as never,
    corpus: { bump: corpusBump, advanceTo: () => {} } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.6, 0.8]) } as never,
    qdrant,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
  });
}

/**
 * documentsOver a Qdrant service at `url` whose calls time out after 300 ms (QDRANT_TIMEOUT_MS), with a lease of 2 s
 * (REQUEST_TIMEOUT_MS + the longer of it and QDRANT_TIMEOUT_MS).
 */
function shortLeaseOver(url: string, collection: string, corpusBump: () => Promise<void> = async () => {}) {
  const qdrant = qdrantAt(url, collection, { timeoutMs: 300 });
  return { qdrant, documents: documentsOver(qdrant, corpusBump, { REQUEST_TIMEOUT_MS: "1000", QDRANT_TIMEOUT_MS: "300" }) };
}

/** 45 short documents: three publish calls (20, 20 and 5). */
const manyDocuments = Array.from({ length: 45 }, (_, i) => ({ id: `m${i}`, text: `Short document number ${i}.` }));

/** The texts searches find, in order. */
const searched = async (qdrant: QdrantService, vector = [0.6, 0.8], limit = 10) =>
  ((await qdrant.search(vector, undefined, limit)) ?? []).map((h) => h.text).sort();

/** Points of the fake's `collection` still pending (written, not yet shown), of the documents `ids` if given. */
const pendingIn = (collection: string, ids?: string[]) =>
  [...fakes.qdrant.collections.get(collection)!.points.values()].filter(
    (p) => p.payload.pending === true && (!ids || ids.includes(p.payload.document_id as string)),
  ).length;

/**
 * documentsOver `qdrant` with document `d` ingested as `text`; from then on, `atBumps` gets what searches find at each
 * bump of the corpus version.
 */
async function documentDOver(qdrant: QdrantService, text: string) {
  const atBumps: string[][] = [];
  const documents = documentsOver(qdrant, async () => void atBumps.push(await searched(qdrant)));
  await documents.ingest([{ id: "d", text }], "key:a", 0);
  atBumps.length = 0;
  return { documents, atBumps };
}

test("a re-ingest refused after its first batch landed leaves the old chunks whole, and the next one replaces them all", async () => {
  let upserts = 0;
  let refuseUpsert = Number.POSITIVE_INFINITY;
  const front = await qdrantProxy((method, path) =>
    method === "PUT" && /\/points$/.test(path) && ++upserts === refuseUpsert ? { forward: false, refuse: serverError } : {},
  );
  // Several upsert calls' worth of chunks (each call carries at most UPSERT_MAX_BYTES): the second is refused.
  const vector = Array.from({ length: 1_024 }, (_, i) => -0.012345678901234 * ((i % 7) + 1));
  const document = (text: string) =>
    Array.from({ length: 400 }, (_, chunkIndex) => ({ documentId: "d", chunkIndex, title: null, text, metadata: {}, vector }));
  const qdrant = qdrantAt(front.url, "re-ingest");
  const texts = async () => {
    const hits = await searched(qdrant, vector, 1_000);
    return [...new Set(hits)].map((text) => `${text} x${hits.filter((h) => h === text).length}`);
  };
  try {
    assert.ok(upsertBatches(document("old")).length >= 2);
    await putChunks(qdrant, document("old"), 1);
    refuseUpsert = upserts + 2;
    await assert.rejects(qdrant.upsert(document("new"), 2), /qdrant request failed: HTTP 500/);
    assert.ok(fakes.qdrant.collections.get("re-ingest")!.points.size > 400, "the first batch landed");
    // Before, the new chunks overwrote the old ones in place: searches found 338 new and 62 old.
    assert.deepEqual(await texts(), ["old x400"]);
    await qdrant.discard(["d"], 2);
    assert.equal(fakes.qdrant.collections.get("re-ingest")!.points.size, 400, "the failed write's chunks are discarded");
    await putChunks(qdrant, document("newer"), 3);
    assert.deepEqual(await texts(), ["newer x400"]);
    // Calls of an earlier write (2) or delete landing late, after its lease ended, remove none of a later write's.
    await qdrant.publish(["d"], 2);
    await qdrant.deleteChunks("d", 2);
    assert.deepEqual(await texts(), ["newer x400"]);
    assert.equal(fakes.qdrant.collections.get("re-ingest")!.points.size, 400, "the old and the failed write's chunks are gone");
  } finally {
    await front.close();
  }
});

test("an ingest's documents go to Qdrant in one upsert and are shown 20 to a publish; one refused is sent again and the write goes on", async () => {
  let upserts = 0;
  const publishes: number[] = [];
  const front = await qdrantProxy((method, path, body) => {
    if (method === "PUT" && /\/points$/.test(path)) upserts++;
    if (!isPublish(method, path)) return {};
    publishes.push(JSON.parse(body!).operations.length / 2);
    // The second publish is refused; before, each document had a publish of its own and its own upsert before it.
    return publishes.length === 2 ? { forward: false, refuse: serverError } : {};
  });
  const qdrant = qdrantAt(front.url, "many-documents");
  const documents = documentsOver(qdrant, async () => {});
  const docs = manyDocuments;
  try {
    assert.equal((await documents.ingest(docs, "key:a", 0)).length, 45);
    assert.equal(upserts, 1);
    // The documents of each publish: the second refused, sent again at once, and the write went on.
    assert.deepEqual(publishes, [20, 20, 20, 5]);
    assert.deepEqual(await searched(qdrant, [0.6, 0.8], 100), docs.map((d) => d.text).sort());
    assert.equal(pendingIn("many-documents"), 0);
  } finally {
    await front.close();
  }
});

test("a publish that times out, its tries refused: the documents of the publishes after it are discarded at once", async () => {
  // The second publish (m20-m39) is read by Qdrant after the app gave up on it; every try after it is refused for
  // good. The third (m40-m44) is never sent: no call of its documents is under way, so their chunks go at once, not
  // after the lease (2 s) that the second's may-land holds its own to.
  let publishes = 0;
  const front = await qdrantProxy((method, path) => {
    if (!isPublish(method, path)) return {};
    publishes++;
    if (publishes === 2) return { holdMs: 600 };
    return publishes > 2 ? { forward: false, refuse: badRequest } : {};
  });
  const { qdrant, documents } = shortLeaseOver(front.url, "later-publishes");
  const docs = manyDocuments;
  const last = docs.slice(40).map((d) => d.id);
  try {
    await assert.rejects(documents.ingest(docs, "key:a", 0));
    await waitFor("the unsent publish's documents discarded", async () => pendingIn("later-publishes", last) === 0, 1_000);
    // The second publish landed late: its documents are shown, and none is left pending once the tries gave up.
    await waitFor("nothing pending", async () => pendingIn("later-publishes") === 0, 4_000);
    assert.deepEqual(
      await searched(qdrant, [0.6, 0.8], 100),
      docs
        .slice(0, 40)
        .map((d) => d.text)
        .sort(),
    );
  } finally {
    await front.close();
  }
});

test("a publish that times out and lands late, every try after it refused, leaves its document's new chunks", async () => {
  // The first publish is read by Qdrant after the app gave up on it (QDRANT_TIMEOUT_MS: 300 ms); every try after it is
  // refused for good. Before, the tries' end discarded the pending chunk at once, and the late publish then deleted
  // the old one: the document had none.
  let cut = false;
  let publishes = 0;
  const front = await qdrantProxy((method, path) => {
    if (!cut || !isPublish(method, path)) return {};
    return ++publishes === 1 ? { holdMs: 600 } : { forward: false, refuse: badRequest };
  });
  const { qdrant, documents } = shortLeaseOver(front.url, "late-publish");
  try {
    await documents.ingest([{ id: "d", text: "Old text." }], "key:a", 0);
    cut = true;
    await assert.rejects(documents.ingest([{ id: "d", text: "New text." }], "key:a", 0));
    await sleep(2_500); // past the lease (2 s) after the tries gave up: a discard waiting for it has run
    assert.deepEqual(await searched(qdrant), ["New text."]);
  } finally {
    await front.close();
  }
});

test("a publish applied in part whose tries all fail leaves each document as it was or as written, and no pending chunk", async () => {
  // Qdrant applies the first publish up to the third document's set_payload, then refuses it and every try after.
  let cut = false;
  let publishes = 0;
  let deletes = 0;
  const front = await qdrantProxy((method, path, body) => {
    if (method === "POST" && path.endsWith("/points/delete")) deletes++;
    if (!cut || !isPublish(method, path)) return {};
    if (++publishes > 1) return { forward: false, refuse: serverError };
    return { body: JSON.stringify({ operations: JSON.parse(body!).operations.slice(0, 5) }), refuse: serverError };
  });
  const { qdrant, documents } = shortLeaseOver(front.url, "cut-publish");
  const docs = (tag: string) => Array.from({ length: 5 }, (_, i) => ({ id: `d${i}`, text: `${tag} text of d${i}.` }));
  try {
    await documents.ingest(docs("OLD"), "key:a", 0);
    cut = true;
    await assert.rejects(documents.ingest(docs("NEW"), "key:a", 0), { status: 502 });
    // The tries go on for the lease (REQUEST_TIMEOUT_MS + the longer of it and QDRANT_TIMEOUT_MS: 2 s); when they give
    // up, the chunks of d3 and d4, never shown, are discarded in one call. Before, they were left pending for good.
    await waitFor("the unshown documents' chunks discarded", async () => pendingIn("cut-publish") === 0, 5_000);
    assert.equal(deletes, 1);
    assert.deepEqual(await searched(qdrant, [0.6, 0.8], 50), [
      ...["NEW text of d0.", "NEW text of d1.", "NEW text of d2.", "OLD text of d2."],
      ...["OLD text of d3.", "OLD text of d4."],
    ]);
  } finally {
    await front.close();
  }
});

test("a publish Qdrant applies in part (new chunks shown, old ones kept) is sent again before the answers are invalidated", async () => {
  // Qdrant applies a batch's operations in order and stops at the first that fails: here, once, it shows the new
  // chunks and then refuses the delete of the old ones.
  let halfApply = 0;
  const front = await qdrantProxy((method, path, body) =>
    isPublish(method, path) && halfApply-- > 0
      ? { body: JSON.stringify({ operations: JSON.parse(body!).operations.slice(0, 1) }), refuse: serverError }
      : {},
  );
  const qdrant = qdrantAt(front.url, "half-published");
  try {
    const { documents, atBumps } = await documentDOver(qdrant, "Old text.");
    halfApply = 1;
    // Sent again at once, it lands: the write goes on to its 201.
    assert.equal((await documents.ingest([{ id: "d", text: "New text." }], "key:a", 0)).length, 1);
    // Before, the write was taken as changing nothing: no bump, and the new chunk stayed shown beside the old one.
    assert.deepEqual(await searched(qdrant), ["New text."]);
    assert.deepEqual(atBumps, [["New text."]], "invalidated once the document shows one write, not before");
  } finally {
    await front.close();
  }
});

test("a publish sent again that lands after its deadline, its later tries refused, is followed by a bump", async () => {
  // Qdrant flapping: the publish and its first resend refused, the next applied but answered past QDRANT_TIMEOUT_MS,
  // every later one refused until the resends end with the lease (REQUEST_TIMEOUT_MS + its longer of two: 2 s).
  let publishes = 0;
  let landedAt = Number.POSITIVE_INFINITY;
  let flapping = false;
  const front = await qdrantProxy((method, path) => {
    if (!flapping || !isPublish(method, path)) return {};
    if (++publishes !== 3) return { forward: false, refuse: serverError };
    landedAt = performance.now();
    return { delayMs: 600 };
  });
  const bumps: Array<{ at: number; saw: string[] }> = [];
  const { qdrant, documents } = shortLeaseOver(
    front.url,
    "flapping",
    async () => void bumps.push({ at: performance.now(), saw: await searched(qdrant) }),
  );
  try {
    await documents.ingest([{ id: "d", text: "Old text." }], "key:a", 0);
    bumps.length = 0;
    flapping = true;
    await assert.rejects(documents.ingest([{ id: "d", text: "New text." }], "key:a", 0), { status: 502 });
    await sleep(3_000); // past the lease, the last resend, and the bump QDRANT_TIMEOUT_MS after it
    assert.deepEqual(await searched(qdrant), ["New text."]);
    const last = bumps.at(-1);
    // Before, the last bump came before the resend landed: answers cached from the old chunk outlived it.
    assert.ok(last && last.at > landedAt, `${publishes} publishes; bumps ${JSON.stringify(bumps)}; landed ${landedAt}`);
    assert.deepEqual(last.saw, ["New text."]);
  } finally {
    await front.close();
  }
});

test("a publish Qdrant refuses for good (a missing collection, a bad request) is not sent again", async () => {
  let publishes = 0;
  const front = await qdrantProxy((method, path) => {
    if (!isPublish(method, path)) return {};
    publishes++;
    return { forward: false, refuse: { status: 400, error: "Wrong input: refused" } };
  });
  const qdrant = qdrantAt(front.url, "refused-for-good");
  const documents = documentsOver(qdrant, async () => {});
  try {
    await assert.rejects(documents.ingest([{ id: "d", text: "New text." }], "key:a", 0), { status: 502 });
    await sleep(600); // past the first background resend's wait (RETRY_FIRST_MS)
    assert.equal(publishes, 1, "refused for good: sent once");
    // Not applied, so its pending chunk is discarded.
    assert.equal(fakes.qdrant.collections.get("refused-for-good")!.points.size, 0);
  } finally {
    await front.close();
  }
});

test("a delete Qdrant refuses after applying it is followed by a bump; one refused for good (a 4xx) is not", async () => {
  let verdict: Verdict = {};
  const front = await qdrantProxy((method, path) => (method === "POST" && path.endsWith("/points/delete") ? verdict : {}));
  const qdrant = qdrantAt(front.url, "deleted-then-refused");
  try {
    const { documents, atBumps } = await documentDOver(qdrant, "Doomed text.");
    verdict = { forward: false, refuse: { status: 400, error: "Bad request: fake refusal" } };
    await assert.rejects(documents.remove("d"), { status: 502 });
    assert.deepEqual(atBumps, [], "a bad request changed nothing");
    verdict = { refuse: serverError };
    await assert.rejects(documents.remove("d"), { status: 502 });
    assert.deepEqual(await searched(qdrant), [], "the delete was applied");
    // Before, a refused delete was taken as changing nothing: answers cached from the document stayed to their TTL.
    assert.deepEqual(atBumps, [[]]);
  } finally {
    await front.close();
  }
});

test("chunks stored before writes had generations stay searchable, and the document's next write or delete removes them", async () => {
  const qdrant = qdrantAt(fakes.qdrant.url, "legacy");
  const chunk = (documentId: string, text: string) => ({
    documentId,
    chunkIndex: 0,
    title: null,
    text,
    metadata: {},
    vector: [0.6, 0.8],
  });
  await putChunks(qdrant, [chunk("seed", "Seed.")]); // creates the collection as the app does
  const points = fakes.qdrant.collections.get("legacy")!.points;
  for (const [n, id] of ["a", "b"].entries()) {
    // As the release before this stored them: (document, index) ids, no generation, no pending mark.
    const pointId = `00000000-0000-0000-0000-00000000000${n}`;
    points.set(pointId, {
      id: pointId,
      vector: [0.6, 0.8],
      payload: { document_id: id, chunk_index: 0, title: null, text: `Legacy ${id}.`, metadata: {} },
    });
  }
  assert.deepEqual(await searched(qdrant), ["Legacy a.", "Legacy b.", "Seed."]);
  await putChunks(qdrant, [chunk("a", "New a.")], 5);
  await qdrant.deleteChunks("b", 6);
  assert.deepEqual(await searched(qdrant), ["New a.", "Seed."]);
  assert.equal(points.size, 2);
});
