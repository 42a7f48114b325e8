// Run by `npm install`/`npm ci` (postinstall, here and in the repository root): mends a bug of postgres.js 3.4.9 that
// no release fixes (3.4.10 has it too; read at the tag, src/connection.js `closed` and `terminate`). A connection
// closed while a write waited for its setImmediate cancels that immediate but keeps it in `nextWriteTimer`, and keeps
// the bytes in `chunk`: `write` schedules a flush only while `nextWriteTimer` is null, so every later write of that
// connection, its next startup message first, waits for good. Each reconnect then ends at connect_timeout with nothing
// sent, and a statement given to it fails (a 503), until the unsent bytes pass 1 kB (about 7 reconnects; 128 with
// TLS, whose first write is an 8-byte SSLRequest), when they go out with the old connection's bytes before them.
// Reported upstream in LanternOps/breeze#3225 (found there in production); seen here when a silent connection was
// closed (watchUnanswered, app/src/services/db.ts). Both are cleared with the immediate.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const MARK = "// agent-stack: nextWriteTimer and chunk cleared with the immediate";
/** The two teardown lines of 3.4.9 (`closed`, `terminate`); `nextWrite`'s own clearImmediate is guarded, not matched. */
const TEARDOWN = /^( +)clearImmediate\(nextWriteTimer\)$/gm;
const root = path.join(process.cwd(), "node_modules", "postgres");
if (!existsSync(root)) process.exit(0); // not installed here (npm ci --omit of a tree without it)
const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
for (const file of ["src/connection.js", "cjs/src/connection.js"]) {
  const at = path.join(root, file);
  const source = readFileSync(at, "utf8");
  if (source.includes(MARK)) continue;
  const teardowns = source.match(TEARDOWN)?.length ?? 0;
  if (teardowns !== 2)
    throw new Error(
      `postgres ${version} ${file}: expected the two teardown lines \`clearImmediate(nextWriteTimer)\` of 3.4.9 ` +
        `(closed, terminate), found ${teardowns}: check whether this version still needs app/scripts/patch-postgres.mjs`,
    );
  writeFileSync(at, source.replace(TEARDOWN, `$1clearImmediate(nextWriteTimer)\n$1nextWriteTimer = chunk = null ${MARK}`));
}
