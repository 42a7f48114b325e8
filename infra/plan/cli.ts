// `npm run plan -- --stack <name> [--format table|json|markdown]`: the offline review of a stack.
// Exit codes: 0 ok, 1 mandatory policy violation, 2 bad usage / unknown stack / bad config.
import { parseArgs } from "node:util";
import { renderCostMarkdown, renderCostTable } from "../cost/index.ts";
import { exitAfterFlush, isUsageError } from "./exit.ts";
import { runPlan } from "./harness.ts";
import { renderMarkdown, renderTable } from "./report.ts";
import { review } from "./review.ts";

const FORMATS = ["table", "json", "markdown"] as const;
type Format = (typeof FORMATS)[number];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      stack: { type: "string", short: "s" },
      format: { type: "string", short: "f", default: "table" },
      // What-if without editing the stack file: --config agent-stack:tier=small (repeatable).
      config: { type: "string", short: "c", multiple: true, default: [] },
    },
    strict: true,
  });
  const format = values.format as Format;
  if (!FORMATS.includes(format)) {
    console.error(`--format: "${values.format}" is not a format; allowed: ${FORMATS.join(", ")}`);
    return 2;
  }
  const config: Record<string, string> = {};
  for (const pair of values.config as string[]) {
    const eq = pair.indexOf("=");
    if (eq < 1) {
      console.error(`--config: "${pair}" is not key=value (e.g. agent-stack:tier=small)`);
      return 2;
    }
    config[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const plan = review(await runPlan({ stack: values.stack as string, config }));
  if (format === "json") console.log(JSON.stringify(plan, null, 2));
  else if (format === "markdown") console.log(renderMarkdown(plan, renderCostMarkdown(plan.cost!)));
  else console.log(renderTable(plan, renderCostTable(plan.cost!)));
  return plan.policies?.violations.some((v) => v.level === "mandatory") ? 1 : 0;
}

main().then(
  exitAfterFlush,
  (err: unknown) => {
    if (isUsageError(err)) {
      console.error(`plan: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
