import { createLogger, type Logger } from "../../app/src/log.ts";

/** The app's logger at `level`, writing each JSON line to `lines` instead of stdout. */
export function capturedLog(level: string): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger(level, { write: (line: string) => void lines.push(line) }), lines };
}
