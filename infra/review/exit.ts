// Exiting a CLI without cutting its output: process.exit() right after a large write to a pipe drops
// what is still buffered, so exit only once everything written before has been flushed.
export function exitAfterFlush(code: number): void {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}

/** Errors the user fixes (unknown stack, bad config, bad flag): print the message alone, no stack trace. */
export function isUsageError(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return (
    ["UnknownStackError", "ConfigError", "UsageError"].includes(err.name) ||
    (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"))
  );
}
