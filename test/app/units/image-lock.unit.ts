// The API's image installs its dependencies from app/package-lock.json (app/Dockerfile: `npm ci --omit=dev
// --omit=peer`); the tests run them from the repository's package-lock.json. A package at another version in the two
// ships code no test ran.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

interface LockEntry {
  version?: string;
  dev?: boolean;
  peer?: boolean;
}

const packagesOf = (file: string): Record<string, LockEntry> =>
  JSON.parse(readFileSync(new URL(`../../../${file}`, import.meta.url), "utf8")).packages;

test("every package the API's image installs is at the version the tests run", () => {
  const image = packagesOf("app/package-lock.json");
  const tests = packagesOf("package-lock.json");
  const shipped = Object.entries(image).filter(([p, e]) => p.startsWith("node_modules/") && !e.dev && !e.peer);
  assert.ok(
    shipped.some(([p]) => p === "node_modules/hono"),
    "the image's lock lists its runtime packages",
  );
  const differing = shipped
    .filter(([p, e]) => tests[p]?.version !== e.version)
    .map(([p, e]) => `${p}: image ${e.version}, tests ${tests[p]?.version ?? "none"}`);
  assert.deepEqual(differing, []);
});
