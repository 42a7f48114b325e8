/**
 * What `bench/app.ts` and `bench/issue-baseline.ts` share: a tree's `bench/app.ts` started in its server-child mode,
 * its cache warmed the way the bench warmed it, and the cache-hit request they load it with.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import type autocannon from "autocannon";
import { build, type Plugin } from "esbuild";
import { USER_KEY } from "../test/support/app.ts";
import { api } from "../test/support/http.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { startRedis } from "../test/support/redis.ts";

export const CACHED_QUESTION = "What causes the tides?";

/**
 * BENCH_DURABLE=1 runs the benches' Postgres with its defaults, as RDS runs it (fsync, synchronous_commit and
 * full_page_writes on: a commit waits for its WAL flush); unset, with the tests' settings (all three off).
 */
function durablePostgres(): boolean {
  const value = process.env.BENCH_DURABLE ?? "";
  if (value !== "" && value !== "1") throw new Error(`BENCH_DURABLE=${value}: expected 1 or unset`);
  return value === "1";
}

/** A bench's Postgres (durable or not: durablePostgres) and Redis, started together. */
export const startBenchStores = () => Promise.all([startPostgres({ durable: durablePostgres() }), startRedis()]);

/** The one-line documents of the bench (f00ee06 bench/app.ts). */
export const shortDocumentText = (i: number) =>
  `Document ${i} explains topic ${i}: tides, moons, oceans and gravity number ${i}.`;

export interface ServerChild {
  child: ChildProcess;
  appUrl: string;
  bareUrl: string;
}

/**
 * Each module's `import.meta.url` written as its own source's URL: in one bundle they would all be the bundle's, and
 * the app finds its migrations (start.ts MIGRATIONS_DIR) and the tests' helpers the repository by it.
 */
const ownImportMetaUrl: Plugin = {
  name: "own-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => ({
      contents: (await readFile(args.path, "utf8")).replace(
        /\bimport\.meta\.url\b/g,
        JSON.stringify(pathToFileURL(args.path).href),
      ),
      loader: "ts",
    }));
  },
};

/**
 * `script` as the app ships: one ESM bundle with its dependencies external, as app/Dockerfile builds it (app's `npm
 * run build`), run by plain node. Through tsx, the bench measured tsx's transform, which names each function
 * expression by a call as it is created (`__name`): a cache hit cost the server 252 us of CPU against the bundle's 223
 * (median of four interleaved rounds). Written under `cwd`'s app/dist (ignored by git), where node finds the
 * dependencies.
 */
async function bundle(script: string, cwd: string): Promise<string> {
  const outfile = path.join(cwd, "app", "dist", "bench-child.mjs");
  await build({
    entryPoints: [path.resolve(cwd, script)],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    plugins: [ownImportMetaUrl],
    logLevel: "warning",
  });
  return outfile;
}

/**
 * Spawns `script` (a `bench/app.ts`, bundled: `bundle`) with BENCH_CHILD=1 in `cwd` on the given Postgres and Redis,
 * and resolves once it printed its URLs: its first JSON line (node flags such as --trace-gc print to the same stdout).
 */
export async function spawnServerChild(opts: {
  script: string;
  cwd?: string;
  databaseUrl: string;
  redisUrl: string;
  nodeArgs?: string[];
}): Promise<ServerChild> {
  const cwd = opts.cwd ?? process.cwd();
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), await bundle(opts.script, cwd)], {
    cwd,
    env: { ...process.env, BENCH_CHILD: "1", BENCH_DATABASE_URL: opts.databaseUrl, BENCH_REDIS_URL: opts.redisUrl },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.startsWith("{")) resolve(line);
      else process.stderr.write(`${line}\n`);
    });
    child.once("exit", (code) => reject(new Error(`${opts.script} exited with ${code}`)));
  });
  return { child, ...(JSON.parse(firstLine) as { appUrl: string; bareUrl: string }) };
}

/** Stops a server child (SIGTERM: it closes the app) and waits for it to exit. */
export async function stopServerChild({ child }: ServerChild): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
}

/**
 * Ingests 50 documents and asks CACHED_QUESTION twice, then gives the second, cached, response to the child's bare
 * routes that answer with the hit's bytes (bench/app.ts `/same-bytes`; a tree without them answers 404, unread).
 */
export async function warmCache({ appUrl, bareUrl }: ServerChild, documentText: (i: number) => string): Promise<void> {
  const user = api(appUrl, USER_KEY);
  const post = async (path: string, body: unknown) => {
    const res = await user.post<{ cached?: boolean }>(path, body);
    if (res.status >= 300) throw new Error(`${appUrl}${path}: ${res.status} ${res.text}`);
    return res.body;
  };
  await post("/api/v1/documents", {
    documents: Array.from({ length: 50 }, (_, i) => ({ id: `doc-${i}`, title: `Doc ${i}`, text: documentText(i) })),
  });
  await post("/api/v1/query", { query: CACHED_QUESTION });
  const cached = await post("/api/v1/query", { query: CACHED_QUESTION });
  if (!cached.cached) throw new Error(`${appUrl}: the warm-up query was not cached`);
  await fetch(`${bareUrl}/same-bytes`, { method: "PUT", body: JSON.stringify(cached) });
}

export const API_HEADERS = { authorization: `Bearer ${USER_KEY}`, "content-type": "application/json" };

/** The cache hit as both benches load it. */
export const cacheHitRequest = (appUrl: string): autocannon.Options => ({
  url: `${appUrl}/api/v1/query`,
  method: "POST",
  headers: API_HEADERS,
  body: JSON.stringify({ query: CACHED_QUESTION }),
});
