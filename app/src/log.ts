import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

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
 * At exit, how long the lines still held may take to reach stdout; past it they are dropped. pino's own flush at exit
 * waits for stdout for good: read at 20 kB/s, a full buffer held a replica 6 min 50 s after SIGTERM, well past its
 * grace period (probe BN).
 */
const EXIT_FLUSH_MS = 2_000;

interface StdoutOptions {
  bufferBytes?: number;
  reportMs?: number;
  exitFlushMs?: number;
}

const loggerOptions = (level: string): LoggerOptions => ({
  level,
  base: { service: "agent-api" },
  timestamp: pino.stdTimeFunctions.isoTime,
  redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  formatters: { level: (label) => ({ level: label }) },
});

/** The process's one stdout buffer, made by the first logger without a destination (with its level and options). */
let stdout: DestinationStream | undefined;

function stdoutBuffer(
  level: string,
  { bufferBytes = LOG_BUFFER_MAX_BYTES, reportMs = DROPPED_REPORT_MS, exitFlushMs = EXIT_FLUSH_MS }: StdoutOptions,
): DestinationStream {
  if (stdout) return stdout;
  let exitingSince: number | undefined;
  const stream = pino.destination({
    fd: 1,
    sync: false,
    maxLength: bufferBytes,
    // sonic-boom asks this before each retry of a write stdout refused (EAGAIN), every 100 ms.
    retryEAGAIN: () => exitingSince === undefined || performance.now() - exitingSince < exitFlushMs,
  });
  let dropped = 0;
  stream.on("drop", () => dropped++);
  const reporter = pino(loggerOptions(level), stream);
  setInterval(() => {
    if (dropped === 0) return;
    const lines = dropped;
    reporter.warn({ dropped_lines: lines }, "log lines dropped: stdout did not take them as fast as they came");
    // A report the full buffer dropped too (its drop is counted as it is written) leaves the count for the next one:
    // reset first, the count was lost with it (review N17: 28,330 lines dropped, 1 reported).
    if (dropped === lines) dropped = 0;
  }, reportMs).unref();
  // Before pino's own flush at exit, which then finds nothing left (a destroyed stream is skipped).
  process.prependListener("exit", () => {
    exitingSince = performance.now();
    try {
      stream.flushSync();
    } catch {
      stream.destroy();
    }
  });
  stdout = stream;
  return stream;
}

/**
 * The app's logger, writing JSON lines to `destination`, or to stdout through a buffer of `bufferBytes` (the count
 * of lines dropped is logged every `reportMs`; at exit, what stdout has not taken within `exitFlushMs` is dropped).
 */
export function createLogger(level: string, destination?: DestinationStream, options: StdoutOptions = {}): Logger {
  // A silent logger (tests, benchmarks) writes nothing, so it needs no stdout.
  const out = destination ?? (level === "silent" ? { write: () => {} } : stdoutBuffer(level, options));
  return pino(loggerOptions(level), out);
}

export type { Logger };
