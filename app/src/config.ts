import { readFileSync } from "node:fs";
import { z } from "zod";
import { ORIGIN_FORM, originListProblem, originsOf } from "./origins.ts";
import { MAX_QUERY_CHARS, MAX_TITLE_CHARS } from "./schemas.ts";
import { estimateTokens, sourceEntry, sourceTokenBudget } from "./services/context.ts";
import { SLOW_READ_FACTOR } from "./services/store.ts";

/**
 * What is wrong with a URL setting, if anything. The drivers refuse more than `new URL` does: a password with a bad
 * %-escape stopped start-up with only "URI malformed", and a Redis URL whose path is not a database number with
 * "Invalid pathname", neither naming the variable. The message never repeats the value (it may hold a password).
 */
function urlProblem(value: string, protocols: string[]): string | undefined {
  const expected = `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return expected;
  }
  if (!protocols.includes(url.protocol)) return expected;
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    return "has a user name or password with a malformed %-escape (write a literal % as %25)";
  }
  if (url.protocol.startsWith("redis") && !/^\/?\d*$/.test(url.pathname))
    return "must name its database by number, as in redis://host:6379/0, or not at all";
  return undefined;
}

const urlWithProtocol = (...protocols: string[]) =>
  z.string({ error: "is required" }).superRefine((value, ctx) => {
    const problem = urlProblem(value, protocols);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });

/**
 * An integer setting, written in decimal digits: an empty value was read as 0 (PORT="" listened on a random port,
 * SHUTDOWN_TIMEOUT_MS="" drained for 0 ms, TURN_RETENTION_DAYS="" kept every turn), and "0x10" or "1e3" as 16 or 1000.
 */
const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER, maxReason = "") => {
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
  return z
    .string()
    .trim()
    .regex(/^-?\d+$/, { error: `must be an integer ${range}, in decimal digits` })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `must be >= ${min}` })
        .max(max, { error: `must be <= ${max}${maxReason}` }),
    )
    .default(fallback);
};

/**
 * The longest delay a Node.js timer takes (2^31 - 1 ms, about 24.8 days); past it Node sets the timer to 1 ms, so a
 * REQUEST_TIMEOUT_MS of 3e9 answered every request 504 at once. `share`: a timer gets this multiple of the setting;
 * `pastMs`: a timer runs this much past it.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;
const ms = (fallback: number, min: number, { share = 1, pastMs = 0 } = {}) =>
  int(
    fallback,
    min,
    Math.floor((MAX_TIMER_MS - pastMs) / share),
    ` (Node's timers stop at 2^31 - 1 ms${share > 1 ? `, and the app waits ${share} times this` : ""}${
      pastMs > 0 ? `, and one runs ${pastMs} ms past this` : ""
    })`,
  );

const bool = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0"], { error: "must be true or false" })
    .default(fallback ? "true" : "false")
    .transform((v) => v === "true" || v === "1");

/** A readable file's contents (e.g. a CA bundle), read once at start-up. */
const fileContents = z
  .string()
  .min(1, { error: "must be a file path" })
  .transform((file, ctx) => {
    try {
      return { file, contents: readFileSync(file, "utf8") };
    } catch (err) {
      ctx.addIssue({ code: "custom", message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"}: ${file})` });
      return z.NEVER;
    }
  });

const required = z.string({ error: "is required" }).trim().min(1, { error: "is required" });

const BEARER_TOKEN = /^[A-Za-z0-9._~+/-]+=*$/;

const keyList = z
  .string()
  .default("")
  .transform((raw) =>
    raw
      .split(",")
      .map((k) => k.trim())
      .filter(Boolean),
  )
  .refine((keys) => keys.every((k) => k.length >= 16), { error: "every key must be at least 16 characters" })
  // What a Bearer token may hold (RFC 6750 b64token; hono's bearerAuth refuses any other as a malformed header), so a
  // key with `!`, `@`, `#` or a space was accepted here and could never be sent.
  .refine((keys) => keys.every((k) => BEARER_TOKEN.test(k)), {
    error: "every key may hold only letters, digits and - . _ ~ + /, and = only at its end (RFC 6750 Bearer)",
  });

/**
 * Comma-separated origins whose pages may call the API (CORS, middleware/cors.ts), or `*` alone for any; empty (the
 * default) sends no CORS header at all. Each entry exactly as a browser sends Origin (origins.ts).
 */
const originList = z
  .string()
  .default("")
  .transform(originsOf)
  .superRefine((origins, ctx) => {
    const problem = originListProblem(origins);
    if (problem === undefined) return;
    ctx.addIssue({
      code: "custom",
      message: `must list origins as ${ORIGIN_FORM}, comma-separated, or be * alone; ${problem}`,
    });
  });

