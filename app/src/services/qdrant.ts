import { QdrantClient, type Schemas } from "@qdrant/js-client-rest";
import { request } from "undici";
import { RequestDeadline } from "../deadline.ts";
import { upstreamAgent } from "./upstream-fetch.ts";
import {
  AppError,
  dependencyUnavailable,
  isAbortError,
  noAnswer,
  treatAsSecret,
  upstreamFailure,
  upstreamTimeout,
} from "../errors.ts";
import type { Logger } from "../log.ts";
import { timeTool, type Metrics } from "../metrics.ts";
import { sha256 } from "../sha256.ts";
import { storable } from "../text.ts";

export type FilterValue = string | number | boolean;
export type MetadataFilter = Record<string, FilterValue | Array<string | number>>;

export interface ChunkPoint {
  documentId: string;
  chunkIndex: number;
  title: string | null;
  text: string;
  metadata: Record<string, unknown>;
  vector: number[];
}

export interface ChunkHit {
  documentId: string;
  score: number;
  title: string | null;
  text: string;
}

type PayloadSchema = "keyword" | "integer" | "float" | "bool";

/** Metadata lives under payload.metadata; a filter `{lang: "en", tag: ["a", "b"]}` must match every key. */
export function toQdrantFilter(filter: MetadataFilter | undefined) {
  const entries = Object.entries(filter ?? {});
  if (entries.length === 0) return undefined;
  return {
    must: entries.map(([key, value]) =>
      Array.isArray(value)
        ? { key: `metadata.${key}`, match: { any: value as string[] } }
        : { key: `metadata.${key}`, match: { value } },
    ),
  };
}

/**
 * Qdrant point ids are UUIDs or integers. A chunk's id is derived from (document, write, index): a re-ingest writes its
 * chunks beside the old ones instead of over them, so a re-ingest that fails leaves the old ones whole (`publish`).
 */
