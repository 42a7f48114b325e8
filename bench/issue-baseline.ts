/**
 * `npm run bench:issue`: the cache-hit / bare-route ratio of the code issue 17 was filed against (ISSUE_COMMIT, run
 * from a git worktree with this checkout's node_modules) beside this checkout's, on this machine, interleaved.
 *
 * The issue's figures (0.09: 1,303 against 14,433 req/s) came from another machine, and the ratio does not carry
 * across machines: the bare route scales with the CPU, the cache hit with Postgres' commit. Its goal, "the cache-hit
 * ratio at least 3x today's with its bench", is read here as the issue's bench run on both trees: the bare route for
 * BENCH_SECONDS, then the cache hit, 10 connections, the issue's one-line documents. Both trees' servers (each
 * `bench/app.ts` in its server-child mode, with a Postgres and a Redis of its own) stay up, and each round loads one
 * tree then the other within seconds, so the machine's drift (the bare route alone swings 2x between minutes here)
 * falls on both alike. BENCH_ROUNDS (default 5) rounds; the median quotient of the two ratios is printed, and of
 * the two trees' cache-hit req/s, which the same bare route on both would give without its noise. BENCH_DURABLE=1
 * runs both trees' Postgres as RDS runs it (server-child.ts durablePostgres), where a commit per turn costs a WAL flush.
 * Each round also loads this checkout's route with the cache hit's bytes and its turn write and nothing else of the app
 * (bench/app.ts `/same-bytes-and-turn`: no auth, validation, rate limit, cache lookup or metrics): its req/s over the
 * issue's cache hit is the most any app that commits each turn through this group commit could reach here.
 * Each load's whole-machine CPU per request (its tree's server child, Postgres and Redis, and this load generator, read
 * from /proc: machine-cpu.ts) gives the same quotients by CPU: the machine is busy through every load, so a route's
 * req/s follows its CPU per request, and that swings far less between rounds than req/s does (a tree's cache hit went
 * from 1,295 to 3,842 req/s between two rounds of one run).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { machineCpu } from "./machine-cpu.ts";
import {
  cacheHitRequest,
  type ServerChild,
  shortDocumentText,
  startBenchStores,
  spawnServerChild,
  stopServerChild,
  warmCache,
} from "./server-child.ts";

/** "App: one API route helper, ..." (2026-11-24): main when issue 17 was filed; its bench/app.ts is the issue's. */
const ISSUE_COMMIT = "f00ee06d58dd5aa4a44a88910a440a750dcf873b";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** One tree's server child on its own Postgres and Redis, warmed up as the issue's bench did. */
async function startTree(cwd: string) {
  const [pg, redis] = await startBenchStores();
  let server: ServerChild | undefined;
  const stop = async () => {
    if (server) await stopServerChild(server);
    await Promise.all([pg.stop(), redis.stop()]);
  };
  try {
    server = await spawnServerChild({ script: "bench/app.ts", cwd, databaseUrl: pg.url, redisUrl: redis.url });
    await warmCache(server, shortDocumentText);
    const child = server.child;
    const meter = machineCpu({ pid: () => child.pid }, { postgres: pg.pid, redis: redis.pid });
    return { appUrl: server.appUrl, bareUrl: server.bareUrl, meter, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

type Tree = Awaited<ReturnType<typeof startTree>>;

/** req/s, and the whole machine's CPU microseconds per request (NaN where /proc cannot be read). */
interface Load {
  perSecond: number;
  micros: number;
}

async function load(tree: Tree, opts: autocannon.Options): Promise<Load> {
  const { result, cpu } = await tree.meter.measure(
    () => autocannon({ connections: 10, duration: SECONDS, ...opts }),
    (r) => r.requests.total,
  );
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${opts.url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { perSecond: result.requests.average, micros: cpu.machine ?? Number.NaN };
}

/** The issue's bench on one tree: the bare route, then the cache hit; their ratio by req/s and by CPU per request. */
async function ratio(tree: Tree) {
  const bare = await load(tree, { url: `${tree.bareUrl}/bare` });
  const hit = await load(tree, cacheHitRequest(tree.appUrl));
  return { bare, hit, ratio: hit.perSecond / bare.perSecond, cpuRatio: bare.micros / hit.micros };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const worktree = mkdtempSync(path.join(tmpdir(), "issue-17-tree-"));
rmSync(worktree, { recursive: true });
try {
  execFileSync("git", ["worktree", "add", "--detach", worktree, ISSUE_COMMIT], { cwd: root, stdio: "ignore" });
} catch {
  throw new Error(`git worktree add ${ISSUE_COMMIT} failed: this needs a clone with history (not a shallow one)`);
}
const started: Tree[] = [];
try {
  symlinkSync(path.join(root, "node_modules"), path.join(worktree, "node_modules"));
  const issue = await startTree(worktree);
  started.push(issue);
  const now = await startTree(root);
  started.push(now);
  const rounds: Array<{ ratios: number; hits: number; ceiling: number; cpuRatios: number; cpuCeiling: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Which tree goes first alternates, so neither always meets the machine warmer.
    const results = new Map<Tree, Awaited<ReturnType<typeof ratio>>>();
    for (const tree of r % 2 === 0 ? [issue, now] : [now, issue]) results.set(tree, await ratio(tree));
    const [a, b] = [results.get(issue)!, results.get(now)!];
    const turnOnly = await load(now, { ...cacheHitRequest(now.appUrl), url: `${now.bareUrl}/same-bytes-and-turn` });
    rounds.push({
      ratios: b.ratio / a.ratio,
      hits: b.hit.perSecond / a.hit.perSecond,
      ceiling: turnOnly.perSecond / a.hit.perSecond,
      cpuRatios: b.cpuRatio / a.cpuRatio,
      cpuCeiling: a.hit.micros / turnOnly.micros,
    });
    const show = (x: typeof a) =>
      `${Math.round(x.hit.perSecond)} / ${Math.round(x.bare.perSecond)} = ${x.ratio.toFixed(3)} ` +
      `(${Math.round(x.hit.micros)} / ${Math.round(x.bare.micros)} us)`;
    console.log(
      `round ${r + 1}: issue's code ${show(a)}; this checkout ${show(b)} (cache hit / bare req/s, and machine CPU per ` +
        `request); the hit's bytes and turn alone ${Math.round(turnOnly.perSecond)} req/s (${Math.round(turnOnly.micros)} us)`,
    );
  }
  // Both bare routes are the same Hono route on the same Hono: the ratios' quotient is the cache hits' quotient with
  // two bare-route runs' noise added.
  console.log(
    `this checkout's cache-hit / bare ratio over the issue's code's, median of ${ROUNDS} rounds: ` +
      `${median(rounds.map((r) => r.ratios)).toFixed(2)}x (goal >= 3x); cache-hit req/s over the issue's code's: ` +
      `${median(rounds.map((r) => r.hits)).toFixed(2)}x; the hit's bytes and turn alone over the issue's cache hit: ` +
      `${median(rounds.map((r) => r.ceiling)).toFixed(2)}x (the most an app committing each turn could reach here)`,
  );
  console.log(
    `the same by whole-machine CPU per request, median of ${ROUNDS} rounds: ratio over the issue's code's ` +
      `${median(rounds.map((r) => r.cpuRatios)).toFixed(2)}x (goal >= 3x); the hit's bytes and turn alone over the ` +
      `issue's cache hit ${median(rounds.map((r) => r.cpuCeiling)).toFixed(2)}x`,
  );
} finally {
  await Promise.all(started.map((t) => t.stop()));
  execFileSync("git", ["worktree", "remove", "--force", worktree], { cwd: root, stdio: "ignore" });
}
