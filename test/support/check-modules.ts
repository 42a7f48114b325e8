// Check modules that run together in one process, imported by one `*.test.ts`: `test/<area>/<topic><suffix>`. Every
// `*.test.ts` is a process of its own, about 2 s of start-up here (tsx, and the imports of what it checks) before its
// first test: 37 small files of checks took 71 s alone and 22 s in one process.
import { readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

/** test/ */
export const TEST_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The check modules under test/ whose names end with `suffix`, sorted. */
export function checkModules(suffix: string): string[] {
  return readdirSync(TEST_ROOT, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(suffix))
    .sort()
    .map((f) => path.join(TEST_ROOT, f));
}

/**
 * Imports every check module ending with each suffix; one that fails to load is a failing test naming it, not a lost file.
 * The checks run once every module is loaded: loading one (tsx compiling it and its imports) holds the event loop for
 * hundreds of milliseconds, and the timing checks of the modules before it ran meanwhile (the rate limiter's
 * sliding-window check failed a CI run that way). Tests of a file run one at a time, in order: the first holds the rest.
 */
export async function runCheckModules(...suffixes: string[]): Promise<void> {
  let loaded!: () => void;
  const allLoaded = new Promise<void>((resolve) => {
    loaded = resolve;
  });
  for (const suffix of suffixes) {
    test(`the ${suffix} modules load before their checks run`, () => allLoaded);
    for (const file of checkModules(suffix)) {
      try {
        await import(pathToFileURL(file).href);
      } catch (err) {
        test(`${path.relative(TEST_ROOT, file)} loads`, () => {
          throw err;
        });
      }
    }
  }
  loaded();
}
