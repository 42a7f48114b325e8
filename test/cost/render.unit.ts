// The cost section renderings: per component on-demand vs with schedules, saving, guide figure, budget, unpriced.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateCost } from "../../infra/cost/estimate.ts";
import { money, renderCostMarkdown, renderCostTable } from "../../infra/cost/render.ts";
import { TIERS } from "../../infra/tiers.ts";
import { asgSchedule, nodeGroupWithTemplate, plan, resource, TEST_PRICES } from "./helpers.ts";

const scheduled = [
  ...nodeGroupWithTemplate("general", "m.x", 3, 100).map((r) => ({ ...r, component: "cluster" })),
  asgSchedule("down", "general", "0 0 * * *", { desired: 2 }),
  asgSchedule("up", "general", "0 6 * * *", { desired: 3 }),
  { ...resource("aws:kms/key:Key", "key"), component: "stack" },
];

describe("renderCostTable", () => {
  const text = renderCostTable(estimateCost(plan(scheduled, "medium"), { prices: TEST_PRICES }));

  it("shows each component on-demand, with schedules, and the saving", () => {
    assert.match(text, /cluster\s+\$1,125\.00\s+\$1,031\.25\s+\$93\.75 \(8\.3 %\)/);
    assert.match(text, /total\s+\$1,126\.00\s+\$1,032\.25\s+\$93\.75 \(8\.3 %\)/);
  });

  it("puts the guide's figure and the tier's budget beside the estimate", () => {
    assert.match(text, /guide\s+\$5,680\/month \(000 Self-Hosted on AWS/);
    const budget = TIERS.medium.budget.monthlyUsd;
    assert.match(
      text,
      new RegExp(
        `budget\\s+\\$${budget.toLocaleString("en-US")}/month \\(tier medium\\): \\$${money(budget - 1032.25).slice(1)} headroom`,
      ),
    );
  });

  it("lists the schedules it read and the usage assumptions", () => {
    assert.match(text, /general: 3 nodes at full size, 2\.75 on average \(-8\.3 %\)/);
    assert.match(text, /down: "0 0 \* \* \*" UTC -> desired 2/);
    assert.match(text, /usage assumptions: NAT \d+ GB\/month/);
  });

  it("the large tier's guide figure is $10,000+", () => {
    assert.match(renderCostTable(estimateCost(plan([], "large"), { prices: TEST_PRICES })), /guide\s+\$10,000\+\/month/);
  });

  it("names unpriced resources and says they are not in the totals", () => {
    const t = renderCostTable(
      estimateCost(plan([resource("aws:opensearch/domain:Domain", "search")], "dev"), { prices: TEST_PRICES }),
    );
    assert.match(
      t,
      /UNPRICED: 1 resource\(s\), not in the totals:\n\s+aws:opensearch\/domain:Domain search: type not in the cost catalog/,
    );
  });
});

describe("renderCostMarkdown", () => {
  const md = renderCostMarkdown(estimateCost(plan(scheduled, "small"), { prices: TEST_PRICES }));

  it("leads with the monthly figure and the saving, then a component table", () => {
    assert.match(
      md,
      /^#### Cost: \*\*\$1,032\.25\/month\*\* with schedules · \$1,126\.00 on-demand · saving \$93\.75 \(8\.3 %\)/,
    );
    assert.match(md, /\| component \| on-demand \| with schedules \| saving \| at max \|\n\|---\|---:\|---:\|---:\|---:\|/);
    assert.match(md, /\| \*\*total\*\* \| \*\*\$1,126\.00\*\* \| \*\*\$1,032\.25\*\* \|/);
  });

  it("shows the guide figure for the tier and the budget", () => {
    assert.match(md, /Guide figure for tier `small`: \$2,000\/month/);
    assert.match(md, new RegExp(`Budget: \\$${TIERS.small.budget.monthlyUsd.toLocaleString("en-US")}/month \\(tier small\\)`));
  });

  it("keeps the per-resource table in a collapsed block", () => {
    assert.match(md, /<details><summary>Resources: 2 priced, \d+ free, 0 unpriced<\/summary>/);
    assert.match(md, /\| general \| `aws:eks:NodeGroup` \| \$1,031\.25 \| \$1,125\.00 \|/);
  });

  it("renders a bare CostReport read back from JSON", () => {
    const bare = {
      currency: "USD" as const,
      monthlyUsd: 10,
      onDemandMonthlyUsd: 12,
      items: [{ type: "aws:kms/key:Key", name: "k", component: "stack", monthlyUsd: 10, onDemandMonthlyUsd: 12 }],
      unpriced: [],
    };
    assert.match(renderCostMarkdown(bare), /\| stack \| \$12\.00 \| \$10\.00 \| \$2\.00 \(16\.7 %\) \|/);
    assert.match(renderCostTable(bare), /total\s+\$12\.00\s+\$10\.00/);
    // A report without the at-maximum figure shows its on-demand figure there.
    assert.match(
      renderCostMarkdown(bare),
      /\| \*\*total\*\* \| \*\*\$12\.00\*\* \| \*\*\$10\.00\*\* \| \*\*\$2\.00 \(16\.7 %\)\*\* \| \*\*\$12\.00\*\* \|/,
    );
  });
});
