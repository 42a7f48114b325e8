import { createLogger, type Logger } from "../../app/src/log.ts";

/** A logged line, parsed: pino's `msg` and whatever fields the app gave it. */
export type LogRecord = { msg: string; [field: string]: any };

/** The app's logger at `level`, writing each JSON line to `lines` instead of stdout; `records()` parses them. */
export function capturedLog(level: string): { log: Logger; lines: string[]; records(): LogRecord[] } {
  const lines: string[] = [];
  return {
    log: createLogger(level, { write: (line: string) => void lines.push(line) }),
    lines,
    records: () => lines.map((line) => JSON.parse(line) as LogRecord),
  };
}
