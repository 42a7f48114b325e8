// Every check that needs no plan, server or stack of its own (`test/<area>/<topic>.unit.ts`), in this one process:
// each alone paid about 2 s of start-up (test/support/check-modules.ts).
import { runCheckModules } from "./support/check-modules.ts";

await runCheckModules(".unit.ts");
