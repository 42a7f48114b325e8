// Shared checks for the coverage modules: a real stack's plan is fully priced (the stack's one plan, from
// test/support/stack-plan.ts).
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { estimateCost, type CostEstimate } from "../../infra/cost/estimate.ts";
import { ASG_SCHEDULE, SCHEDULER_SCHEDULE } from "../../infra/cost/schedule/targets.ts";
import { type PlannedStack, stackPlan } from "../support/stack-plan.ts";
import type { Plan } from "../../infra/plan/types.ts";

export interface CoverageOptions {
  /** Bounds on the on-demand total: a guard against unit mistakes (hours vs months), not a budget. */
  onDemandBetween?: [number, number];
}

export function describeStackCoverage(stack: PlannedStack, options: CoverageOptions = {}): void {
  describe(`the ${stack} plan is fully priced`, () => {
    let plan: Plan;
    let report: CostEstimate;
    before(async () => {
      plan = await stackPlan(stack);
      report = estimateCost(plan);
    });

    it("every resource type is priced or declared free in the catalog", () => {
      const byType = new Map<string, string[]>();
      for (const u of report.unpriced) byType.set(u.type, [...(byType.get(u.type) ?? []), `${u.name}: ${u.reason}`]);
      assert.equal(
        byType.size,
        0,
        `unpriced in the ${stack} plan; give each type a pricer or a free reason in infra/cost/catalog.ts:\n` +
          [...byType].map(([type, names]) => `  ${type}\n    ${names.join("\n    ")}`).join("\n"),
      );
    });

    it("every schedule acts on a node group or RDS instance of the plan", () => {
      assert.deepEqual(
        report.warnings.filter((w) => w.startsWith("schedule ")),
        [],
      );
    });

    it("schedules never cost more than running 730 h at full size", () => {
      for (const i of report.items)
        assert.ok(i.monthlyUsd <= i.onDemandMonthlyUsd + 0.005, `${i.name}: ${i.monthlyUsd} > ${i.onDemandMonthlyUsd}`);
      assert.ok(report.monthlyUsd <= report.onDemandMonthlyUsd);
    });

    it("scale-down schedules in the plan show up as a saving", () => {
      const scheduled = plan.resources.filter((r) => r.type === ASG_SCHEDULE || r.type === SCHEDULER_SCHEDULE);
      // Every tier has off-peak hours (infra/tiers.ts schedule.offPeak).
      assert.ok(scheduled.length > 0, `no scale-down schedules in the ${stack} plan`);
      assert.ok(report.schedules.length > 0, "schedules exist but none was matched to what it scales");
      assert.ok(
        report.monthlyUsd < report.onDemandMonthlyUsd,
        `with schedules ${report.monthlyUsd} is not below on-demand ${report.onDemandMonthlyUsd}`,
      );
    });

    it("every priced resource costs something, and the totals add up", () => {
      for (const i of report.items) assert.ok(i.onDemandMonthlyUsd > 0, `${i.type} ${i.name} priced at $0`);
      const sum = report.items.reduce((s, i) => s + i.monthlyUsd, 0);
      assert.ok(Math.abs(sum - report.monthlyUsd) < 0.05);
    });

    if (options.onDemandBetween) {
      const [low, high] = options.onDemandBetween;
      it(`the on-demand total is between $${low} and $${high}`, () => {
        assert.ok(report.onDemandMonthlyUsd >= low && report.onDemandMonthlyUsd <= high, String(report.onDemandMonthlyUsd));
      });
    }
  });
}
