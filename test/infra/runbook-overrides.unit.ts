// The README's alert runbooks tell operators which overrides to raise. Some only pass the config together (Ollama's and
// Qdrant's requests equal their limits; a Qdrant peer needs a vector node of its own: infra/tier-schema.ts), and an
// override that fails the config stops `pulumi up` when the alert fired. Each section's overrides, raised together,
// must pass the schema.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseStackConfig } from "../../infra/config.ts";
import { TIERS } from "../../infra/tiers.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const sections = readme.split(/^### (?=Runbook: )/m).slice(1);
const TIER = "medium";

/** The section's overrides (placeholders like `<group>` left out), each raised: memory to 64Gi, a count by one. */
function raised(section: string): Record<string, any> {
  const override: Record<string, any> = {};
  for (const m of section.matchAll(/`overrides\.([\w.]+)`/g)) {
    const path = m[1].split(".");
    const current = path.reduce<any>((v, k) => v?.[k], TIERS[TIER]);
    const value = /^memory(Request|Limit)$/.test(path.at(-1)!) ? "64Gi" : typeof current === "number" ? current + 1 : undefined;
    if (value === undefined) continue;
    let at = override;
    for (const k of path.slice(0, -1)) at = at[k] ??= {};
    at[path.at(-1)!] = value;
  }
  return override;
}

test("the overrides each runbook section names, raised together, pass the config schema", () => {
  let named = 0;
  for (const section of sections) {
    const override = raised(section);
    if (Object.keys(override).length === 0) continue;
    named++;
    const title = section.slice(0, section.indexOf("\n"));
    assert.doesNotThrow(
      () =>
        parseStackConfig(
          { "aws:region": "us-east-1", "agent-stack:tier": TIER, "agent-stack:overrides": JSON.stringify(override) },
          "prod",
        ),
      `${title}: ${JSON.stringify(override)}`,
    );
  }
  assert.ok(named >= 4, `only ${named} sections name overrides`);
});
