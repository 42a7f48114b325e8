// `npm run preflight -- --stack <name> [--format table|json] [--config key=value ...]`: before `pulumi up`, with
// the deployer's AWS credentials, checks that the account and the registries can take the stack.
// Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 bad usage, bad config or no credentials.
import { parseArgs } from "node:util";
import { parseStackConfig } from "../config.ts";
import { configFlags, STACK_FLAGS, UsageError } from "../review/args.ts";
import { exitAfterFlush, isUsageError } from "../review/exit.ts";
import { loadStackFile } from "../plan/stackfile.ts";
import { needsOf } from "./needs.ts";
import { renderTable } from "./report.ts";

const FORMATS = ["table", "json"];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: STACK_FLAGS,
    strict: true,
  });
  if (!values.stack) throw new UsageError("--stack is required, e.g. npm run preflight -- --stack prod");
  if (!FORMATS.includes(values.format!))
    throw new UsageError(`--format: "${values.format}" is not a format; allowed: ${FORMATS.join(", ")}`);
  const file = loadStackFile(values.stack);
  const config = { ...file.config, ...configFlags(values.config as string[]) };
  const needs = needsOf(parseStackConfig(config, file.stack));
  // The AWS SDK's clients load once the arguments are known good: a usage error took 2.5 s to print, now 1 s.
  const { runPreflight } = await import("./run.ts");
  const results = await runPreflight(needs);
  console.log(values.format === "json" ? JSON.stringify({ stack: needs.stack, results }, null, 2) : renderTable(results));
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

main().then(exitAfterFlush, (err: unknown) => {
  // By name, as isUsageError does: aws.ts (CredentialError) is loaded only with run.ts.
  if (isUsageError(err) || (err instanceof Error && err.name === "CredentialError")) {
    console.error(`preflight: ${err.message}`);
    exitAfterFlush(2);
    return;
  }
  // Anything else is a bug or an outage: one sentence, never a stack trace.
  console.error(`preflight: could not finish: ${err instanceof Error ? err.message : String(err)}`);
  exitAfterFlush(1);
});
