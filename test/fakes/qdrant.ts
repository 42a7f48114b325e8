import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { listen, sleep, Timings, type Knobs, type Listening } from "./http.ts";
import { matches, score, type Filter, type PointId, type StoredPoint } from "./qdrant-filter.ts";

export interface FakeQdrantOptions {
  port?: number;
  /** When set, requests must carry it in the `api-key` header (or as a bearer token). */
  apiKey?: string;
  latencyMs?: number;
}

interface Collection {
  size: number;
  distance: string;
  /** As sent at creation (Qdrant's defaults: 1). */
  replicationFactor: number;
  writeConsistencyFactor: number;
  points: Map<string, StoredPoint>;
  payloadSchema: Map<string, string>;
  snapshots: Array<{ name: string; creation_time: string; size: number; checksum: string }>;
}

export interface QdrantKnobs extends Knobs {
  /**
   * How long a query's search takes, within the request's `timeout` (seconds; 60 when absent, v1.15.5
   * shared_storage_config.rs DEFAULT_SEARCH_TIMEOUT), past which it stops and answers 408 (local_shard/search.rs,
   * actix/helpers.rs). A client leaving does not stop it: actix-web 4.11 runs a handler on after its client has gone
   * (actix/actix-web#3462, open).
   */
  searchMs: number;
  /**
   * How long a points write (upsert, delete) takes once its body is read, before it is applied. Its client leaving
   * meanwhile does not stop it, for the same reason.
   */
  writeMs: number;
}

export interface FakeQdrant extends Listening {
  knobs: QdrantKnobs;
  /** Searches running now, whether or not their client is still there. */
  searching(): number;
  collections: Map<string, Collection>;
  calls: Record<string, number>;
  /** Bytes of payload sent back by queries, as JSON. */
  queried: { payloadBytes: number };
  timings: Timings;
}

/** Each request's start time, for the `time` field of Qdrant's envelope. */
type FakeEnv = { Variables: { started: number } };

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const validId = (id: unknown): id is PointId =>
  (typeof id === "number" && Number.isInteger(id) && id >= 0) || (typeof id === "string" && UUID.test(id));

/**
 * `with_payload`: true (all), an array of fields, or `{include}` / `{exclude}` (v1.15.5 lib/segment/src/types.rs
 * WithPayloadInterface); top-level keys only, which is all the app names.
 */
function selectPayload(payload: Record<string, unknown>, selector: unknown): Record<string, unknown> {
  const pick = (keep: (key: string) => boolean) => Object.fromEntries(Object.entries(payload).filter(([k]) => keep(k)));
  if (Array.isArray(selector)) return pick((k) => selector.includes(k));
  const { include, exclude } = (typeof selector === "object" && selector) as { include?: string[]; exclude?: string[] };
  if (include) return pick((k) => include.includes(k));
  if (exclude) return pick((k) => !exclude.includes(k));
  return payload;
}

/** A small HTTP server speaking Qdrant's REST API with its `{result, status, time}` envelope and error bodies. */
const MAX_REQUEST_BYTES = 32 * 1024 * 1024;

