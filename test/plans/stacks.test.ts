// Every check that reads the dev or the prod stack's plan (`test/<area>/<topic>.<stack>-plan.ts`), in this one process:
// each stack's plan is built once.
import { runStackChecks } from "../support/stack-plan.ts";

await runStackChecks("dev", "prod");
