// The README's alert runbooks tell operators which memory overrides to raise. Ollama's and Qdrant's requests must equal
// their limits (infra/tier-schema.ts), so an override of one alone stops `pulumi up` at the config: each component's
// memory keys a section names, set together, must pass the schema.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseStackConfig } from "../../infra/config.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const sections = readme.split(/^### (?=Runbook: )/m).slice(1);

test("the memory overrides each runbook section names, set together per component, pass the config schema", () => {
  let named = 0;
  for (const section of sections) {
    const title = section.slice(0, section.indexOf("\n"));
    const keys = new Map<string, Set<string>>();
    for (const m of section.matchAll(/`overrides\.(\w+)\.(memoryRequest|memoryLimit)`/g))
      keys.set(m[1], (keys.get(m[1]) ?? new Set()).add(m[2]));
    for (const [component, memory] of keys) {
      named++;
      const override = { [component]: Object.fromEntries([...memory].map((k) => [k, "64Gi"])) };
      assert.doesNotThrow(
        () =>
          parseStackConfig(
            { "aws:region": "us-east-1", "agent-stack:tier": "medium", "agent-stack:overrides": JSON.stringify(override) },
            "prod",
          ),
        `${title}: ${JSON.stringify(override)}`,
      );
    }
  }
  assert.ok(named >= 3, `only ${named} components' memory overrides found`);
});
