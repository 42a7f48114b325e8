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

/**
 * Bytes of log lines held for stdout, written as it takes them; past it a line is dropped, and counted. Unbounded
 * (pino's default stdout), a flood of requests each logging long paths held what stdout had not taken yet: the heap
 * grew by 38 MB/s until the pod was killed (probe BJ).
 */
export const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024;
/** How often the count of lines dropped since the last report is logged, when there are any. */
const DROPPED_REPORT_MS = 10_000;

/**
 * The app's logger, writing JSON lines to `destination`, or to stdout through a buffer of `bufferBytes` (the count
 * of lines dropped is logged every `reportMs`).
 */
export function createLogger(
  level: string,
  destination?: DestinationStream,
  { bufferBytes = LOG_BUFFER_MAX_BYTES, reportMs = DROPPED_REPORT_MS }: { bufferBytes?: number; reportMs?: number } = {},
): Logger {
  const stdout = destination ? undefined : pino.destination({ fd: 1, sync: false, maxLength: bufferBytes });
  const log = pino(
    {
      level,
      base: { service: "agent-api" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? stdout,
  );
  if (stdout) {
    let dropped = 0;
    stdout.on("drop", () => dropped++);
    setInterval(() => {
      if (dropped === 0) return;
      const lines = dropped;
      log.warn({ dropped_lines: lines }, "log lines dropped: stdout did not take them as fast as they came");
      // A report the full buffer dropped too (its drop is counted as it is written) leaves the count for the next one:
      // reset first, the count was lost with it (review N17: 28,330 lines dropped, 1 reported).
      if (dropped === lines) dropped = 0;
    }, reportMs).unref();
  }
  return log;
}

export type { Logger };
