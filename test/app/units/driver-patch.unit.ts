import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

const SCRIPT = path.resolve("app/scripts/patch-postgres.mjs");
const TEARDOWN = "  function closed() {\n    clearImmediate(nextWriteTimer)\n    socket = null\n  }\n";
const WRITE = "  function nextWrite() {\n    nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n  }\n";

/** A node_modules/postgres whose two connection.js files hold `source`; runs the script there. */
function patchIn(source: string): { files: () => string[]; run: () => void; done: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), "driver-patch-"));
  const root = path.join(dir, "node_modules", "postgres");
  const files = ["src/connection.js", "cjs/src/connection.js"].map((f) => path.join(root, f));
  for (const f of files) {
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, source);
  }
  writeFileSync(path.join(root, "package.json"), JSON.stringify({ version: "3.4.9" }));
  return {
    files: () => files.map((f) => readFileSync(f, "utf8")),
    run: () => void execFileSync(process.execPath, [SCRIPT], { cwd: dir, stdio: "pipe" }),
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test("the postgres.js patch clears nextWriteTimer and chunk after each teardown's clearImmediate, once, and not in nextWrite", () => {
  const install = patchIn(WRITE + TEARDOWN + TEARDOWN.replace("closed", "terminate"));
  try {
    install.run();
    install.run(); // npm ci again on a patched tree
    for (const patched of install.files()) {
      assert.equal(patched.match(/^ {4}nextWriteTimer = chunk = null /gm)?.length, 2, patched);
      assert.match(patched, /clearImmediate\(nextWriteTimer\)\n {4}nextWriteTimer = chunk = null .*\n {4}socket = null/);
      assert.ok(patched.startsWith(WRITE), "nextWrite left as it is");
    }
  } finally {
    install.done();
  }
});

test("the postgres.js patch refuses a version whose teardown lines differ, naming the file", () => {
  const install = patchIn(WRITE + TEARDOWN);
  try {
    assert.throws(install.run, /src\/connection\.js: expected the two teardown lines .* found 1/);
  } finally {
    install.done();
  }
});

test("the installed postgres.js is mended (the postinstall ran): both connection.js files carry the patch", () => {
  for (const file of ["src/connection.js", "cjs/src/connection.js"]) {
    const source = readFileSync(path.resolve("node_modules/postgres", file), "utf8");
    assert.equal(
      source.match(/^ {4}nextWriteTimer = chunk = null /gm)?.length,
      2,
      `${file}: run npm ci (or npm run postinstall)`,
    );
  }
});
