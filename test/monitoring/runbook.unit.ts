// Every alert's runbook link lands on a section of the README.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { allRules, RUNBOOK_BASE } from "./lib.ts";

/** GitHub's heading anchor: lower-case, spaces to dashes, punctuation dropped. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, "")
    .replace(/ /g, "-");

test("each runbook_url anchor is a README heading", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const anchors = new Set([...readme.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1])));
  const all = allRules()
    .map((r) => r.rule)
    .filter((r) => r.alert);
  assert.ok(all.length >= 20);
  for (const rule of all) {
    const url = rule.annotations?.runbook_url ?? "";
    assert.ok(url.startsWith(RUNBOOK_BASE), `${rule.alert}: ${url}`);
    const target = url.slice(url.indexOf("#") + 1);
    assert.ok(anchors.has(target), `${rule.alert}: README has no heading for #${target}`);
  }
});
