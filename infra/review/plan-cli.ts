// `npm run plan -- --stack <name> [--format table|json|markdown] [--config key=value ...] [--first-preview]`: the
// offline review of a stack; `--first-preview` reviews it as the first `pulumi preview` of a new stack sees it. Exit codes: 0 ok, 1 mandatory policy violation, 2 bad usage / unknown stack / bad config.
import { parseArgs } from "node:util";
import { renderCostMarkdown, renderCostTable } from "../cost/index.ts";
import { runPlan } from "../plan/harness.ts";
import { renderMarkdown, renderTable } from "../plan/report.ts";
import { configFlags, formatOf, STACK_FLAGS } from "./args.ts";
import { exitAfterFlush, isUsageError } from "./exit.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { ...STACK_FLAGS, "first-preview": { type: "boolean", default: false } },
    strict: true,
  });
  const format = formatOf(values.format);
  const planned = await runPlan({
    stack: values.stack as string,
    config: configFlags(values.config as string[]),
    firstPreview: values["first-preview"],
  });
  // The policy pack loads Pulumi's policy SDK (about 1.5 s): only once there is a plan to judge, so a bad stack name
  // or config value (runPlan) is told in 1 s.
  const { review } = await import("./review.ts");
  const plan = review(planned);
  if (format === "json") console.log(JSON.stringify(plan, null, 2));
  else if (format === "markdown") console.log(renderMarkdown(plan, renderCostMarkdown(plan.cost!)));
  else console.log(renderTable(plan, renderCostTable(plan.cost!)));
  return plan.policies?.violations.some((v) => v.level === "mandatory") ? 1 : 0;
}

main().then(exitAfterFlush, (err: unknown) => {
  if (isUsageError(err)) {
    console.error(`plan: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