export function chunkPointId(documentId: string, generation: number, chunkIndex: number): string {
  const h = sha256(`${documentId}\u0000${generation}\u0000${chunkIndex}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function payloadSchemaOf(value: unknown): PayloadSchema | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v === "string") return "keyword";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "float";
  return undefined;
}

/**
 * Bytes of points one upsert call carries at most. Qdrant refuses a body over `service.max_request_size_mb` (32 MiB by
 * default, qdrant/qdrant config/config.yaml) with a 400, and a document's points were one call: a 1 MB text with 32 kB
 * of metadata, copied into each of its 900 chunks, was a 34 MB body, a 502. A call's body is written in one go, and
 * at 8 MiB (about 440 points of 768 floats) its JSON and its bytes held the event loop 90-120 ms: 1 MiB holds it
 * about 12 ms, for a round trip per 50 such points.
 */
export const UPSERT_MAX_BYTES = 1024 * 1024;

/** How long the collection's vector size, once read, is taken as it was (ensureCollection). */
const FIT_RECHECK_MS = 1_000;

/**
 * The payload fields a search hit is read for (an array: Qdrant v1.15.5 lib/segment/src/types.rs WithPayloadInterface
 * Fields, an untagged variant beside a boolean and an include/exclude selector).
 */
const HIT_FIELDS = ["document_id", "title", "text"];

/** The most a float takes in JSON (`-0.012345678901234567`, `1.2345678901234567e-10`). */
const FLOAT_JSON_BYTES = 24;

/**
 * The points in runs of at most `maxBytes` of JSON each (estimated from above; a point bigger than that alone), in
 * order. A document's chunks share one metadata object, measured once.
 */
export function upsertBatches(points: ChunkPoint[], maxBytes = UPSERT_MAX_BYTES): ChunkPoint[][] {
  const metadataBytes = new Map<object, number>();
  const sizeOf = (p: ChunkPoint) => {
    let metadata = metadataBytes.get(p.metadata);
    if (metadata === undefined) metadataBytes.set(p.metadata, (metadata = Buffer.byteLength(JSON.stringify(p.metadata))));
    // 200: the point's id, field names and punctuation. Text as JSON: a control character is six bytes there.
    const text = Buffer.byteLength(JSON.stringify(p.text)) + Buffer.byteLength(JSON.stringify(p.title));
    return 200 + metadata + p.vector.length * FLOAT_JSON_BYTES + text;
  };
  const batches: ChunkPoint[][] = [];
  let batch: ChunkPoint[] = [];
  let bytes = 0;
  for (const point of points) {
    const size = sizeOf(point);
    if (batch.length > 0 && bytes + size > maxBytes) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(point);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** An answer other than 200 from Qdrant, shaped as the client's ApiError (openapi-typescript-fetch): status and body. */
class QdrantStatusError extends Error {
  constructor(
    readonly status: number,
    readonly data: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

/** Qdrant answered the call with an error status: a write it refused was not applied. */
class QdrantRefused extends AppError {}

/**
 * Qdrant answered that the collection does not exist (a lost volume, a deleted or not yet restored collection). Its
 * data cannot come back from here, but the app can go on without it.
 */
class CollectionMissing extends QdrantRefused {}

/**
 * Qdrant's reason for a collection that does not exist: StorageError::NotFound, "Not found: Collection `name` doesn't
 * exist!" (qdrant lib/storage, toc validate_collection_exists). Any other 404 (a proxy's page, a path it does not
 * route) is a failed call: read as a missing collection, a delete was acknowledged with its chunks still searchable.
 */
const NO_COLLECTION = /^Not found: Collection `[^`]*` doesn't exist!/;

/**
 * The collection's vectors are of another size than the one sent: the embedding model changed (another EMBED_MODEL, or
 * another model loaded under its name) over a collection built with the old one.
 */
export class VectorSizeMismatch extends AppError {
  constructor(
    readonly collection: string,
    readonly collectionSize: number,
    readonly vectorSize: number,
  ) {
    super(
      "config_error",
      `collection ${collection} (QDRANT_COLLECTION) holds ${collectionSize}-dimensional vectors but the embedding ` +
        `model (EMBED_MODEL) returns ${vectorSize}: set EMBED_MODEL back, or ingest into a new QDRANT_COLLECTION`,
    );
  }
}

/**
 * Qdrant's refusal of a vector of another size: StorageError::BadInput ("Wrong input: ") around OperationError::
 * WrongVector, "Vector dimension error: expected dim: {expected_dim}, got {received_dim}" (qdrant lib/segment
 * common/operation_error.rs), a 400 on searches and upserts alike.
 */
const WRONG_VECTOR_SIZE = /^Wrong input: Vector dimension error: expected dim: (\d+), got (\d+)/;

/** Failures of point writes (upsert, delete) that timed out or broke off after they were sent. */
const unknownOutcomes = new WeakSet<AppError>();

/**
 * Whether Qdrant may still apply a points write whose call failed: it timed out or broke off after it was sent, and
 * Qdrant applies a write it has read though its client left (actix-web does not cancel a handler on disconnect,
 * actix/actix-web#3462). A refused call, one that reached no server, or a failed read changed nothing.
 */
export const writeMayLand = (err: unknown): boolean => err instanceof AppError && unknownOutcomes.has(err);

/** Called before each call of a write: throws when no further call may start (its documents' lease would not cover it). */
export type BeforeCall = () => void;

/** Refusals a retry would meet again: Qdrant answered 4xx (a bad request, a missing collection), not busy or failing. */
const settledRefusals = new WeakSet<AppError>();

/** Whether Qdrant refused the call for a reason a retry meets again (see settledRefusals). */
export const retryCannotHelp = (err: unknown): boolean => err instanceof AppError && settledRefusals.has(err);

function toAppError(err: unknown, timeoutMs: number, collection: string): AppError {
  if (err instanceof AppError) return err;
  if (isAbortError(err) || (err instanceof Error && err.name === "QdrantClientTimeoutError")) {
    return upstreamTimeout("qdrant", timeoutMs);
  }
  const { status, data } = err as { status?: unknown; data?: { status?: { error?: unknown } } };
  if (typeof status === "number") {
    const failure = answeredToAppError(status, data?.status?.error, collection);
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) settledRefusals.add(failure);
    return failure;
  }
  return noAnswer("qdrant", err);
}

/** An answer other than 200 as the app's error; `reason` is Qdrant's `status.error` (api.qdrant.tech error responses). */
function answeredToAppError(status: number, reason: unknown, collection: string): AppError {
  const answered = `HTTP ${status}${typeof reason === "string" ? `: ${reason}` : ""}`;
  const failure = upstreamFailure("qdrant", answered);
  if (status === 404 && typeof reason === "string" && NO_COLLECTION.test(reason))
    return new CollectionMissing(failure.type, failure.message);
  const sizes = status === 400 && typeof reason === "string" ? WRONG_VECTOR_SIZE.exec(reason) : null;
  if (sizes) return new VectorSizeMismatch(collection, Number(sizes[1]), Number(sizes[2]));
  // Busy or restarting (or a proxy that cannot reach it), or over strict mode's rate limit (429): a 503 to retry
  // later, as Ollama's is (a 429 was a 502, probe BP).
  if (status === 503 || status === 429) {
    const busy = dependencyUnavailable("qdrant", answered);
    return new QdrantRefused(busy.type, busy.message, undefined, busy.headers);
  }
  // Qdrant's own search deadline (the query's `timeout`) passed: a timeout, as the app's own would be.
  if (status === 408) return new AppError("qdrant_timeout", failure.message);
  return new QdrantRefused(failure.type, failure.message);
}

export interface QdrantOptions {
  url: string;
  apiKey?: string | undefined;
  collection: string;
  /** Used only when the app creates the collection: Qdrant `replication_factor` and `write_consistency_factor`. */
  replicationFactor: number;
  writeConsistencyFactor: number;
  timeoutMs: number;
  /** QDRANT_METADATA_INDEX_LIMIT: metadata keys with a payload index, at most, in the whole collection. */
  metadataIndexLimit: number;
  metrics: Metrics;
  log: Logger;
}

const METADATA_PREFIX = "metadata.";

/** The calls that change points: one failing unanswered may still be applied (writeMayLand). */
const POINT_WRITES = new Set(["qdrant_upsert", "qdrant_publish", "qdrant_delete"]);

/**
 * A point write sent with `wait: true` is answered `completed` once applied (api.qdrant.tech, UpdateResult's
 * UpdateStatus: "acknowledged" is queued, not applied). Another status leaves the outcome unknown, as a write left
 * unanswered does: a 200 saying "acknowledged" or "error" was a 201 for chunks that were not searchable, or a delete
 * whose chunks stayed searchable (probe BP).
 */
function checkApplied(result: unknown): void {
  for (const r of [result].flat()) {
    const status = (r as { status?: unknown } | null)?.status;
    if (status !== "completed")
      throw upstreamFailure("qdrant", `point write answered ${JSON.stringify(status) ?? "without a status"}, not "completed"`);
  }
}

/**
 * A write's chunks carry `pending: true` until `publish`, and every search leaves them out (`must_not`; chunks stored
 * before this field existed have none, so they match). Indexed as a bool (v1.15.5 PayloadSchemaType).
 */
const PENDING = "pending";
/** The write a chunk is of (store.ts Leased). */
const GENERATION = "generation";
const isPending = { key: PENDING, match: { value: true } };
const ofDocument = (documentId: string) => ({ key: "document_id", match: { value: documentId } });
const ofAnyDocument = (documentIds: string[]) => ({ key: "document_id", match: { any: documentIds } });
const ofGeneration = (generation: number) => ({ key: GENERATION, match: { value: generation } });
/**
 * A document's chunks of writes before `generation`, and those from before generations (none): a write's call that
 * lands late removes none of a later write's.
 */
const olderChunksOf = (documentId: string, generation: number) => ({
  must: [ofDocument(documentId)],
  must_not: [{ key: GENERATION, range: { gte: generation } }],
});

/** js-client-rest's port for a URL that names none (qdrant-client.js, 1.19.0). */
const QDRANT_DEFAULT_PORT = 6333;

/**
 * Where QDRANT_URL points, for the client and the app's own calls (the query and the point writes) alike. js-client-rest
 * reads a URL its own way: port 6333 when it names none, its path ignored (only `prefix` is one). Read that way for the
 * client alone, the app's calls went elsewhere: `http://qdrant` passed readiness while every query and write was
 * refused at port 80, and `http://gateway/qdrant` sent them under the path and the client's calls without it. Here the
 * path is the client's `prefix`, and a port written in the URL is kept, a scheme's default too (`https://host:443`),
 * which WHATWG URL parsing drops and the client then took for none.
 */
export function qdrantBase(url: string): { host: string; port: number; prefix: string } {
  const parsed = new URL(url);
  // URL parsing takes `http:/h:1` and `http:\\h:1` for `http://h:1` too (config.ts accepts what it parses).
  const written = /^[^:]+:[/\\]*[^/\\?#]*:(\d+)(?:[/\\?#]|$)/.exec(url)?.[1];
  return {
    host: `${parsed.protocol}//${parsed.hostname}`,
    port: written === undefined ? QDRANT_DEFAULT_PORT : Number(written),
    prefix: parsed.pathname.replace(/\/+$/, ""),
  };
}

export function createQdrant(opts: QdrantOptions) {
  treatAsSecret(opts.apiKey);
  // Everything but the query and the point writes (see requestJson): the collection, its indexes and readiness, calls
  // a few a write at most. The client goes over Node's fetch and its own keep-alive undici Agent
  // (js-client-rest 1.19.0 dist/esm/dispatcher.js; no fetch or dispatcher option), timed out by its own
  // AbortController middleware (api-client.js). Its pinned undici 7.29.0 is lifted by `overrides` in package.json
  // (see ollama.ts for why).
  // The key goes as the header the client would set itself: given as `apiKey` with an http URL, the client writes a
  // plain-text warning to stderr (qdrant-client.js), the one line of the log that is not JSON. It is logged instead.
  const { host, port, prefix } = qdrantBase(opts.url);
  const client = new QdrantClient({
    url: host,
    port,
    ...(prefix ? { prefix } : {}),
    ...(opts.apiKey ? { headers: { "api-key": opts.apiKey } } : {}),
    timeout: opts.timeoutMs,
    checkCompatibility: false,
  });
  if (opts.apiKey && new URL(opts.url).protocol === "http:") {
    opts.log.warn("QDRANT_API_KEY goes over plain HTTP (QDRANT_URL is http://): keep Qdrant on the cluster's own network");
  }
  const name = opts.collection;
  // `timeout` (whole seconds, v1.15.5 actix/api/read_params.rs) ends the search in Qdrant once the app has stopped
  // waiting: without it a search runs to Qdrant's 60 s default after the client left (actix-web does not cancel a
  // handler on disconnect, actix/actix-web#3462), and an overloaded Qdrant kept searching for answers no one reads.
  const queryTimeoutS = Math.max(1, Math.ceil(opts.timeoutMs / 1000));
  const pointsUrl = `${host}:${port}${prefix}/collections/${encodeURIComponent(name)}/points`;
  const queryUrl = `${pointsUrl}/query?timeout=${queryTimeoutS}`;
  const requestHeaders = { "content-type": "application/json", ...(opts.apiKey ? { "api-key": opts.apiKey } : {}) };
  // A query answers at most DEFAULT_TOP_K's limit of chunks with three fields, a write its operations' results: far
  // below this. Undici read any size whole, and a 100 MB answer took 315 MB of a replica's memory (probe BP); past it
  // the call is a 502.
  const requestAgent = upstreamAgent({ maxResponseSize: 16 * 2 ** 20 });
  let collectionReady = false;
  const indexedFields = new Set<string>();
  /**
   * When the collection was last found to take vectors of this size (ensureCollection); cleared with the collection
   * (forgetCollection), so it is only ever set while the collection is taken to exist.
   */
  let fitted: { dimension: number; at: number } | undefined;

  const call = async <T>(tool: string, fn: () => Promise<T>, beforeCall?: BeforeCall): Promise<T> => {
    beforeCall?.();
    try {
      return await timeTool(opts.metrics, tool, async () => {
        const result = await fn();
        if (POINT_WRITES.has(tool)) checkApplied(result);
        return result;
      });
    } catch (err) {
      const failure = toAppError(err, opts.timeoutMs, name);
      if (failure instanceof CollectionMissing) forgetCollection();
      const unanswered =
        failure.type === "qdrant_timeout" || (failure.type === "qdrant_error" && !(failure instanceof QdrantRefused));
      if (POINT_WRITES.has(tool) && unanswered) unknownOutcomes.add(failure);
      throw failure;
    }
  };

  /**
   * The collection went away under a running replica: without this, every query, ingest and delete answered 502 until
   * the pod restarted, since the replica kept believing it existed. Now the next write creates it again (with its
   * indexes), queries find nothing until then, and deletes have no chunks to remove.
   */
  function forgetCollection(): void {
    if (!collectionReady) return;
    collectionReady = false;
    fitted = undefined;
    indexedFields.clear();
    opts.log.warn(
      { collection: name },
      "qdrant collection missing: the next ingest creates it again; restore its data from a snapshot (docs/restore-runbook.md)",
    );
  }

  const createIndex = async (field: string, schema: PayloadSchema, beforeCall?: BeforeCall) => {
    if (indexedFields.has(field)) return;
    await call(
      "qdrant_index",
      () => client.createPayloadIndex(name, { field_name: field, field_schema: schema, wait: true }),
      beforeCall,
    );
    indexedFields.add(field);
  };

  /**
   * Indexes the points' metadata keys that have none yet, while the collection holds fewer than the limit (Qdrant's
   * indexing guide: index only the fields filters use, as each index costs memory and disk). The count is the
   * collection's, read by ensureCollection, so replicas share it; two replicas racing may pass it by a few.
   */
  async function indexMetadata(points: ChunkPoint[], beforeCall: BeforeCall): Promise<void> {
    const skipped = new Set<string>();
    let indexed = [...indexedFields].filter((f) => f.startsWith(METADATA_PREFIX)).length;
    for (const p of points) {
      for (const [key, value] of Object.entries(p.metadata)) {
        const field = `${METADATA_PREFIX}${key}`;
        const schema = payloadSchemaOf(value);
        if (!schema || indexedFields.has(field) || skipped.has(key)) continue;
        if (indexed < opts.metadataIndexLimit) {
          await createIndex(field, schema, beforeCall);
          indexed++;
        } else skipped.add(key);
      }
    }
    if (skipped.size > 0) {
      opts.log.warn(
        { keys: [...skipped].slice(0, 10), count: skipped.size, limit: opts.metadataIndexLimit },
        "metadata keys left without a payload index: QDRANT_METADATA_INDEX_LIMIT reached (filters on them scan)",
      );
    }
  }

  async function exists(beforeCall?: BeforeCall): Promise<boolean> {
    if (collectionReady) return true;
    const res = await call("qdrant_collection", () => client.collectionExists(name), beforeCall);
    collectionReady = res.exists;
    return collectionReady;
  }

  /** GET /collections/{name} (api.qdrant.tech get-collection). */
  const collectionInfo = (beforeCall?: BeforeCall) =>
    call(
      "qdrant_collection",
      async () => {
        const got = await client.getCollection(name);
        if (typeof got?.config?.params !== "object") throw upstreamFailure("qdrant", "collection info without config.params");
        return got;
      },
      beforeCall,
    );

  /** The size of the collection's (one, unnamed) vector; undefined for named vectors, which this app does not create. */
  const vectorSizeOf = (info: Awaited<ReturnType<typeof collectionInfo>>) =>
    (info.config.params.vectors as { size?: number } | undefined)?.size;

  /**
   * Creates the collection with the embedding size on first use; refuses a collection of another size. Its info is read
   * again at most every FIT_RECHECK_MS: read for each document, an ingest of 100 short ones made 100 more calls (probe
   * CP: 300 Qdrant calls and 0.6 s of the replica's CPU for a 3.8 kB body).
   */
  async function ensureCollection(dimension: number, beforeCall: BeforeCall): Promise<void> {
    if (fitted?.dimension === dimension && performance.now() - fitted.at < FIT_RECHECK_MS) return;
    if (!(await exists(beforeCall))) {
      try {
        // PUT /collections/{name} (api.qdrant.tech create-collection): both factors default to 1, minimum 1.
        await call(
          "qdrant_collection",
          () =>
            client.createCollection(name, {
              vectors: { size: dimension, distance: "Cosine" },
              replication_factor: opts.replicationFactor,
              write_consistency_factor: opts.writeConsistencyFactor,
            }),
          beforeCall,
        );
      } catch (err) {
        // Another replica may have created it between our check and create.
        if (!(await call("qdrant_collection", () => client.collectionExists(name), beforeCall)).exists) throw err;
      }
      collectionReady = true;
    }
    const info = await collectionInfo(beforeCall);
    for (const field of Object.keys(info.payload_schema ?? {})) indexedFields.add(field);
    const size = vectorSizeOf(info);
    if (size !== undefined && size !== dimension) throw new VectorSizeMismatch(name, size, dimension);
    await createIndex("document_id", "keyword", beforeCall);
    await createIndex(PENDING, "bool", beforeCall);
    fitted = { dimension, at: performance.now() };
  }

  /**
   * `method url` with a JSON body over undici's `request`, not the client: the client sends each call through fetch
   * and parses the answer with a reviver called on every JSON value, 1.1-1.2 ms of CPU a search on this 2-core VM
   * against the same fake, 0.23-0.27 ms this way; an ingest of 100 short documents made 200 point writes so (probe CP).
   * An answer other than 200 is thrown as the client's ApiError would be (toAppError reads both). The deadline covers
   * reading the body.
   */
  async function requestJson<T>(method: "POST" | "PUT", url: string, body: unknown): Promise<T> {
    const deadline = new RequestDeadline(opts.timeoutMs);
    try {
      const res = await request(url, {
        method,
        headers: requestHeaders,
        body: JSON.stringify(body),
        signal: deadline,
        dispatcher: requestAgent,
      });
      if (res.statusCode !== 200) {
        throw new QdrantStatusError(res.statusCode, await res.body.json().catch(() => undefined));
      }
      return (await res.body.json()) as T;
    } finally {
      deadline.clear();
    }
  }

  /**
   * The query path's one call, POST /collections/{name}/points/query (api.qdrant.tech "Query points"; the answer is
   * `{result: {points}}`).
   */
  async function queryPoints(body: Schemas["QueryRequest"]): Promise<Schemas["ScoredPoint"][]> {
    const answer = await requestJson<{ status?: unknown; result?: { points?: Schemas["ScoredPoint"][] } }>(
      "POST",
      queryUrl,
      body,
    );
    // Qdrant answers 200 with `status: "ok"`; another status beside an empty list was cached as "I do not know".
    if (answer?.status !== undefined && answer.status !== "ok")
      throw upstreamFailure("qdrant", "query answered without status ok");
    const points = answer?.result?.points;
    if (!Array.isArray(points) || !points.every((p) => typeof p === "object" && p !== null && typeof p.score === "number"))
      throw upstreamFailure("qdrant", "query answer without result.points of scored points");
    return points;
  }

  /**
   * A points write, `method /collections/{name}/points{path}?wait=true` (api.qdrant.tech: upsert points, delete
   * points, batch update points): its answer's `result`, as the client gives it (an UpdateResult, or one per
   * operation), which `call` checks was applied.
   */
  async function pointsCall(method: "POST" | "PUT", path: string, body: unknown): Promise<unknown> {
    const answer = await requestJson<{ result?: unknown }>(method, `${pointsUrl}${path}?wait=true`, body);
    if (answer?.result == null) throw upstreamFailure("qdrant", "point write answered without a result");
    return answer.result;
  }

  /** Deletes the points `filter` selects (nothing when there is no collection), `beforeCall` before each call. */
  async function deleteWhere(filter: Schemas["Filter"], beforeCall?: BeforeCall): Promise<void> {
    if (!(await exists(beforeCall))) return;
    await call("qdrant_delete", () => pointsCall("POST", "/delete", { filter }), beforeCall).catch(unlessMissing(undefined));
  }

  async function writePoints(points: ChunkPoint[], generation: number, beforeCall: BeforeCall): Promise<void> {
    await ensureCollection(points[0]!.vector.length, beforeCall);
    await indexMetadata(points, beforeCall);
    for (const batch of upsertBatches(points)) {
      await call(
        "qdrant_upsert",
        () =>
          pointsCall("PUT", "", {
            points: batch.map((p) => ({
              id: chunkPointId(p.documentId, generation, p.chunkIndex),
              vector: p.vector,
              payload: {
                document_id: p.documentId,
                chunk_index: p.chunkIndex,
                title: p.title,
                text: p.text,
                metadata: p.metadata,
                [GENERATION]: generation,
                [PENDING]: true,
              },
            })),
          }),
        beforeCall,
      );
    }
  }

  /** A call's answer when the collection is missing: what a collection without points would have answered. */
  const unlessMissing =
    <T>(empty: T) =>
    (err: unknown): T => {
      if (err instanceof CollectionMissing) return empty;
      throw err;
    };

  return {
    /**
     * Writes the points as `generation`'s, pending: searches do not see them until `publish`, so an upsert failing
     * midway changes no answer. `beforeCall` runs before each of its calls (collection, indexes, points).
     */
    async upsert(points: ChunkPoint[], generation: number, beforeCall: BeforeCall = () => {}): Promise<void> {
      if (points.length === 0) return;
      try {
        await writePoints(points, generation, beforeCall);
      } catch (err) {
        if (!(err instanceof CollectionMissing)) throw err;
        await writePoints(points, generation, beforeCall); // into the collection created again
      }
    },

    /**
     * Makes `generation`'s chunks of each document searchable and deletes those of earlier writes (published, or a
     * failed one's still pending), in one call: POST /collections/{name}/points/batch (api.qdrant.tech batch-update),
     * whose operations Qdrant applies in order, ending at the first that fails (v1.15.5 src/common/update.rs
     * do_batch_update_points). A document's chunks are shown before its old ones go, so a failure between the two
     * leaves it found twice rather than not at all, until the call is sent again (documents.ts); once applied, it
     * changes nothing.
     */
    async publish(documentIds: string[], generation: number, beforeCall: BeforeCall = () => {}): Promise<void> {
      await call(
        "qdrant_publish",
        () =>
          pointsCall("POST", "/batch", {
            operations: documentIds.flatMap((documentId) => [
              {
                set_payload: {
                  payload: { [PENDING]: false },
                  filter: { must: [ofDocument(documentId), ofGeneration(generation)] },
                },
              },
              { delete: { filter: olderChunksOf(documentId, generation) } },
            ]),
          }),
        beforeCall,
      );
    },

    /** Deletes a failed write's pending chunks of the documents, in one call: no search saw them. */
    discard: (documentIds: string[], generation: number): Promise<void> =>
      deleteWhere({ must: [ofAnyDocument(documentIds), ofGeneration(generation), isPending] }),

    /** Deletes a document's chunks of writes before `generation` (the delete's own lease), pending ones included. */
    deleteChunks: (documentId: string, generation: number, beforeCall?: BeforeCall): Promise<void> =>
      deleteWhere(olderChunksOf(documentId, generation), beforeCall),

    /**
     * The nearest chunks; null when there is no collection, which holds nothing now but may be restored. Only the fields
     * a hit uses come back: with the whole payload, a document's metadata (up to 8 kB) came with each of its chunks, and
     * a query of 50 sources read 452 kB instead of 43 kB (probe AO).
     */
    async search(vector: number[], filter: MetadataFilter | undefined, limit: number): Promise<ChunkHit[] | null> {
      if (!(await exists())) return null;
      const points = await call("qdrant_query", () =>
        queryPoints({
          query: vector,
          filter: { must: toQdrantFilter(filter)?.must, must_not: [isPending] },
          limit,
          with_payload: HIT_FIELDS,
        }),
      ).catch(unlessMissing(null));
      if (points === null) return null;
      const hits: ChunkHit[] = [];
      let odd = 0;
      for (const p of points) {
        const payload = (p.payload ?? {}) as { document_id?: unknown; title?: unknown; text?: unknown };
        // A point that is not a chunk as the app stores it (another writer's, or an upstream answering oddly: text an
        // object, no document id, a score of 1e400) is left out, not answered as "[object Object]" from "undefined".
        if (typeof payload.text !== "string" || typeof payload.document_id !== "string" || !Number.isFinite(p.score)) {
          odd++;
          continue;
        }
        // Chunks stored before the edge rule (or by another writer) may hold text Postgres refuses.
        const title = typeof payload.title === "string" ? storable(payload.title) : null;
        hits.push({ documentId: payload.document_id, score: p.score, title, text: storable(payload.text) });
      }
      if (odd > 0) opts.log.warn({ collection: name, left_out: odd }, "qdrant search answered points that are not chunks");
      return hits;
    },

    /** The size of the collection's vectors; null when there is no collection (or its vectors are named). */
    async vectorSize(): Promise<number | null> {
      const info = await collectionInfo().catch(unlessMissing(null));
      return (info && vectorSizeOf(info)) ?? null;
    },

    ready: () => client.api().readyz({}),
  };
}

export type QdrantService = ReturnType<typeof createQdrant>;
