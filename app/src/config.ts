import { z } from "zod";

const urlWithProtocol = (...protocols: string[]) =>
  z.string({ error: "is required" }).refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { error: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}` },
  );

const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: "must be an integer" })
    .int({ error: "must be an integer" })
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}` })
    .default(fallback);

const required = z.string({ error: "is required" }).trim().min(1, { error: "is required" });

const keyList = z
  .string()
  .default("")
  .transform((raw) => raw.split(",").map((k) => k.trim()).filter(Boolean))
  .refine((keys) => keys.every((k) => k.length >= 16), { error: "every key must be at least 16 characters" });

/** Every environment variable the app reads. Defaults are for tunables only; connection strings and models are required. */
export const envSchema = z.object({
  DATABASE_URL: urlWithProtocol("postgres:", "postgresql:"),
  REDIS_URL: urlWithProtocol("redis:", "rediss:"),
  /** ElastiCache AUTH token when it is not embedded in REDIS_URL. */
  REDIS_PASSWORD: z.string().optional(),
  QDRANT_URL: urlWithProtocol("http:", "https:"),
  QDRANT_API_KEY: z.string().optional(),
  QDRANT_COLLECTION: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: "must match [A-Za-z0-9_-]{1,64}" }).default("documents"),
  OLLAMA_URL: urlWithProtocol("http:", "https:"),
  PORT: int(8080, 0, 65535),
  HOST: z.string().default("0.0.0.0"),
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
  REQUEST_TIMEOUT_MS: int(60_000, 100),
  OLLAMA_TIMEOUT_MS: int(30_000, 50),
  QDRANT_TIMEOUT_MS: int(5_000, 50),
  REDIS_COMMAND_TIMEOUT_MS: int(250, 10),
  DB_POOL_MAX: int(10, 1, 1000),
  DB_CONNECT_TIMEOUT_MS: int(5_000, 100),
  READY_PROBE_TIMEOUT_MS: int(1_000, 50),
  SHUTDOWN_TIMEOUT_MS: int(10_000, 0),
  RATE_LIMIT_PER_MINUTE: int(60, 1),
  RESPONSE_CACHE_TTL_SECONDS: int(600, 1),
  EMBED_CACHE_TTL_SECONDS: int(86_400, 1),
  EMBED_BATCH_SIZE: int(32, 1, 2048),
  CONTEXT_TOKEN_BUDGET: int(4_000, 100),
  DEFAULT_TOP_K: int(5, 1, 50),
  CHUNK_SIZE_CHARS: int(1_200, 100),
  CHUNK_OVERLAP_CHARS: int(150, 0),
});

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {}

/** Parses the environment; throws ConfigError with one line naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const result = envSchema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`);
  throw new ConfigError(`invalid environment: ${problems.join("; ")}`);
}
