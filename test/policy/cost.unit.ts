// Cost policies: instance allow-lists per tier, GPU placement, and the stack budget with the real estimator.
import assert from "node:assert/strict";
import { test } from "node:test";
import { gpuOnlyInGpuGroup, instanceTypesAllowed, stackWithinBudget, tierAllowList } from "../../policy/policies/cost.ts";
import { budgetCheck, estimateCost } from "../../infra/cost/index.ts";
import type { PlanConfig } from "../../infra/plan/types.ts";
import { instanceTypeAllowList, TIER_NAMES, TIERS } from "../../infra/tiers.ts";
import { USAGE } from "../../infra/usage.ts";
import { check, checkOnPreview, planOf, resource, unknownStringValue } from "./support.ts";

const nodeGroup = (name: string, instanceTypes: string[], extra: Record<string, unknown> = {}) =>
  resource("aws:eks/nodeGroup:NodeGroup", name, {
    clusterName: "c",
    instanceTypes,
    capacityType: "ON_DEMAND",
    scalingConfig: { minSize: 1, desiredSize: 1, maxSize: 2 },
    labels: { role: name },
    ...extra,
  });

test("tierAllowList: a tier allows its own and smaller tiers' types, never bigger ones", () => {
  const dev = tierAllowList("dev");
  const medium = tierAllowList("medium");
  assert.ok(dev.includes("m7g.xlarge") && dev.includes("db.t4g.micro") && dev.includes("cache.t4g.micro"));
  assert.ok(dev.includes("t4g.nano"), "dev's NAT instance");
  assert.ok(!dev.includes("g5.2xlarge"));
  assert.ok(medium.includes("g5.2xlarge") && medium.includes("m7g.xlarge") && medium.includes("db.m7g.2xlarge"));
  assert.ok(!medium.includes("db.r6g.4xlarge"), "large's database class");
});

