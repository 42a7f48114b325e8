// A command-line entry point (infra/review/*-cli.ts, infra/preflight/cli.ts) as a user runs it, in a child process of
// its own. Asynchronous, so a file's tests can run two at once (TWO_AT_ONCE): a plan run is a Pulumi program under
// mocks, seconds of one core's work, and the suite's machine has two. With tsx's ESM hooks alone, as `npm test` runs:
// the CLIs are ES modules, and its CommonJS hook cost each run about 0.3 s of one core.
import { spawn } from "node:child_process";
import { REPO_ROOT } from "../../infra/plan/stackfile.ts";

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(script: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx/esm", script, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `npm run plan -- <args>`. */
export const planCli = (...args: string[]) => runCli("infra/review/plan-cli.ts", args);

/** For a describe whose tests each run CLIs: two at once. */
export const TWO_AT_ONCE = { concurrency: 2 };
