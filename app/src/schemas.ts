import { createRoute, z, type RouteConfig } from "@hono/zod-openapi";
import { isStorable, UNSTORABLE_MESSAGE } from "./text.ts";
import { ERROR_CODES, RETRY_AFTER_SECONDS } from "./errors.ts";

/** Guide 003: questions longer than this are refused. */
export const MAX_QUERY_CHARS = 5000;

/** Every free-text request field: Postgres refuses NUL and lone surrogates, so they are a 400 naming the field. */
const text = () => z.string().refine(isStorable, { error: UNSTORABLE_MESSAGE });

/** Not `.` or `..`: clients and the server's URL parser remove them as dot segments, so no path could name them. */
const idPattern = /^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,128}$/;
const idMessage = "must be 1-128 characters of letters, digits, '.', '_', ':' or '-', and not '.' or '..'";
const metadataKey = z.string().regex(/^[A-Za-z0-9_]{1,64}$/, { error: "metadata keys must be 1-64 letters, digits or '_'" });
const RESERVED_KEY = "__proto__";

/**
 * Metadata key to value, at most `maxKeys` of them (`what` names them in the error). zod's record skips a `__proto__`
 * key unseen (assigning it would replace the result's prototype), so a filter or metadata sent with one lost it
 * silently (a filter on it matched every document): it is refused instead, naming the key. The keys are counted before
 * any is checked (an issue here ends the parse): counted after, 150,000 keys in a 1.6 MiB body cost 0.3-0.4 s of
 * checks each, and 8 such bodies held the event loop 3.5 s (probe AU: other clients' statements timed out, a 503).
 */
const metadataRecord = <V extends z.ZodType>(value: V, maxKeys: number, what: string) =>
  z.preprocess(
    (input, ctx) => {
      if (input === null || typeof input !== "object" || Array.isArray(input)) return input; // z.record names it
      if (Object.keys(input).length > maxKeys)
        ctx.addIssue({ code: "custom", message: `at most ${maxKeys} ${what} keys`, input });
      else if (Object.hasOwn(input, RESERVED_KEY))
        ctx.addIssue({ code: "custom", message: `${RESERVED_KEY} is a reserved key`, path: [RESERVED_KEY], input });
      return input;
    },
    z.record(metadataKey, value),
  );

export const ErrorSchema = z
  .object({
    error: z.string().openapi({
      description: "Why, for a person: its wording may change",
      example: "invalid body: query: must be at most 5000 characters",
    }),
    code: z.enum(ERROR_CODES).openapi({
      description: "What a client branches on: one of a fixed set, each explained in app/README",
      example: "invalid_request",
    }),
    details: z.unknown().optional(),
  })
  .openapi("Error");

/** The longest metadata string alone, and in a list. */
const MAX_METADATA_STRING_CHARS = 1000;
const MAX_METADATA_LIST_STRING_CHARS = 256;

/** The most values a metadata or filter list holds. */
const MAX_LIST_VALUES = 100;
const LIST_TOO_LONG = `a list must hold at most ${MAX_LIST_VALUES} values`;

/**
 * The error of a union whose last option is a list: a list is told its own reason (too long, an item of the wrong
 * type), a value of any other shape the union's `types`. Given `types` for every failure, a list of 101 strings was
 * told it must be "a string, ... or a list of strings" (probe CI).
 */
const listReasonOr =
  (types: string) =>
  (issue: z.core.$ZodRawIssue): string => {
    if (issue.code !== "invalid_union" || !Array.isArray(issue.input)) return types;
    const reason = (issue as z.core.$ZodRawIssue<z.core.$ZodIssueInvalidUnion>).errors.at(-1)?.[0];
    if (!reason) return types;
    return reason.path.length > 0 ? `item ${reason.path.join(".")}: ${reason.message}` : reason.message;
  };

