import { pino, type DestinationStream, type Logger } from "pino";

/** Paths that may carry a credential; pino replaces their values before a line is written. */
const REDACT_PATHS = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "apiKey",
  "*.apiKey",
  "api_key",
  "*.api_key",
  "key",
  "*.key",
  "token",
  "*.token",
  "password",
  "*.password",
  "url",
  "*.url",
  "DATABASE_URL",
  "REDIS_URL",
  "REDIS_PASSWORD",
  "QDRANT_API_KEY",
  "API_KEYS",
  "ADMIN_API_KEYS",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "agent-api" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
