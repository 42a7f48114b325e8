// The plan diff: added, removed and changed resources with their monthly deltas, and its two renderings.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffCosts, renderDiffMarkdown, renderDiffTable } from "../../infra/cost/diff.ts";
import { estimateCost } from "../../infra/cost/estimate.ts";
import { nodeGroupWithTemplate, plan, resource, TEST_PRICES } from "./helpers.ts";

function costed(resources: Parameters<typeof plan>[0]) {
  const p = plan(resources);
  return { ...p, cost: estimateCost(p, { prices: TEST_PRICES }) };
}

describe("diffCosts", () => {
  const base = costed([
    ...nodeGroupWithTemplate("general", "m.x", 2, 100),
    resource("aws:kms/key:Key", "old-key"),
    resource("aws:iam/role:Role", "role"),
  ]);
  const head = costed([
    ...nodeGroupWithTemplate("general", "m.x", 3, 100),
    resource("aws:eks/cluster:Cluster", "eks", { version: "1.35" }),
    resource("aws:iam/role:Role", "role"),
  ]);
  const d = diffCosts(base, head);

  it("lists added, removed and changed resources with their deltas, largest first", () => {
    assert.deepEqual(
      d.changes.map((c) => [c.change, c.name, c.deltaMonthlyUsd]),
      [
        ["changed", "general", 375],
        ["added", "eks", 73],
        ["removed", "old-key", -1],
      ],
    );
    assert.deepEqual(d.changes[0].changedInputs, ["scalingConfig"]);
    assert.equal(d.unchanged, 2, "the launch template and the role");
  });

  it("totals: the delta is head minus base", () => {
    assert.equal(d.base.monthlyUsd, 751);
    assert.equal(d.head.monthlyUsd, 1198);
    assert.equal(d.deltaMonthlyUsd, 447);
  });

  it("input key order does not make a change", () => {
    const a = costed([resource("aws:kms/key:Key", "k", { a: 1, b: { x: 1, y: 2 } })]);
    const b = costed([resource("aws:kms/key:Key", "k", { b: { y: 2, x: 1 }, a: 1 })]);
    assert.equal(diffCosts(a, b).changes.length, 0);
  });

  it("renders a table and a markdown block with the signed delta", () => {
    const table = renderDiffTable(d);
    assert.match(table, /\$751\.00 -> \$1,198\.00\/month with schedules: \+\$447\.00/);
    assert.match(table, /changed\s+general\s+aws:eks:NodeGroup\s+\$750\.00\s+\$1,125\.00\s+\+\$375\.00\s+scalingConfig/);
    const md = renderDiffMarkdown(d);
    assert.match(md, /^#### Cost change: \*\*\+\$447\.00\/month\*\*/);
    assert.match(md, /\| removed \| old-key \| `aws:kms:Key` \| \$1\.00 \| \$0\.00 \| -\$1\.00 \|/);
  });
});