// A filter string matches a value alone or any element of a list (Qdrant's `match`), so it takes the longer of the two:
// capped at the list's 256, a document whose metadata held a 300-character value could not be filtered on it (a 400).
// Numbers are integers only: Qdrant's `match` takes none other, and a one-value `range` on a key Qdrant indexed as
// integer cuts its bounds to whole numbers (condition_converter.rs), so `2.5` would match the documents holding 2.
const FILTER_TYPES = "must be a string, an integer, a boolean, or a list of strings or of integers";
const filterValue = z.union([text().max(MAX_METADATA_STRING_CHARS), z.number().int(), z.boolean()], { error: FILTER_TYPES });
const filterList = z
  .array(z.union([text().max(MAX_METADATA_STRING_CHARS), z.number().int()], { error: "must be a string or an integer" }))
  .min(1, { error: "a list must hold at least one value" })
  .max(MAX_LIST_VALUES, { error: LIST_TOO_LONG })
  // Qdrant's `match: {any}` takes strings or integers, not both (AnyVariants): a mixed list was its 400, our 502.
  .refine((list) => list.every((v) => typeof v === "string") || list.every((v) => typeof v === "number"), {
    error: "a list must hold only strings or only integers",
  });

/**
 * The most characters a filter's strings hold together. Each may be as long as a metadata value (1,000), but 16 keys of
 * 100 such values each, 1.6 MB, cost a question 72 ms of the replica's CPU against 7 ms (probe CP), and went to Qdrant
 * with every search. 100 UUIDs under one key take 3,600.
 */
export const MAX_FILTER_CHARS = 16_384;
const filterChars = (filter: Record<string, unknown>) =>
  Object.values(filter)
    .flat()
    .reduce<number>((n, v) => n + (typeof v === "string" ? v.length : 0), 0);

export const FilterSchema = metadataRecord(
  z.union([filterValue, filterList], { error: listReasonOr(FILTER_TYPES) }),
  16,
  "filter",
)
  .refine((filter) => filterChars(filter) <= MAX_FILTER_CHARS, {
    error: `a filter's strings must hold at most ${MAX_FILTER_CHARS} characters together`,
  })
  .openapi("Filter", {
    description: "Metadata key to a value (must equal) or to a list (must equal any of them); all keys must match.",
    example: { lang: "en", team: ["search", "infra"] },
  });

export const QueryRequestSchema = z
  .strictObject({
    query: text()
      .max(MAX_QUERY_CHARS, { error: `must be at most ${MAX_QUERY_CHARS} characters` })
      .trim()
      .min(1, { error: "must not be empty" }),
    session_id: z.string().regex(idPattern, { error: idMessage }).optional(),
    filter: FilterSchema.optional(),
    top_k: z.number().int().min(1).max(50).optional(),
    stream: z.boolean().optional(),
  })
  .openapi("QueryRequest");

export const SourceSchema = z
  .object({ id: z.string(), score: z.number(), title: z.string().nullable(), text: z.string() })
  .openapi("Source");

export const QueryResponseSchema = z
  .object({
    answer: z.string(),
    sources: z.array(SourceSchema),
    session_id: z.string(),
    request_id: z.string(),
    model: z.string(),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }),
    cached: z.boolean(),
    truncated: z.boolean().openapi({
      description:
        "The answer was cut before the model ended it: at the server's longest answer (MAX_ANSWER_TOKENS), at the end " +
        "of the model's context window, or by Ollama because the model kept repeating itself",
    }),
  })
  .openapi("QueryResponse");

export const MAX_METADATA_BYTES = 8_192;
export const MAX_TITLE_CHARS = 500;
export const MAX_METADATA_KEYS = 32;
export const MAX_DOCUMENTS_PER_REQUEST = 100;

const metadataValue = z.union(
  [
    text().max(MAX_METADATA_STRING_CHARS),
    z.number(),
    z.boolean(),
    z
      .array(z.union([text().max(MAX_METADATA_LIST_STRING_CHARS), z.number()], { error: "must be a string or a number" }))
      .max(MAX_LIST_VALUES, { error: LIST_TOO_LONG }),
  ],
  { error: listReasonOr("must be a string, a number, a boolean, or a list of strings and numbers") },
);

