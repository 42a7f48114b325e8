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
  engines?: { node?: string } | string[];
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

/**
 * Whether Node `major` (its newest release) meets an engines range, by majors: `>=A[.B.C]`, `^A[.B.C]`, `A`, joined by
 * `||`. Any other form throws, so a range this cannot read fails the check instead of passing it.
 */
function admitsMajor(range: string, major: number): boolean {
  return range.split("||").some((part) => {
    const m = /^\s*(>=|\^)?\s*(\d+)(\.[\dx]+)*\s*$/.exec(part);
    if (!m) throw new Error(`an engines range this check cannot read: ${range}`);
    return m[1] === ">=" ? major >= Number(m[2]) : major === Number(m[2]);
  });
}

test("the app's engines range admits the image's Node (app/Dockerfile), and no package the image installs refuses a Node it admits", () => {
  // app/package.json said >=20.18.1 while @qdrant/js-client-rest 1.19 needs >=22.0.0.
  const dockerfile = readFileSync(new URL("../../../app/Dockerfile", import.meta.url), "utf8");
  const majors = [...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
  assert.ok(majors.length > 0 && majors.every((m) => m === majors[0]), `one Node major in every stage: ${majors}`);
  const imageMajor = majors[0]!;
  const image = packagesOf("app/package-lock.json");
  const appRange = (image[""]!.engines as { node: string }).node;
  assert.ok(admitsMajor(appRange, imageMajor), `the app's ${appRange} admits the image's Node ${imageMajor}`);
  const lowest = Math.min(...[...appRange.matchAll(/\d+/g)].map((m) => Number(m[0])));
  const ranges = Object.entries(image)
    .filter(([p, e]) => p !== "" && !e.dev && !e.peer && !Array.isArray(e.engines) && e.engines?.node)
    .map(([p, e]) => [p, (e.engines as { node: string }).node] as const);
  const refused = [];
  for (let major = lowest; major <= imageMajor; major++) {
    if (!admitsMajor(appRange, major)) continue;
    refused.push(...ranges.filter(([, r]) => !admitsMajor(r, major)).map(([p, r]) => `${p} (${r}) on Node ${major}`));
  }
  assert.deepEqual(refused, []);
});
