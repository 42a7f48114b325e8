// Check modules are found by name (test/support/check-modules.ts): a module named for no planned stack would never run,
// a test file planning a stack's own file alone would build the plan again, one planning it with config of its own would
// pay 4 s of start-up for a plan the stack's process builds in 1 s, and a unit module sharing the process of every
// other would share Pulumi's process-global runtime.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { TEST_ROOT } from "../support/check-modules.ts";
import { planCheckModules } from "../support/stack-plan.ts";

const files = readdirSync(TEST_ROOT, { recursive: true, encoding: "utf8" }).map((f) => path.join(TEST_ROOT, f));

test("every <topic>.<stack>-plan.ts module under test/ runs with the dev or the prod plan", () => {
  const claimed = new Set([...planCheckModules("dev"), ...planCheckModules("prod")]);
  assert.ok(claimed.size >= 20, `found only ${claimed.size} check modules`);
  assert.deepEqual(
    files.filter((f) => /\.\w+-plan\.ts$/.test(f) && !claimed.has(f)).map((f) => path.relative(TEST_ROOT, f)),
    [],
  );
});

test("no test file plans a stack's own file by itself: it belongs in a <topic>.<stack>-plan.ts module", () => {
  const alone = files.filter(
    (f) => f.endsWith(".test.ts") && /runPlan\(\{\s*stack:\s*"\w+",?\s*\}\)/.test(readFileSync(f, "utf8")),
  );
  assert.deepEqual(
    alone.map((f) => path.relative(TEST_ROOT, f)),
    [],
  );
});

test("no test file plans a stack with config of its own either: a <topic>.<stack>-plan.ts module does", () => {
  const planning = files.filter((f) => f.endsWith(".test.ts") && /import \{[^}]*\brunPlan\b/.test(readFileSync(f, "utf8")));
  assert.deepEqual(
    planning.map((f) => path.relative(TEST_ROOT, f)),
    [],
  );
});

test("no <topic>.unit.ts module plans a stack or sets Pulumi's mocks: they all run in one process", () => {
  const units = files.filter((f) => f.endsWith(".unit.ts"));
  assert.ok(units.length >= 30, `found only ${units.length} unit modules`);
  assert.deepEqual(
    units.filter((f) => /runPlan\(|setMocks\(|stackPlan\(/.test(readFileSync(f, "utf8"))).map((f) => path.relative(TEST_ROOT, f)),
    [],
  );
});
