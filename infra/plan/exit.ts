// Exiting a CLI without cutting its output: process.exit() right after a large write to a pipe drops
// what is still buffered, so exit only once everything written before has been flushed.
export function exitAfterFlush(code: number): void {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