export const DocumentSchema = z
  .strictObject({
    id: z.string().regex(idPattern, { error: idMessage }).optional(),
    // null as well: "no title", as sources show it.
    title: text().max(MAX_TITLE_CHARS).nullable().optional(),
    text: text()
      .max(1_000_000)
      .refine((t) => t.trim().length > 0, { error: "must not be empty" }),
    metadata: metadataRecord(metadataValue, MAX_METADATA_KEYS, "metadata")
      // Each of the document's chunks carries a copy to Qdrant: 1 MB of text is about 900 chunks, and 32 kB of
      // metadata made a 34 MB upsert (and 0.9 GB of memory at the per-value limits, 1.8 MB).
      .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES, {
        error: `at most ${MAX_METADATA_BYTES} bytes as JSON (each chunk of the document carries a copy)`,
      })
      .optional(),
  })
  .openapi("Document");

/**
 * The most objects, arrays and object keys a valid request body holds: a documents request at its limits (the body,
 * its key and its list, and each document with its keys, its metadata, and a key and a list for every metadata entry).
 * readbody.ts refuses a body holding more before it is parsed: JSON.parse builds every one, and 2 MiB of `{},`
 * (700,000 objects) held the event loop for 380 ms, one object of 190,000 keys 540 ms with zod's check of its keys, so
 * a few such bodies at once made other clients wait seconds, or miss their 1 s Postgres deadline (503s). Scalars are
 * left to the body limit: 2 MiB of them parses in 30-50 ms.
 */
export const MAX_BODY_CONTAINERS_AND_KEYS =
  3 + MAX_DOCUMENTS_PER_REQUEST * (2 + Object.keys(DocumentSchema.shape).length + 2 * MAX_METADATA_KEYS);

export const DocumentsRequestSchema = z
  .strictObject({ documents: z.array(DocumentSchema).min(1).max(MAX_DOCUMENTS_PER_REQUEST) })
  .refine(
    ({ documents }) => {
      const ids = documents.flatMap((d) => (d.id ? [d.id] : []));
      return new Set(ids).size === ids.length;
    },
    { error: "document ids must be unique within a request", path: ["documents"] },
  )
  .openapi("DocumentsRequest");

export const DocumentsResponseSchema = z
  .object({ documents: z.array(z.object({ id: z.string(), chunks: z.number().int() })) })
  .openapi("DocumentsResponse");

export const IdParamSchema = z.object({
  id: z
    .string()
    .regex(idPattern, { error: idMessage })
    .openapi({ param: { name: "id", in: "path" }, example: "doc-1" }),
});

export const TurnSchema = z
  .object({
    request_id: z.string(),
    question: z.string(),
    answer: z.string(),
    sources: z.array(SourceSchema),
    model: z.string(),
    prompt_tokens: z.number().int(),
    completion_tokens: z.number().int(),
    latency_ms: z.number().int(),
    cached: z.boolean(),
    truncated: z.boolean(),
    created_at: z.string(),
  })
  .openapi("Turn");

/** Turns per page of a session: a session read whole grew without bound (20,000 turns were a 110 MB response). */
const SESSION_PAGE_DEFAULT = 100;
const SESSION_PAGE_MAX = 500;
/**
 * And bytes: a page ends with the turn that reaches this many bytes of questions, answers and source lists (as JSON),
 * however few turns that is (store.ts sessionTurns). 500 turns of long questions of control characters, six bytes
 * each as JSON, and their sources were a 26.7 MB page: parsing it from Postgres and writing it out held the event loop
 * past the 1 s database deadline, and four readers at once were answered 503.
 */
export const SESSION_PAGE_MAX_BYTES = 2 * 1024 * 1024;

/**
 * A whole number from `min` to `max` in a query string, in decimal digits and given once: `Number()` also took `0x2`,
 * `1e0` and ` 2 `, and a parameter given twice (a list) was told as "received NaN" (probe BM).
 */