test("tierAllowList covers every instance, database and cache type a tier names (no sized field forgotten)", () => {
  const typesIn = (v: unknown): string[] =>
    typeof v === "string"
      ? /^(db\.|cache\.)?[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(v)
        ? [v]
        : []
      : typeof v === "object" && v
        ? Object.values(v).flatMap(typesIn)
        : [];
  for (const tier of TIER_NAMES) {
    const allowed = new Set(tierAllowList(tier));
    assert.deepEqual(
      typesIn(TIERS[tier]).filter((t) => !allowed.has(t)),
      [],
      tier,
    );
  }
});

test("the pack's generated allow-lists (policy/lib/instance-types.ts) match the tiers: run npm run docs:config when stale", async () => {
  const { INSTANCE_TYPES_FILE, renderInstanceTypes } = await import("../../infra/config-table.ts");
  const { readFileSync } = await import("node:fs");
  assert.equal(readFileSync(INSTANCE_TYPES_FILE, "utf8"), renderInstanceTypes());
  for (const tier of TIER_NAMES) assert.deepEqual(tierAllowList(tier), instanceTypeAllowList(tier), tier);
});

test("the pack's generated usage assumptions (policy/lib/tier-usage.ts) match infra/usage.ts: run npm run docs:config when stale", async () => {
  const { TIER_USAGE_FILE, renderTierUsage } = await import("../../infra/config-table.ts");
  const { readFileSync } = await import("node:fs");
  assert.equal(readFileSync(TIER_USAGE_FILE, "utf8"), renderTierUsage());
});

test("instance-types-allowed: types outside the tier's list fail, with additionalTypes as the reviewed escape hatch", () => {
  assert.deepEqual(check(instanceTypesAllowed, [nodeGroup("general", ["m7g.xlarge"])], { tier: "dev" }), []);
  const [v] = check(instanceTypesAllowed, [nodeGroup("general", ["c6i.2xlarge"])], { tier: "dev" });
  assert.match(v.message, /c6i\.2xlarge not allowed in tier dev/);
  assert.deepEqual(
    check(instanceTypesAllowed, [nodeGroup("general", ["c6i.2xlarge"])], {
      tier: "dev",
      config: { additionalTypes: ["c6i.2xlarge"] },
    }),
    [],
  );
  const db = resource("aws:rds/instance:Instance", "db", { instanceClass: "db.r6g.4xlarge" });
  assert.equal(check(instanceTypesAllowed, [db], { tier: "medium" }).length, 1);
  const cache = resource("aws:elasticache/replicationGroup:ReplicationGroup", "cache", { nodeType: "cache.r6g.large" });
  assert.deepEqual(check(instanceTypesAllowed, [cache], { tier: "medium" }), []);
});

test("instance-types-allowed: without a tier tag the policy cannot decide and says how to fix it", () => {
  const [v] = check(instanceTypesAllowed, [nodeGroup("general", ["t3.xlarge"])], { tier: undefined });
  assert.match(v.message, /cannot tell the tier/);
});

const tainted = { taints: [{ key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" }] };

test("gpu-only-in-gpu-group: GPU types only in the tainted gpu group, and only GPU types there", () => {
  assert.deepEqual(
    check(gpuOnlyInGpuGroup, [nodeGroup("gpu", ["g5.4xlarge"], tainted), nodeGroup("general", ["c6i.2xlarge"])]),
    [],
  );
  assert.match(
    check(gpuOnlyInGpuGroup, [nodeGroup("general", ["c6i.2xlarge", "g5.xlarge"])])[0].message,
    /GPU type g5\.xlarge in a node group labelled role=general/,
  );
  assert.match(check(gpuOnlyInGpuGroup, [nodeGroup("gpu", ["g5.4xlarge"])])[0].message, /no NO_SCHEDULE taint/);
  // PREFER_NO_SCHEDULE only asks: the scheduler still puts any pod on a GPU node when nothing else fits.
  const preferred = { taints: [{ key: "nvidia.com/gpu", value: "true", effect: "PREFER_NO_SCHEDULE" }] };
  assert.match(check(gpuOnlyInGpuGroup, [nodeGroup("gpu", ["g5.4xlarge"], preferred)])[0].message, /no NO_SCHEDULE taint/);
  const evicting = { taints: [{ key: "nvidia.com/gpu", value: "true", effect: "NO_EXECUTE" }] };
  assert.deepEqual(check(gpuOnlyInGpuGroup, [nodeGroup("gpu", ["g5.4xlarge"], evicting)]), []);
  assert.match(
    check(gpuOnlyInGpuGroup, [nodeGroup("gpu", ["g5.4xlarge", "c6i.large"], tainted)])[0].message,
    /non-GPU types c6i\.large/,
  );
  const template = resource("aws:ec2/launchTemplate:LaunchTemplate", "lt", { instanceType: "p4d.24xlarge" });
  assert.match(check(gpuOnlyInGpuGroup, [template])[0].message, /outside an EKS gpu node group/);
  assert.deepEqual(
    check(gpuOnlyInGpuGroup, [resource("aws:ec2/launchTemplate:LaunchTemplate", "lt", { instanceType: "c6i.large" })]),
    [],
  );
});

// Ten GPU nodes cost thousands a month at any on-demand price; one small node costs far less than $1,000.
const expensive = [
  nodeGroup("gpu", ["g5.4xlarge"], { ...tainted, scalingConfig: { minSize: 10, desiredSize: 10, maxSize: 10 } }),
];

const resolved = (monthlyUsd: number): PlanConfig => ({
  tier: "small",
  region: "us-east-1",
  timeZone: "UTC",
  budget: { monthlyUsd },
  usage: USAGE.small,
});

test("stack-within-budget: the estimate is compared with the budget the plan carries, an AWS Budget or the configured one", () => {
  const [overTier] = check(stackWithinBudget, expensive, { tier: "small", planConfig: resolved(2750) });
  assert.equal(overTier.level, "mandatory");
  assert.match(
    overTier.message,
    /estimated \$[\d,]+\/month exceeds the \$2,750 budget \(the stack's budget\.monthlyUsd\); largest: gpu \$[\d,]+/,
  );
  // An override the stack resolved wins over any preset: the tier's name is only a label.
  assert.match(check(stackWithinBudget, expensive, { tier: "large", planConfig: resolved(2750) })[0].message, /\$2,750 budget/);
  assert.equal(overTier.resource, "urn:pulumi:test::agent-stack::pulumi:pulumi:Stack::agent-stack-test");

  const budget = resource("aws:budgets/budget:Budget", "monthly", {
    budgetType: "COST",
    limitAmount: "100000",
    limitUnit: "USD",
    timeUnit: "MONTHLY",
  });
  assert.deepEqual(
    check(stackWithinBudget, [...expensive, budget], { tier: "small" }),
    [],
    "the stack's own AWS Budget is the limit",
  );
  const tight = resource("aws:budgets/budget:Budget", "budget", {
    name: "agent-stack-test",
    limitAmount: "100.00",
    limitUnit: "USD",
    timeUnit: "MONTHLY",
  });
  assert.match(
    check(stackWithinBudget, [...expensive, tight], { tier: "large" })[0].message,
    /\$100 budget \(aws\.budgets\.Budget agent-stack-test\)/,
  );
  assert.match(
    check(stackWithinBudget, expensive, { tier: "small", config: { monthlyBudgetUsd: 500 } })[0].message,
    /\$500 budget \(policy config/,
  );
  assert.deepEqual(check(stackWithinBudget, expensive, { tier: "small", config: { monthlyBudgetUsd: 1_000_000 } }), []);
  assert.deepEqual(
    check(stackWithinBudget, [nodeGroup("general", ["t3.large"])], { tier: "small", planConfig: resolved(2750) }),
    [],
  );
});

test("stack-within-budget: an estimate a dollar over the budget fails it, one at the budget passes (no slack)", () => {
  const cost = estimateCost(planOf(expensive, "small", resolved(2750)));
  const judged = (monthlyBudgetUsd: number) =>
    check(stackWithinBudget, expensive, { tier: "small", config: { monthlyBudgetUsd }, cost }).length;
  assert.equal(judged(cost.monthlyUsd - 1), 1);
  assert.equal(judged(cost.monthlyUsd), 0);
});

test("stack-within-budget: a region without a price table fails it, saying so, instead of passing at $0", () => {
  // eu-central-1 has no table (infra/cost/prices/): every priced resource was UNPRICED, the total $0, and any budget met.
  const expected =
    /^cannot check the \$100 budget \(policy config monthlyBudgetUsd\): no price table for region eu-central-1, .*add infra\/cost\/prices\/eu-central-1\.json/;
  for (const cost of [undefined, estimateCost(planOf(expensive, "small", null, "eu-central-1"))]) {
    const violations = check(stackWithinBudget, expensive, { region: "eu-central-1", config: { monthlyBudgetUsd: 100 }, cost });
    assert.equal(violations.length, 1, cost ? "offline, with review()'s estimate" : "under the engine");
    assert.match(violations[0]!.message, expected);
  }
  // The cost CLI's guard says the same and exits 1.
  const guard = budgetCheck(estimateCost(planOf(expensive, "small", resolved(100), "eu-central-1")));
  assert.equal(guard.fails, true);
  assert.match(guard.message, /^cannot check the budget of stack test .*: no price table for region eu-central-1/);
  assert.deepEqual(check(stackWithinBudget, expensive, { config: { monthlyBudgetUsd: 1_000_000 } }), [], "us-east-1 has one");
});

test("stack-within-budget on a real preview: a value not known yet is priced as unknown, and the budget still judged", () => {
  // The engine's props: a proxy that throws on reading a value the preview cannot know (@pulumi/policy proxy.js). A
  // scheduled scale-down names its node group's Auto Scaling group, known only once the group exists: reading it
  // aborted the policy, which the pack server reports as an advisory "can't run", and a $500 budget went unjudged.
  const schedule = resource("aws:autoscaling/schedule:Schedule", "gpu-offpeak-down", {
    autoscalingGroupName: unknownStringValue,
    recurrence: "0 0 * * *",
    minSize: 0,
    maxSize: 10,
    desiredCapacity: 0,
  });
  const reports = checkOnPreview(stackWithinBudget, [...expensive, schedule], { monthlyBudgetUsd: 500 });
  assert.equal(reports.length, 1, reports.join("\n"));
  assert.match(reports[0]!, /exceeds the \$500 budget \(policy config monthlyBudgetUsd\); largest: gpu/);
});

test("stack-within-budget: without a tier or budget it asks for one", () => {
  assert.match(check(stackWithinBudget, expensive, { tier: undefined })[0].message, /no budget known/);
});

test("stack-within-budget: offline it judges the cost review() already estimated", () => {
  const small = [nodeGroup("general", ["t3.large"])];
  const estimated = {
    currency: "USD" as const,
    monthlyUsd: 1_000_000,
    onDemandMonthlyUsd: 1_000_000,
    items: [
      {
        type: "aws:eks/nodeGroup:NodeGroup",
        name: "reviewed",
        component: "stack",
        monthlyUsd: 1_000_000,
        onDemandMonthlyUsd: 1_000_000,
      },
    ],
    unpriced: [],
  };
  assert.match(
    check(stackWithinBudget, small, { tier: "small", planConfig: resolved(2750), cost: estimated })[0].message,
    /estimated \$1,000,000\/month .* largest: reviewed \$1,000,000/,
  );
});
