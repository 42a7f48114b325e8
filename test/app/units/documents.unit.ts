import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../../app/src/config.ts";
import { AppError } from "../../../app/src/errors.ts";
import { createDocuments } from "../../../app/src/services/documents.ts";
import { EmbedInputTooLong } from "../../../app/src/services/ollama.ts";
import { createLogger } from "../../../app/src/log.ts";
import { appEnv, UNUSED_URLS } from "../../support/app.ts";
import { waitFor } from "../../support/process.ts";
import { capturedLog } from "../../support/log.ts";

/** An ingest's documents over stubs that do nothing but what a test gives: its store, Ollama and Qdrant. */
const documentsOver = (deps: Pick<Parameters<typeof createDocuments>[0], "config" | "store" | "ollama" | "qdrant">) =>
  createDocuments({
    corpus: { advanceTo: () => {} } as never,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
    ...deps,
  });
const twoDocuments = [
  { id: "a", text: "First." },
  { id: "b", text: "Second." },
];

test("an ingest starts no Qdrant write past its request's deadline (REQUEST_TIMEOUT_MS), and releases its documents", async () => {
  const calls: string[] = [];
  const documents = documentsOver({
    config: loadConfig(appEnv(UNUSED_URLS, { REQUEST_TIMEOUT_MS: "600", QDRANT_TIMEOUT_MS: "50" })),
    store: {
      busyDocuments: async () => undefined,
      upsertDocuments: async (_docs: unknown, _owner: string, lease: { ms: number }) => {
        calls.push(`lease ${lease.ms} ms`);
        return { generation: 1 };
      },
      releaseDocuments: async (ids: string[]) => {
        calls.push(`release ${ids.join(",")}`);
      },
    } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1, 0.2]) } as never,
    // Each checks the gate as qdrant.ts does before each of its calls.
    qdrant: {
      upsert: async (points: Array<{ documentId: string }>, _generation: number, beforeCall: () => void) => {
        beforeCall();
        calls.push(`upsert ${[...new Set(points.map((p) => p.documentId))].join(",")}`);
        await new Promise((resolve) => setTimeout(resolve, 700));
      },
      publish: async (ids: string[], _generation: number, beforeCall: () => void) => {
        beforeCall();
        calls.push(`publish ${ids.join(",")}`);
      },
      discard: async (ids: string[]) => {
        calls.push(`discard ${ids.join(",")}`);
      },
    } as never,
  });
  await assert.rejects(documents.ingest(twoDocuments, "key:a", 0), { status: 504, type: "document_write_timeout" });
  // The lease (REQUEST_TIMEOUT_MS + the longer of it and QDRANT_TIMEOUT_MS) outlasts the last write started in time.
  // The upsert ended past the deadline: the publish is not sent, and the pending chunks go. Nothing was shown: the
  // documents are given back without a corpus bump.
  assert.deepEqual(calls, ["lease 1200 ms", "upsert a,b", "discard a,b", "release a,b"]);
});

test("an ingest whose deadline passes between two publish calls discards the documents not yet shown, and bumps for those shown", async () => {
  const calls: string[] = [];
  const count = (ids: string[]) => `${ids[0]}..${ids.at(-1)} (${ids.length})`;
  const documents = documentsOver({
    config: loadConfig(appEnv(UNUSED_URLS, { REQUEST_TIMEOUT_MS: "300", QDRANT_TIMEOUT_MS: "50" })),
    store: {
      busyDocuments: async () => undefined,
      upsertDocuments: async () => ({ generation: 1 }),
      releaseDocuments: async (ids: string[]) => void calls.push(`release ${count(ids)}`),
      releaseDocumentsAndBump: async (ids: string[]) => {
        calls.push(`release and bump ${count(ids)}`);
        return 2;
      },
    } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1, 0.2]) } as never,
    qdrant: {
      upsert: async (_points: unknown, _generation: number, beforeCall: () => void) => beforeCall(),
      // The first publish ends past the deadline: the second is not sent.
      publish: async (ids: string[], _generation: number, beforeCall: () => void) => {
        beforeCall();
        calls.push(`publish ${count(ids)}`);
        await new Promise((resolve) => setTimeout(resolve, 400));
      },
      discard: async (ids: string[]) => void calls.push(`discard ${count(ids)}`),
    } as never,
  });
  const docs = Array.from({ length: 25 }, (_, i) => ({ id: `m${i}`, text: `Document ${i}.` }));
  await assert.rejects(documents.ingest(docs, "key:a", 0), { status: 504, type: "document_write_timeout" });
  assert.deepEqual(calls, ["publish m0..m19 (20)", "discard m20..m24 (5)", "release and bump m0..m24 (25)"]);
});

test("an ingest whose chunks were embedded in calls of their own, at different sizes, is a 502 and writes nothing", async () => {
  const written: string[] = [];
  let calls = 0;
  const documents = documentsOver({
    config: loadConfig(appEnv(UNUSED_URLS)),
    store: {
      busyDocuments: async () => undefined,
      upsertDocuments: async () => {
        written.push("record");
        return { generation: 1 };
      },
    } as never,
    // The batch is refused for a chunk too long for the model's window; each chunk is then embedded alone.
    ollama: {
      embed: async (texts: string[]) => {
        if (calls++ === 0) throw new EmbedInputTooLong();
        return texts.map(() => (calls === 2 ? [0.1, 0.2] : [0.1]));
      },
    } as never,
    qdrant: {
      upsert: async () => {
        written.push("points");
      },
    } as never,
  });
  await assert.rejects(documents.ingest(twoDocuments, "key:a", 0), {
    status: 502,
    message: "ollama request failed: embeddings that are not vectors of finite numbers, all of one size",
  });
  assert.equal(calls, 3);
  assert.deepEqual(written, []);
});

