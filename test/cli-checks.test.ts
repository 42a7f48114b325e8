// Every check of a command line as a user runs it, in a child process of its own (`test/<area>/<topic>.cli.ts`), in
// this one process: each module alone paid about 1 s of start-up for a process that only spawns the CLIs.
import { runCheckModules } from "./support/check-modules.ts";

await runCheckModules(".cli.ts");