const queryInteger = (min: number, max: number) =>
  z.preprocess(
    (value) => (typeof value === "string" && /^[0-9]{1,9}$/.test(value) ? Number(value) : value),
    z
      .number({ error: `must be a whole number from ${min} to ${max} in decimal digits, given once` })
      .int()
      .min(min)
      .max(max),
  );

/**
 * Strict, as bodies are: a misspelt cursor (`afterr`, `after[]`) was ignored, and a client following `has_more` read
 * the first page again and again (probe CI).
 */
export const SessionPageQuerySchema = z.strictObject({
  limit: queryInteger(1, SESSION_PAGE_MAX)
    .default(SESSION_PAGE_DEFAULT)
    .openapi({
      param: { name: "limit", in: "query" },
      description: `Turns per page, 1-${SESSION_PAGE_MAX}; a page also ends once its turns hold about ${SESSION_PAGE_MAX_BYTES / 1024 / 1024} MiB`,
    }),
  after: z
    // Given twice it is a list, which zod told as "expected string, received array" (probe CK).
    .string({ error: "must be a turn's request_id, given once" })
    .regex(idPattern, { error: idMessage })
    .optional()
    .openapi({
      param: { name: "after", in: "query" },
      description: "The request_id of the last turn already read: the page starts with the turn after it",
    }),
});

/** A route that reads no query string: any parameter is refused, not ignored (a summary asked `?model=x` was whole). */
const NoQuerySchema = z.strictObject({});
type NoQuery = { query: typeof NoQuerySchema };

export const SessionResponseSchema = z
  .object({
    session_id: z.string(),
    turns: z.array(TurnSchema),
    has_more: z.boolean().openapi({ description: "More turns follow: ask again with `after` = the last turn's request_id" }),
  })
  .openapi("Session");

export const FeedbackRequestSchema = z
  .strictObject({
    request_id: text().min(1).max(255),
    quality_score: z.number().int().min(1).max(5),
    is_correct: z.boolean().optional(),
    comment: text().max(5000).optional(),
  })
  .openapi("FeedbackRequest");

export const FeedbackSummarySchema = z
  .object({
    total: z.number().int(),
    average_score: z.number().nullable(),
    by_model: z.array(
      z.object({
        model: z.string(),
        count: z.number().int(),
        avg_score: z.number(),
        correct: z.number().int(),
        incorrect: z.number().int(),
      }),
    ),
  })
  .openapi("FeedbackSummary");

export const CheckSchema = z.object({
  status: z.enum(["ok", "fail"]),
  critical: z.boolean(),
  latency_ms: z.number(),
  error: z.string().optional(),
});

export const ReadySchema = z
  .object({
    status: z.enum(["ready", "degraded", "not_ready"]),
    checks: z.record(z.string(), CheckSchema).optional().openapi({ description: "Per dependency: on METRICS_PORT only" }),
  })
  .openapi("Readiness");

export const ServingSchema = z.object({ status: z.enum(["serving", "not_serving"]) }).openapi("Serving");

/** A value of the type a length check (`.min`, `.max` or `.length` of a string or a list) is written for. */
const LENGTH_CHECKED_TYPES: Record<string, (value: unknown) => boolean> = {
  string: (value) => typeof value === "string",
  array: Array.isArray,
};
const LENGTH_CHECKS = new Set(["min_length", "max_length", "length_equals"]);

/**
 * zod 4 runs a length check on any value with a `length` member, a value that already failed its type too, and
 * compares that member with `<=` (zod/v4/core/checks.js `_whenHasLength`). `{"query":{"length":{"toString":1}}}`
 * cannot be compared: the parse threw instead of failing, and every body route answered it 500 (fuzz, wave 62). Each
 * length check below `schema` runs on its own type only, so a value of another type is its field's 400.
 */
