// Every check that reads the prod stack's plan (`test/<area>/<topic>.prod-plan.ts`), in this one process: the plan is built once.
import { runStackChecks } from "../support/stack-plan.ts";

await runStackChecks("prod");
