// The pack's shape: enough policies, well-formed, configurable, documented, and loadable by the Pulumi CLI.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { resolvePackConfig } from "../../policy/lib/pack-config.ts";
import { policies } from "../../policy/policies/index.ts";

const read = (path: string) => readFileSync(new URL(`../../policy/${path}`, import.meta.url), "utf8");

test("the pack has at least 20 uniquely named policies, each with a description and a level", () => {
  assert.ok(policies.length >= 20, `${policies.length} policies`);
  const names = policies.map((p) => p.name);
  assert.equal(new Set(names).size, names.length, "names are unique");
  for (const p of policies) {
    assert.match(p.name, /^[a-z0-9]+(-[a-z0-9]+)*$/, p.name);
    assert.notEqual(p.name, "all", "reserved by the engine");
    assert.ok(p.description.length > 20, `${p.name} describes itself`);
    assert.ok(p.enforcementLevel === "mandatory" || p.enforcementLevel === "advisory", `${p.name} names its level`);
    assert.ok(!p.configSchema?.properties.enforcementLevel, `${p.name}: enforcementLevel is not a config property`);
  }
});

test("every config default satisfies its own schema, so configuring a default value explicitly is accepted", () => {
  const defaults = Object.fromEntries([...resolvePackConfig(policies)].map(([name, c]) => [name, c.properties]));
  assert.doesNotThrow(() => resolvePackConfig(policies, defaults));
});

test("policy/README.md lists every policy with its level", () => {
  const readme = read("README.md");
  for (const p of policies) {
    const row = readme.split("\n").find((line) => line.startsWith(`| \`${p.name}\` |`));
    assert.ok(row, `${p.name} is in the README table`);
    assert.ok(row.includes(`| ${p.enforcementLevel} |`), `${p.name} is listed as ${p.enforcementLevel}`);
    for (const key of Object.keys(p.configSchema?.properties ?? {}))
      assert.ok(row.includes(`\`${key}\``), `${p.name}'s config ${key} is documented`);
  }
});

test("policy/README.md's summary counts the policies and their levels", () => {
  const count = (level: string) => policies.filter((p) => p.enforcementLevel === level).length;
  assert.ok(
    read("README.md").includes(`${policies.length} policies: ${count("mandatory")} mandatory, ${count("advisory")} advisory.`),
  );
});

test("PulumiPolicy.yaml and package.json point the CLI at the tsx entry", () => {
  const project = parse(read("PulumiPolicy.yaml"));
  assert.equal(project.runtime, "nodejs");
  const pkg = JSON.parse(read("package.json"));
  assert.equal(pkg.type, "module", "policy/*.ts stay ESM like the rest of the repo");
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/, "PolicyPack reads its version from package.json");
  assert.equal(project.version, pkg.version);
  assert.ok(existsSync(new URL(`../../policy/${pkg.main}`, import.meta.url)), `main ${pkg.main} exists`);
});