/** Every environment variable the app reads. Defaults are for tunables only; connection strings and models are required. */
export const envSchema = z.object({
  DATABASE_URL: urlWithProtocol("postgres:", "postgresql:"),
  /** Owner role for migrations (DDL); DATABASE_URL's runtime role then needs DML only. Defaults to DATABASE_URL. */
  DATABASE_MIGRATE_URL: urlWithProtocol("postgres:", "postgresql:").optional(),
  /** PEM CA bundle: both database URLs connect over TLS with certificate and host name verified (verify-full). */
  DATABASE_CA_FILE: fileContents.optional(),
  REDIS_URL: urlWithProtocol("redis:", "rediss:"),
  /** ElastiCache AUTH token when it is not embedded in REDIS_URL. */
  REDIS_PASSWORD: z.string().optional(),
  QDRANT_URL: urlWithProtocol("http:", "https:"),
  QDRANT_API_KEY: z.string().optional(),
  QDRANT_COLLECTION: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: "must match [A-Za-z0-9_-]{1,64}" })
    .default("documents"),
  /** Copies of each shard when the app creates the collection (Qdrant `replication_factor`). */
  QDRANT_REPLICATION_FACTOR: int(1, 1, 100),
  /** Replicas that must acknowledge a write (Qdrant `write_consistency_factor`); at most the replication factor. */
  QDRANT_WRITE_CONSISTENCY: int(1, 1, 100),
  /**
   * Distinct metadata keys given a Qdrant payload index, at most, counted over the collection: the first ones ingested.
   * Every key used to get one, so a client sending unique keys made thousands of indexes (memory and disk in Qdrant,
   * paid again by every upsert). Filters on a key past the limit still work, unindexed.
   */
  QDRANT_METADATA_INDEX_LIMIT: int(16, 0, 1000),
  OLLAMA_URL: urlWithProtocol("http:", "https:"),
  PORT: int(8080, 0, 65535),
  /** /metrics (and readiness details) listen here, never on PORT, which the load balancer exposes. */
  METRICS_PORT: int(9464, 0, 65535),
  /** Serve /docs and /openapi.json on PORT. */
  DOCS_ENABLED: bool(false),
  /** Where clients reach the API (the agent card's `url`); unset, the card names the request's own origin. */
  PUBLIC_URL: urlWithProtocol("http:", "https:")
    // The card appends its paths: "https://agents.example.com/" named https://agents.example.com//docs, a 404, and
    // "https://agents.example.com/?x" https://agents.example.com/?x/docs.
    .refine((url) => !/[?#]/.test(url), { error: "must have no query or fragment (the agent card appends paths to it)" })
    .transform((url) => url.replace(/\/+$/, ""))
    .optional(),
  /** Origins of browser front ends that may call the API: CORS headers for them only; none by default. */
  CORS_ORIGINS: originList,
  /** The address both listeners bind: an IPv4 or IPv6 address, or a name that resolves to one of this host's. */
  HOST: z
    .union([z.ipv4(), z.ipv6(), z.hostname()], { error: "must be an IP address or a host name (e.g. 0.0.0.0, ::)" })
    .default("0.0.0.0"),
  /** Comma-separated bootstrap keys with the `query` scope. */
  API_KEYS: keyList.refine((keys) => keys.length > 0, { error: "is required (comma-separated keys)" }),
  /** Comma-separated keys with the `admin` scope (they may also be listed in API_KEYS). */
  ADMIN_API_KEYS: keyList,
  EMBED_MODEL: required,
  MODEL_SMALL: required,
  MODEL_DEFAULT: required,
  MODEL_LARGE: required,
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  BODY_LIMIT_BYTES: int(2 * 1024 * 1024, 1024),
  /** Bytes of request bodies one replica holds at once; past it a body is a 503 (middleware/readbody.ts, app/README.md). */
  BODIES_MAX_BYTES_RECEIVING: int(16 * 1024 * 1024, 1024),
  /** Bodies of ingests at work on one replica at once, in bytes; past it an ingest is a 503 (services/documents.ts). */
  INGEST_MAX_BYTES_IN_FLIGHT: int(4 * 1024 * 1024, 1024),
  /** Bytes of answers waiting in one replica for slow clients to read; past it the longest waiting are cut (http.ts). */
  ANSWERS_MAX_BYTES_WAITING: int(64 * 1024 * 1024, 1024),
  /** A document write's lease is up to twice this or QDRANT_TIMEOUT_MS (services/documents.ts), hence the share. */
  REQUEST_TIMEOUT_MS: ms(60_000, 100, { share: 2 }),
  OLLAMA_TIMEOUT_MS: ms(30_000, 50),
  /**
   * Answers of each model this replica asks Ollama for at once (0: no limit); the infra gives each replica its share
   * of the tier's Ollama slots (replicas x OLLAMA_NUM_PARALLEL). Past it a question waits up to OLLAMA_SLOT_WAIT_MS,
   * then is a 503: Ollama itself queues without limit once a model is loaded (services/answer-slots.ts).
   */
  OLLAMA_MAX_ANSWERS: int(0, 0, 10_000),
  OLLAMA_SLOT_WAIT_MS: ms(10_000, 0),
  /**
   * Headless Services whose addresses are the ready Ollama pods and the ready API pods. Set both, and each replica's
   * share follows the pods there are (ready Ollama pods x OLLAMA_NUM_PARALLEL shared out over the ready API pods),
   * counted every ANSWER_SHARE_REFRESH_MS; OLLAMA_MAX_ANSWERS is the share until the first count
   * (services/answer-share.ts).
   */
  OLLAMA_PODS_DNS: z.string().trim().min(1, { error: "must be a DNS name, or unset" }).optional(),
  API_PODS_DNS: z.string().trim().min(1, { error: "must be a DNS name, or unset" }).optional(),
  /**
   * This pod's address (the downward API's status.podIP): its place among the API pods, which takes one of the slots
   * left over when they do not divide evenly, and whether it is among the ready ones at all.
   */
  POD_IP: z.union([z.ipv4(), z.ipv6()], { error: "must be an IPv4 or IPv6 address (the pod's status.podIP)" }).optional(),
  /** Ollama's own OLLAMA_NUM_PARALLEL: answers of each model one Ollama pod generates at once. */
  OLLAMA_NUM_PARALLEL: int(4, 1, 1000),
  ANSWER_SHARE_REFRESH_MS: ms(10_000, 100),
  /**
   * How often the corpus version is read again besides its notifications (services/corpus.ts). Each read takes the
   * pool's least recently used connection, so 60 s (db.ts idle_timeout) over this many stay open after a burst: at
   * 5 s, all ten of a pool.
   */
  CORPUS_VERSION_REFRESH_MS: ms(15_000, 100),
  QDRANT_TIMEOUT_MS: ms(5_000, 50, { share: 2 }),
  REDIS_COMMAND_TIMEOUT_MS: ms(250, 10),
  DB_POOL_MAX: int(10, 1, 1000),
  DB_CONNECT_TIMEOUT_MS: ms(2_000, 100),
  /** Deadline of one database statement; past it (or with Postgres unreachable) a request is a 503. */
  DB_QUERY_TIMEOUT_MS: ms(1_000, 50, { share: SLOW_READ_FACTOR }),
  /** How long start-up waits for an unavailable Postgres before it exits; below the startupProbe's 60 s (api.ts). */
  DB_STARTUP_WAIT_MS: ms(45_000, 0),
  READY_PROBE_TIMEOUT_MS: ms(1_000, 50),
  SHUTDOWN_TIMEOUT_MS: ms(10_000, 0),
  /**
   * How long an idle keep-alive connection stays open. Longer than the load balancer's idle timeout, or it may send
   * a request on a connection the app is closing, and answer that request with a 502 (ALB default: 60 s).
   */
  // Node's keep-alive timer runs a second past it (_http_server.js).
  HTTP_KEEP_ALIVE_TIMEOUT_MS: ms(65_000, 1_000, { pastMs: 1_000 }),
  RATE_LIMIT_PER_MINUTE: int(60, 1),
  /**
   * Turns (and their feedback) older than this many days are deleted, with the sessions and source lists they leave
   * unused; 0 keeps every turn (services/turn-retention.ts).
   */
  TURN_RETENTION_DAYS: int(90, 0, 36_500),
  TURN_RETENTION_SWEEP_MS: ms(3_600_000, 100),
  RESPONSE_CACHE_TTL_SECONDS: int(600, 1),
  /** Hot cached answers also kept in each replica (no Redis round trip); 0 turns the local copy off. */
  RESPONSE_LOCAL_CACHE_ENTRIES: int(1_000, 0, 100_000),
  RESPONSE_LOCAL_CACHE_TTL_SECONDS: int(30, 1),
  EMBED_CACHE_TTL_SECONDS: int(86_400, 1),
  EMBED_BATCH_SIZE: int(32, 1, 2048),
  CONTEXT_TOKEN_BUDGET: int(4_000, 100),
  /**
   * The model's context window per request: Ollama's OLLAMA_CONTEXT_LENGTH (the infra sets both from the tier). The
   * prompt and the answer share it, so the sources get what the instructions, the question and the answer leave.
   */
  MODEL_CONTEXT_TOKENS: int(4_096, 512),
  /** The longest answer, in tokens (Ollama's `num_predict`); Ollama's own default is to generate until the model stops. */
  MAX_ANSWER_TOKENS: int(1_024, 16),
  DEFAULT_TOP_K: int(5, 1, 50),
  // At most 1,000,000: the checks below build a chunk of this size, and a billion crashed start-up with a RangeError
  // naming nothing (4e8 took 2 GB first, probe BR); a chunk is a few of the model's window at most anyway.
  CHUNK_SIZE_CHARS: int(1_200, 100, 1_000_000),
  CHUNK_OVERLAP_CHARS: int(150, 0),
});

