// Every check that reads the dev stack's plan (`test/<area>/<topic>.dev-plan.ts`), in this one process: the plan is built once.
import { runStackChecks } from "../support/stack-plan.ts";

await runStackChecks("dev");