test("document leases come back after Postgres refused the release, and after a lease statement of unknown outcome", async () => {
  // DB_QUERY_TIMEOUT_MS 50: Postgres' statement_timeout for the app is 500 ms.
  const config = loadConfig(appEnv(UNUSED_URLS, { DB_QUERY_TIMEOUT_MS: "50" }));
  const releases: number[] = [];
  let refuseReleases = 0;
  const started = Date.now();
  const documents = createDocuments({
    config,
    store: {
      // The statement went out and its answer did not come back in time: it may commit later.
      leaseDocument: async () => {
        throw new AppError("postgres_unavailable", "postgres unavailable: no answer within 50 ms");
      },
      busyDocuments: async () => undefined,
      upsertDocuments: async () => ({ generation: 1 }),
      releaseDocuments: async () => {
        releases.push(Date.now() - started);
        if (refuseReleases-- > 0) throw new AppError("postgres_unavailable", "postgres unavailable: ECONNREFUSED");
      },
    } as never,
    corpus: { bump: async () => {} } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1]) } as never,
    qdrant: {
      upsert: async () => {
        throw new AppError("qdrant_error", "qdrant request failed: HTTP 500");
      },
      discard: async () => {},
    } as never,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
  });

  await assert.rejects(documents.remove("a"), { status: 503 });
  assert.equal(releases.length, 1, "given back at once, in case the lease committed already");
  await waitFor("the second release", async () => releases.length === 2, 2_000);
  assert.ok(releases[1]! >= 500, `given back again once statement_timeout ended the statement: at ${releases[1]} ms`);

  // A failed write whose release Postgres refuses twice: retried in the background until it is taken.
  releases.length = 0;
  refuseReleases = 2;
  await assert.rejects(documents.ingest([{ id: "b", text: "Second." }], "key:a", 0), { status: 502 });
  await waitFor("the release taken", async () => releases.length === 3, 3_000);
});

test("a write holds its documents until a Qdrant call started at its deadline has ended, however long that call may take", async () => {
  const leases: number[] = [];
  for (const [request, qdrant] of [
    ["60000", "5000"],
    ["1000", "5000"],
  ]) {
    const documents = createDocuments({
      config: loadConfig(appEnv(UNUSED_URLS, { REQUEST_TIMEOUT_MS: request!, QDRANT_TIMEOUT_MS: qdrant! })),
      store: {
        leaseDocument: async (_id: string, lease: { ms: number }) => {
          leases.push(lease.ms);
          return "missing";
        },
      } as never,
      corpus: {} as never,
      ollama: {} as never,
      qdrant: {} as never,
      vectorFit: { refused: () => {} },
      log: createLogger("silent"),
    });
    assert.equal(await documents.remove("a"), false);
  }
  assert.deepEqual(leases, [120_000, 6_000]);
});

test("a written ingest whose release and corpus bump Postgres refuses answers 503, and both go on in the background", async () => {
  const refused = new AppError("postgres_unavailable", "postgres unavailable: ECONNREFUSED");
  let refusing = true;
  const versions: number[] = [];
  const documents = createDocuments({
    config: loadConfig(appEnv(UNUSED_URLS, { DB_QUERY_TIMEOUT_MS: "300" })),
    store: {
      busyDocuments: async () => undefined,
      upsertDocuments: async () => ({ generation: 1 }),
      releaseDocumentsAndBump: async () => {
        if (refusing) throw refused;
        return 7;
      },
    } as never,
    corpus: { advanceTo: (version: number) => versions.push(version) } as never,
    ollama: { embed: async (texts: string[]) => texts.map(() => [0.1]) } as never,
    qdrant: { upsert: async () => {}, publish: async () => {}, discard: async () => {} } as never,
    vectorFit: { refused: () => {} },
    log: createLogger("silent"),
  });
  await assert.rejects(documents.ingest([{ id: "a", text: "First." }], "key:a", 0), refused);
  refusing = false;
  await waitFor("the release and bump taken in the background", async () => versions.length === 1, 3_000);
  assert.deepEqual(versions, [7], "the bumped version taken by this replica at once");
});

test("in a long outage at most 64 lease releases are retried at once; the others are left to expire", async () => {
  const { log, lines: warnings } = capturedLog("warn");
  let attempts = 0;
  const refused = async () => {
    attempts++;
    throw new AppError("postgres_unavailable", "postgres unavailable: ECONNREFUSED");
  };
  const documents = createDocuments({
    config: loadConfig(appEnv(UNUSED_URLS)),
    // A delete Qdrant answers 500 may have been applied: its document is given back with a bump.
    store: { leaseDocument: async () => ({ generation: 1 }), releaseDocumentsAndBump: refused } as never,
    corpus: {} as never,
    ollama: {} as never,
    qdrant: {
      deleteChunks: async () => {
        throw new AppError("qdrant_error", "qdrant request failed: HTTP 500");
      },
    } as never,
    vectorFit: { refused: () => {} },
    log,
  });
  for (let i = 0; i < 70; i++) await assert.rejects(documents.remove(`doc-${i}`), { status: 502 });
  assert.equal(attempts, 70);
  assert.equal(warnings.length, 6, "past the bound a release is not retried");
  await waitFor("the first retries", async () => attempts === 70 + 64, 2_000);
});