// Only once every variable is valid on its own (`when`): run on a value a field refused, `"x".repeat(CHUNK_SIZE_CHARS)`
// threw a RangeError with its stack trace instead of the one line naming the variable.
const checkedSchema = envSchema.superRefine(
  (env, ctx) => {
    if (env.QDRANT_WRITE_CONSISTENCY > env.QDRANT_REPLICATION_FACTOR) {
      ctx.addIssue({
        code: "custom",
        path: ["QDRANT_WRITE_CONSISTENCY"],
        message: `must be <= QDRANT_REPLICATION_FACTOR (${env.QDRANT_REPLICATION_FACTOR})`,
      });
    }
    // Each chunk starts with up to this much of the one before it: near CHUNK_SIZE_CHARS a chunk advanced by one
    // sentence, and a 300 kB document of short sentences became 99,601 chunks, 398 times its text, all embedded.
    // At half, the chunks hold at most about twice the text.
    if (env.CHUNK_OVERLAP_CHARS > env.CHUNK_SIZE_CHARS / 2) {
      ctx.addIssue({
        code: "custom",
        path: ["CHUNK_OVERLAP_CHARS"],
        message: `must be at most ${Math.floor(env.CHUNK_SIZE_CHARS / 2)}, half of CHUNK_SIZE_CHARS (${env.CHUNK_SIZE_CHARS})`,
      });
    }
    const longestQuestion = "x".repeat(MAX_QUERY_CHARS);
    const room = sourceTokenBudget(
      { contextTokens: env.MODEL_CONTEXT_TOKENS, answerTokens: env.MAX_ANSWER_TOKENS },
      longestQuestion,
    );
    const chunk = estimateTokens("x".repeat(env.CHUNK_SIZE_CHARS));
    if (room < chunk) {
      ctx.addIssue({
        code: "custom",
        path: ["MAX_ANSWER_TOKENS"],
        message:
          `${env.MAX_ANSWER_TOKENS} leaves ${room} of MODEL_CONTEXT_TOKENS (${env.MODEL_CONTEXT_TOKENS}) for the sources ` +
          `beside a ${MAX_QUERY_CHARS}-character question, less than one chunk (${chunk}): lower MAX_ANSWER_TOKENS or ` +
          "CHUNK_SIZE_CHARS, or raise MODEL_CONTEXT_TOKENS",
      });
    }
    // The budget stops at the first source that does not fit (context.ts): below one chunk, no question got a source.
    // A chunk in a script of a token a character (Han, Hangul, Thai...), with the longest Latin title.
    const widest = { title: "x".repeat(MAX_TITLE_CHARS), text: "\u6f6e".repeat(env.CHUNK_SIZE_CHARS) };
    const entry = estimateTokens(`${sourceEntry(widest, 99)}\n\n`);
    if (env.CONTEXT_TOKEN_BUDGET < entry) {
      ctx.addIssue({
        code: "custom",
        path: ["CONTEXT_TOKEN_BUDGET"],
        message:
          `must be at least ${entry}, one source of CHUNK_SIZE_CHARS (${env.CHUNK_SIZE_CHARS}) characters of Chinese ` +
          "with the longest title: below it such sources are never given to the model",
      });
    }
    if ((env.OLLAMA_PODS_DNS === undefined) !== (env.API_PODS_DNS === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [env.OLLAMA_PODS_DNS === undefined ? "OLLAMA_PODS_DNS" : "API_PODS_DNS"],
        message: "must be set with OLLAMA_PODS_DNS and API_PODS_DNS both, or neither",
      });
    } else if (env.OLLAMA_PODS_DNS !== undefined && env.OLLAMA_MAX_ANSWERS === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["OLLAMA_MAX_ANSWERS"],
        message: "must be at least 1 when OLLAMA_PODS_DNS and API_PODS_DNS share the answer slots out (0 turns them off)",
      });
    }
    if (env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT) {
      ctx.addIssue({
        code: "custom",
        path: ["METRICS_PORT"],
        message: "must differ from PORT (PORT is public, metrics are not)",
      });
    }
  },
  { when: (payload) => payload.issues.length === 0 },
);

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {}

/** Parses the environment; throws ConfigError with one line naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const result = checkedSchema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`);
  throw new ConfigError(`invalid environment: ${problems.join("; ")}`);
}
