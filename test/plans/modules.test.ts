// The check modules of the stacks' plans are found by name (test/support/stack-plan.ts): a module named for no
// planned stack would never run, and a test file planning a stack's own file alone would build the plan again.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { checkModules, TEST_ROOT } from "../support/stack-plan.ts";

const files = readdirSync(TEST_ROOT, { recursive: true, encoding: "utf8" }).map((f) => path.join(TEST_ROOT, f));

test("every <topic>.<stack>-plan.ts module under test/ runs with the dev or the prod plan", () => {
  const claimed = new Set([...checkModules("dev"), ...checkModules("prod")]);
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