function lengthChecksOnTheirType(schema: z.ZodType, seen = new Set<unknown>()): void {
  if (seen.has(schema)) return;
  seen.add(schema);
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string; checks?: z.core.$ZodCheck[] };
  const isOfType = LENGTH_CHECKED_TYPES[def.type];
  for (const check of def.checks ?? []) {
    if (isOfType && LENGTH_CHECKS.has(check._zod.def.check)) check._zod.def.when = (payload) => isOfType(payload.value);
  }
  // The schemas it holds: an object's shape, a list's element, a union's options, a pipe's ends, a record's values.
  const inner = (value: unknown): void => {
    if (value instanceof z.ZodType) lengthChecksOnTheirType(value, seen);
    else if (Array.isArray(value)) value.forEach(inner);
    else if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype)
      Object.values(value).forEach(inner);
  };
  for (const [key, value] of Object.entries(def)) if (key !== "checks") inner(value);
}

/** A route's JSON body: `schema`, its length checks on their own type (lengthChecksOnTheirType). */
export const jsonBody = <T extends z.ZodType>(schema: T) => {
  lengthChecksOnTheirType(schema);
  return { content: { "application/json": { schema } }, required: true };
};

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

export const retryAfter = (description: string) => ({ "Retry-After": { description, schema: { type: "integer" as const } } });

/** The error responses every authenticated route can give. */
const errorResponses = {
  400: jsonResponse(ErrorSchema, "Malformed request"),
  401: jsonResponse(ErrorSchema, "Missing or unknown API key"),
  403: jsonResponse(ErrorSchema, "The key lacks the route's scope: `query`, or `admin` under /api/v1/admin/"),
  408: jsonResponse(ErrorSchema, "The request was not received whole within REQUEST_TIMEOUT_MS / 2 (the connection closes)"),
  413: jsonResponse(ErrorSchema, "Body too large"),
  415: jsonResponse(ErrorSchema, "Body is not JSON, or is compressed (send it uncompressed)"),
  417: jsonResponse(ErrorSchema, "An `Expect` other than 100-continue (the connection closes)"),
  431: jsonResponse(ErrorSchema, "Request headers too large (the connection closes)"),
  429: {
    ...jsonResponse(ErrorSchema, "Rate limit exceeded, or this key's share of a replica's bodies or ingests in use"),
    headers: retryAfter(
      "Seconds until the rate-limit window frees a slot, or to wait for a share. None on `pipeline_full` (32 requests " +
        "already waiting on the connection, which closes): send the request again once the answers ahead arrived",
    ),
  },
  500: jsonResponse(ErrorSchema, "A fault of the app: `details.request_id` finds its log line"),
  503: {
    ...jsonResponse(ErrorSchema, "A dependency is unavailable"),
    headers: retryAfter(
      `Seconds to wait before asking again: ${RETRY_AFTER_SECONDS}, or 0 from a replica shutting down (another one answers)`,
    ),
  },
  // The request deadline (middleware/deadline.ts) covers every route under /api/, not only those calling Ollama or
  // Qdrant: a session page or a feedback summary waiting on Postgres past it is a 504 too.
  504: jsonResponse(ErrorSchema, "The request took longer than REQUEST_TIMEOUT_MS"),
} as const;

/**
 * A route under /api/: callers present an API key (bearerAuth), and every errorResponses status can come back; a
 * route's own description of one of them (more reasons for it) is kept.
 */
/**
 * An /api route: bearer auth, the error answers every route may give, and a query string refused unless the route
 * declares its parameters (`POST /api/v1/query?stream=true` was answered as JSON, the parameter ignored).
 */
export const apiRoute = <P extends string, R extends Omit<RouteConfig, "path" | "security"> & { path: P }>(config: R) =>
  createRoute({
    ...config,
    request: { query: NoQuerySchema, ...config.request } as Omit<NoQuery, keyof NonNullable<R["request"]>> &
      NonNullable<R["request"]>,
    security: [{ bearerAuth: [] }],
    responses: { ...errorResponses, ...config.responses },
  });

export const upstreamErrorResponses = {
  502: jsonResponse(ErrorSchema, "Ollama or Qdrant failed"),
  504: jsonResponse(ErrorSchema, "Ollama or Qdrant did not answer in time, or the request took longer than REQUEST_TIMEOUT_MS"),
} as const;
