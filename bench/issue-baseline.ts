/**
 * `npm run bench:issue`: the cache-hit / bare-route ratio of the code issue 17 was filed against (ISSUE_COMMIT, run
 * from a git worktree with this checkout's node_modules) beside this checkout's, on this machine, alternated.
 *
 * The issue's figures (0.09: 1,303 against 14,433 req/s) came from another machine, and the ratio does not carry
 * across machines: the bare route scales with the CPU, the cache hit with Postgres' commit. Its goal, "the cache-hit
 * ratio at least 3x today's with its bench", is read here as the issue's bench run on both trees side by side:
 * the bare route for BENCH_SECONDS, then the cache hit, 10 connections, the issue's one-line documents.
 * BENCH_ROUNDS (default 3) pairs are run; each tree's median ratio is printed, and their quotient.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** "App: one API route helper, ..." (2026-11-24): main when issue 17 was filed; its bench/app.ts is the issue's. */
const ISSUE_COMMIT = "f00ee06d58dd5aa4a44a88910a440a750dcf873b";
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = process.env.BENCH_SECONDS ?? "5";
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Throughput {
  bare: number;
  hit: number;
}

/** Runs `bench/app.ts` in `cwd` and reads the two req/s figures from its output with `parse`. */
function runBench(cwd: string, env: Record<string, string>, parse: (out: string) => Throughput): Promise<Throughput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/app.ts"], {
      cwd,
      env: { ...process.env, BENCH_SECONDS: SECONDS, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`bench/app.ts in ${cwd} exited with ${code}:\n${out}`));
      try {
        resolve(parse(out));
      } catch (err) {
        reject(err);
      }
    });
  });
}

const number = (out: string, pattern: RegExp, what: string): number => {
  const match = pattern.exec(out);
  if (!match) throw new Error(`no ${what} in the bench's output:\n${out}`);
  return Number(match[1]);
};

/** The issue's bench prints a console.table: `│ bare Hono route │ 21502 │ ...`. */
const issueTable = (out: string): Throughput => ({
  bare: number(out, /│ bare Hono route\s*│\s*(\d+)/, "bare route row"),
  hit: number(out, /│ cache-hit query\s*│\s*(\d+)/, "cache-hit row"),
});

/** BENCH_ONLY=ratio prints `bare N req/s, cache hit M req/s`. */
const ratioLine = (out: string): Throughput => ({
  bare: number(out, /^bare (\d+) req\/s/m, "bare route line"),
  hit: number(out, /cache hit (\d+) req\/s/, "cache-hit line"),
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const tree = mkdtempSync(path.join(tmpdir(), "issue-17-tree-"));
rmSync(tree, { recursive: true });
try {
  execFileSync("git", ["worktree", "add", "--detach", tree, ISSUE_COMMIT], { cwd: root, stdio: "ignore" });
} catch {
  throw new Error(`git worktree add ${ISSUE_COMMIT} failed: this needs a clone with history (not a shallow one)`);
}
try {
  symlinkSync(path.join(root, "node_modules"), path.join(tree, "node_modules"));
  const pairs: Array<{ issue: Throughput; now: Throughput }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const issue = await runBench(tree, {}, issueTable);
    const now = await runBench(root, { BENCH_ONLY: "ratio", BENCH_ROUNDS: "1", BENCH_DOCS: "short" }, ratioLine);
    pairs.push({ issue, now });
    console.log(
      `round ${r + 1}: issue's code ${issue.hit} / ${issue.bare} = ${(issue.hit / issue.bare).toFixed(3)}; ` +
        `this checkout ${now.hit} / ${now.bare} = ${(now.hit / now.bare).toFixed(3)} (cache hit / bare req/s)`,
    );
  }
  const issueRatio = median(pairs.map((p) => p.issue.hit / p.issue.bare));
  const nowRatio = median(pairs.map((p) => p.now.hit / p.now.bare));
  console.log(
    `median cache-hit / bare ratio: issue's code ${issueRatio.toFixed(3)}, this checkout ${nowRatio.toFixed(3)}: ` +
      `${(nowRatio / issueRatio).toFixed(2)}x (goal >= 3x); by cache-hit req/s alone: ` +
      `${(median(pairs.map((p) => p.now.hit)) / median(pairs.map((p) => p.issue.hit))).toFixed(2)}x`,
  );
} finally {
  execFileSync("git", ["worktree", "remove", "--force", tree], { cwd: root, stdio: "ignore" });
}
