// The deploy scripts (scripts/wait-api-ready.sh, scripts/watch-after-deploy.sh) against stand-in commands: a
// directory put first on PATH whose commands log each call, one line each, to calls.log.
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ScriptStubs {
  dir: string;
  /** A command `name` that logs its call (its arguments' newlines as spaces) and then runs `body` (bash). */
  stub(name: string, body: string): void;
  /** Runs `script` with `args`, the stubs first on PATH. */
  run(script: string, args: string[], timeoutMs: number): SpawnSyncReturns<string>;
  /** A file of `dir` as its non-empty lines, trimmed; none when it was never written. */
  lines(file: string): string[];
}

/**
 * Calls `use` with stubs in a fresh directory, removed after. `pulumi` prints `outputs`' line for the stack output it
 * is asked (kubeconfig included), and `kubectl port-forward` stays up until the script kills it (exec: the same pid,
 * so nothing outlives the script): the scripts' way to the cluster.
 */
export function withScriptStubs<T>(prefix: string, outputs: Record<string, string>, use: (s: ScriptStubs) => T): T {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const log = join(dir, "calls.log");
  const stubs: ScriptStubs = {
    dir,
    stub(name, body) {
      // bash's builtins only: a script may call a stub many times a check.
      writeFileSync(join(dir, name), `#!/usr/bin/env bash\nargs="$*"; echo "${name} \${args//$'\\n'/ }" >> "${log}"\n${body}\n`);
      chmodSync(join(dir, name), 0o755);
    },
    run: (script, args, timeoutMs) =>
      spawnSync("bash", [script, ...args], {
        env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
        encoding: "utf8",
        timeout: timeoutMs,
      }),
    lines(file) {
      try {
        return readFileSync(join(dir, file), "utf8")
          .split("\n")
          .map((l) => l.trim())
          .filter(Boolean);
      } catch {
        return [];
      }
    },
  };
  try {
    const cases = Object.entries({ kubeconfig: '{"kind":"Config"}', ...outputs })
      .map(([output, value]) => `*${output}*) echo '${value}';;`)
      .join(" ");
    stubs.stub("pulumi", `case "$*" in ${cases} esac`);
    stubs.stub("kubectl", `case "$*" in *port-forward*) exec /bin/sleep 30;; esac`);
    return use(stubs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
