// The stack publishes its own plan's estimate into Prometheus: monitoring/cost/prod.json must be the prod plan's
// current estimate (regenerate with `npm run cost:metrics`), and the plan deploys it as constant recording rules.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateCost } from "../../infra/cost/estimate.ts";
import { costEstimateFile } from "../../infra/cost/estimate-file.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { COST_ESTIMATE_METRIC, costEstimateRuleSpec, readCostEstimate } from "../../monitoring/cost-estimate.ts";
import { inputs, ofType } from "../support/plan.ts";

const plan = await stackPlan("prod");
const estimate = estimateCost(plan);

describe("the published cost estimate (prod)", () => {
  it("monitoring/cost/prod.json is the plan's current estimate (else run `npm run cost:metrics`)", () => {
    assert.deepEqual(readCostEstimate("prod"), costEstimateFile(estimate));
  });

  it("hourly figures by component add up to the with-schedules monthly estimate", () => {
    const file = costEstimateFile(estimate);
    const hourly = Object.values(file.hourlyUsdByComponent).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(hourly * file.hoursPerMonth - estimate.monthlyUsd) < 1, `${hourly} x 730 vs ${estimate.monthlyUsd}`);
    assert.ok(file.hourlyUsdByComponent.cluster > 0 && file.hourlyUsdByComponent.database > 0);
  });

  it("the plan deploys one constant recording rule per component, selected by Prometheus", () => {
    const rule = ofType(plan, "kubernetes:monitoring.coreos.com/v1:PrometheusRule").find(
      (r) => inputs(r).metadata.name === "agent-stack-cost-estimate",
    );
    assert.ok(rule, "no agent-stack-cost-estimate PrometheusRule in the plan");
    assert.equal(inputs(rule).metadata.labels.release, "kube-prometheus-stack");
    const rules = inputs(rule).spec.groups[0].rules as Array<{ record: string; expr: string; labels: Record<string, string> }>;
    const file = readCostEstimate("prod")!;
    assert.deepEqual(
      rules.map((r) => [r.record, r.labels.component, r.labels.stack, Number(/^vector\((.+)\)$/.exec(r.expr)![1])]),
      Object.entries(file.hourlyUsdByComponent).map(([c, usd]) => [COST_ESTIMATE_METRIC, c, "prod", usd]),
    );
    assert.deepEqual(inputs(rule).spec, costEstimateRuleSpec(file));
  });
});