export async function startFakeQdrant(opts: FakeQdrantOptions = {}): Promise<FakeQdrant> {
  const knobs: QdrantKnobs = { latencyMs: opts.latencyMs ?? 0, failStatus: null, searchMs: 0, writeMs: 0 };
  let searching = 0;
  const collections = new Map<string, Collection>();
  const calls: Record<string, number> = {};
  const queried = { payloadBytes: 0 };
  const timings = new Timings();
  let operationId = 0;

  const ok = (c: Context<FakeEnv>, result: unknown) =>
    c.json({ result, status: "ok", time: (performance.now() - c.get("started")) / 1000 });
  const fail = (c: Context, status: number, error: string) => c.json({ status: { error }, time: 0 }, status as 400);
  const updated = () => ({ operation_id: ++operationId, status: "completed" });
  const collectionOf = (c: Context) => collections.get(c.req.param("name")!);
  const missing = (c: Context) => fail(c, 404, `Not found: Collection \`${c.req.param("name")}\` doesn't exist!`);
  const body = async <T>(c: Context): Promise<T | null> => c.req.json<T>().catch(() => null);

  const app = new Hono<FakeEnv>();
  // service.max_request_size_mb, 32 by default (qdrant/qdrant config/config.yaml); actix-web's JSON extractor answers
  // a bigger body with a 400 in its envelope (v1.15.5 src/actix/mod.rs validation_error_handler: actix-web's
  // JsonPayloadError::OverflowKnownLength, whose text this is).
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_REQUEST_BYTES,
      onError: (c) =>
        fail(
          c,
          400,
          `JSON payload (${c.req.header("content-length")} bytes) is larger than allowed (limit: ${MAX_REQUEST_BYTES} bytes).`,
        ),
    }),
  );
  app.use("*", async (c, next) => {
    const started = performance.now();
    c.set("started", started);
    const route = c.req.path.replace(/^\/collections\/[^/]+/, "/collections/:name");
    calls[route] = (calls[route] ?? 0) + 1;
    if (opts.apiKey) {
      const given = c.req.header("api-key") ?? c.req.header("authorization")?.replace(/^Bearer /, "");
      if (given !== opts.apiKey) return c.text("Must provide an API key or an Authorization bearer token", 401);
    }
    if (knobs.latencyMs > 0) await sleep(knobs.latencyMs);
    if (knobs.failStatus !== null) return fail(c, knobs.failStatus, "Service internal error: fake failure");
    await next();
    timings.add(route, performance.now() - started);
  });

  app.get("/", (c) => c.json({ title: "qdrant - vector search engine", version: "1.15.0", commit: "fake" }));
  app.get("/healthz", (c) => c.text("healthz check passed"));
  app.get("/livez", (c) => c.text("healthz check passed"));
  app.get("/readyz", (c) => c.text("all shards are ready"));

  app.get("/collections", (c) => ok(c, { collections: [...collections.keys()].map((name) => ({ name })) }));

  app.get("/collections/:name/exists", (c) => ok(c, { exists: collections.has(c.req.param("name")) }));

  app.get("/collections/:name", (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    return ok(c, {
      status: "green",
      optimizer_status: "ok",
      points_count: col.points.size,
      indexed_vectors_count: 0,
      segments_count: 1,
      config: {
        params: {
          vectors: { size: col.size, distance: col.distance },
          shard_number: 1,
          replication_factor: col.replicationFactor,
          write_consistency_factor: col.writeConsistencyFactor,
          on_disk_payload: true,
        },
        hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
        optimizer_config: {
          deleted_threshold: 0.2,
          vacuum_min_vector_number: 1000,
          default_segment_number: 0,
          flush_interval_sec: 5,
        },
        wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
      },
      payload_schema: Object.fromEntries(
        [...col.payloadSchema].map(([field, type]) => [field, { data_type: type, params: { type }, points: col.points.size }]),
      ),
    });
  });

  app.put("/collections/:name", async (c) => {
    const name = c.req.param("name");
    const req = await body<{
      vectors?: { size?: number; distance?: string };
      replication_factor?: unknown;
      write_consistency_factor?: unknown;
    }>(c);
    const size = req?.vectors?.size;
    const distance = req?.vectors?.distance;
    if (!Number.isInteger(size) || (size as number) < 1 || !["Cosine", "Dot", "Euclid", "Manhattan"].includes(distance ?? "")) {
      return fail(c, 400, "Wrong input: vectors must be {size: positive integer, distance: Cosine|Dot|Euclid|Manhattan}");
    }
    // Optional unsigned integers, minimum 1, default 1 (api.qdrant.tech create-collection).
    const factors = {
      replication_factor: req?.replication_factor ?? 1,
      write_consistency_factor: req?.write_consistency_factor ?? 1,
    };
    for (const [field, v] of Object.entries(factors)) {
      if (!Number.isInteger(v) || (v as number) < 1)
        return fail(c, 400, `Validation error in JSON body: [${field}: value ${JSON.stringify(v)} invalid, must be 1 or larger]`);
    }
    if (collections.has(name)) return fail(c, 409, `Wrong input: Collection \`${name}\` already exists!`);
    collections.set(name, {
      size: size as number,
      distance: distance!,
      replicationFactor: factors.replication_factor as number,
      writeConsistencyFactor: factors.write_consistency_factor as number,
      points: new Map(),
      payloadSchema: new Map(),
      snapshots: [],
    });
    return ok(c, true);
  });

  app.delete("/collections/:name", (c) => ok(c, collections.delete(c.req.param("name"))));

  app.put("/collections/:name/index", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = await body<{ field_name?: string; field_schema?: string | { type: string } }>(c);
    if (!req?.field_name || !req.field_schema) return fail(c, 400, "Wrong input: field_name and field_schema are required");
    col.payloadSchema.set(req.field_name, typeof req.field_schema === "string" ? req.field_schema : req.field_schema.type);
    return ok(c, updated());
  });

  app.put("/collections/:name/points", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = await body<{ points?: Array<{ id: unknown; vector: unknown; payload?: Record<string, unknown> }> }>(c);
    if (!req || !Array.isArray(req.points)) return fail(c, 400, "Format error in JSON body: expected `points` list");
    if (knobs.writeMs > 0) await sleep(knobs.writeMs);
    for (const p of req.points) {
      if (!validId(p.id))
        return fail(
          c,
          400,
          `Format error in JSON body: value ${JSON.stringify(p.id)} is not a valid point ID, valid values are either an unsigned integer or a UUID`,
        );
      if (!Array.isArray(p.vector) || p.vector.length !== col.size) {
        return fail(
          c,
          400,
          `Wrong input: Vector dimension error: expected dim: ${col.size}, got ${Array.isArray(p.vector) ? p.vector.length : 0}`,
        );
      }
    }
    for (const p of req.points) {
      col.points.set(String(p.id), { id: p.id as PointId, vector: p.vector as number[], payload: p.payload ?? {} });
    }
    return ok(c, updated());
  });

  const select = (col: Collection, filter: Filter | undefined) => [...col.points.values()].filter((p) => matches(filter, p));

  /** A PointsSelector (`points` or `filter`) or SetPayload's own pair: the ids of the stored points it names. */
  type Selector = { points?: PointId[] | null; filter?: Filter | null };
  const selected = (col: Collection, { points, filter }: Selector) =>
    points ? points.map(String).filter((id) => col.points.has(id)) : select(col, filter ?? undefined).map((p) => String(p.id));
  const deletePoints = (col: Collection, selector: Selector) => {
    for (const id of selected(col, selector)) col.points.delete(id);
  };
  /** set_payload: the given keys are set and the others kept (overwrite_payload would replace them all). */
  const setPayload = (col: Collection, { payload, ...selector }: Selector & { payload: Record<string, unknown> }) => {
    for (const id of selected(col, selector)) Object.assign(col.points.get(id)!.payload, payload);
  };
  const selects = (x: Selector | undefined) => Boolean(x && (x.points || x.filter));

  app.post("/collections/:name/points/delete", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = await body<Selector>(c);
    if (!req || !selects(req)) return fail(c, 400, "Format error in JSON body: expected `points` or `filter`");
    if (knobs.writeMs > 0) await sleep(knobs.writeMs);
    deletePoints(col, req);
    return ok(c, updated());
  });

  // UpdateOperations (v1.15.5 openapi.json): the whole body is parsed before any operation runs, then each is applied
  // in order (src/common/update.rs do_batch_update_points), answered with one UpdateResult each. The fake knows the
  // two kinds the app sends.
  type Operation = { delete?: Selector; set_payload?: Selector & { payload?: Record<string, unknown> } };
  app.post("/collections/:name/points/batch", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = await body<{ operations?: Operation[] }>(c);
    const valid = (op: Operation) =>
      Object.keys(op).length === 1 &&
      (op.delete ? selects(op.delete) : Boolean(op.set_payload?.payload && selects(op.set_payload)));
    if (!req || !Array.isArray(req.operations) || !req.operations.every(valid)) {
      return fail(c, 400, "Format error in JSON body: data did not match any variant of untagged enum UpdateOperation");
    }
    if (knobs.writeMs > 0) await sleep(knobs.writeMs);
    for (const op of req.operations) {
      if (op.delete) deletePoints(col, op.delete);
      else setPayload(col, op.set_payload as Selector & { payload: Record<string, unknown> });
    }
    return ok(
      c,
      req.operations.map(() => updated()),
    );
  });

  const shape = (p: StoredPoint, withPayload: unknown, withVector: unknown) => ({
    id: p.id,
    version: 1,
    ...(withPayload ? { payload: selectPayload(p.payload, withPayload) } : {}),
    ...(withVector ? { vector: p.vector } : {}),
  });

  app.post("/collections/:name/points/query", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = await body<{
      query?: unknown;
      filter?: Filter;
      limit?: number;
      offset?: number;
      with_payload?: unknown;
      with_vector?: unknown;
      score_threshold?: number;
    }>(c);
    if (!req) return fail(c, 400, "Format error in JSON body");
    // read_params.rs: `timeout` is a NonZeroU64 of seconds; anything else fails the query string's parsing.
    const timeout = c.req.query("timeout") ?? "60";
    if (!/^[1-9]\d*$/.test(timeout)) return fail(c, 400, `Query deserialize error: invalid timeout ${timeout}`);
    if (knobs.searchMs > 0) {
      const timeoutMs = Number(timeout) * 1000;
      searching++;
      await sleep(Math.min(knobs.searchMs, timeoutMs)).finally(() => searching--);
      if (knobs.searchMs > timeoutMs) {
        return fail(c, 408, `Timeout: Timeout error: Operation 'Search' timed out after ${timeout} seconds`);
      }
    }
    const limit = req.limit ?? 10;
    const offset = req.offset ?? 0;
    let candidates: StoredPoint[];
    try {
      candidates = select(col, req.filter);
    } catch (err) {
      return fail(c, 400, `Format error in JSON body: ${(err as Error).message}`);
    }
    if (req.query === undefined) {
      const points = candidates
        .slice(offset, offset + limit)
        .map((p) => ({ ...shape(p, req.with_payload, req.with_vector), score: 0 }));
      return ok(c, { points });
    }
    const vector = req.query;
    if (!Array.isArray(vector) || vector.length !== col.size) {
      return fail(
        c,
        400,
        `Wrong input: Vector dimension error: expected dim: ${col.size}, got ${Array.isArray(vector) ? vector.length : 0}`,
      );
    }
    const ascending = col.distance === "Euclid" || col.distance === "Manhattan";
    const points = candidates
      .map((p) => ({ p, s: score(col.distance, vector as number[], p.vector) }))
      .filter(({ s }) => req.score_threshold === undefined || (ascending ? s <= req.score_threshold : s >= req.score_threshold))
      .sort((a, b) => (ascending ? a.s - b.s : b.s - a.s))
      .slice(offset, offset + limit)
      .map(({ p, s }) => ({ ...shape(p, req.with_payload, req.with_vector), score: s }));
    for (const p of points) queried.payloadBytes += JSON.stringify(p.payload ?? null).length;
    return ok(c, { points });
  });

  app.post("/collections/:name/points/scroll", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = (await body<{ filter?: Filter; limit?: number; with_payload?: unknown; with_vector?: unknown }>(c)) ?? {};
    const points = select(col, req.filter)
      .slice(0, req.limit ?? 10)
      .map((p) => shape(p, req.with_payload ?? true, req.with_vector));
    return ok(c, { points, next_page_offset: null });
  });

  app.post("/collections/:name/points/count", async (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const req = (await body<{ filter?: Filter }>(c)) ?? {};
    return ok(c, { count: select(col, req.filter).length });
  });

  app.post("/collections/:name/snapshots", (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    const snapshot = {
      name: `${c.req.param("name")}-${Date.now()}.snapshot`,
      creation_time: new Date().toISOString(),
      size: col.points.size * 1024,
      checksum: "0".repeat(64),
    };
    col.snapshots.push(snapshot);
    return ok(c, snapshot);
  });

  app.get("/collections/:name/snapshots", (c) => {
    const col = collectionOf(c);
    if (!col) return missing(c);
    return ok(c, col.snapshots);
  });

  app.notFound((c) => fail(c, 404, `Not found: ${c.req.path}`));
  const server = await listen(app as unknown as Hono, opts.port);
  return { ...server, knobs, searching: () => searching, collections, calls, queried, timings };
}
