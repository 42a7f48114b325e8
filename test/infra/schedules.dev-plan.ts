// The dev stack runs in work hours only (MON-FRI 08:00-20:00): node groups to zero and RDS stopped outside them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackPlan } from "../support/stack-plan.ts";
import { TIERS } from "../../infra/tiers.ts";
import { inputs, nodeGroupsIgnoringScheduledSizes, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("dev");
const tier = TIERS.dev;

test("a group switched off outside work hours leaves its minimum to its actions, as its desired size", () => {
  // A refresh at night read 0/0/0 back, and the next update sent the spec's minimum above the live desired 0. Not its
  // maximum: a 0 kept from a refresh would fail the provider's check (at least 1) at every later update.
  for (const { group, ignored, scheduled } of nodeGroupsIgnoringScheduledSizes(plan)) {
    assert.deepEqual(ignored, scheduled, group);
    assert.deepEqual(ignored, ["scalingConfig.desiredSize", "scalingConfig.minSize"], group);
  }
});

test("the general node group goes to zero at 20:00 and back at 08:00, Monday to Friday", () => {
  const actions = Object.fromEntries(
    ofType(plan, "aws:autoscaling/schedule:Schedule").map((r) => [inputs(r).scheduledActionName, inputs(r)]),
  );
  assert.deepEqual(Object.keys(actions).sort(), ["workhours-off", "workhours-on"]);
  const off = actions["workhours-off"];
  const on = actions["workhours-on"];
  assert.deepEqual(
    [off.recurrence, off.timeZone, off.minSize, off.desiredCapacity, off.maxSize],
    ["0 20 * * 1-5", "America/New_York", 0, 0, 0],
  );
  assert.deepEqual(
    [on.recurrence, on.timeZone, on.minSize, on.desiredCapacity, on.maxSize],
    [
      "0 8 * * 1-5",
      "America/New_York",
      tier.nodeGroups.general.min,
      tier.nodeGroups.general.desired,
      tier.nodeGroups.general.max,
    ],
  );
});

test("RDS is stopped at 20:00 and started at 08:00 on work days through EventBridge Scheduler's RDS API target", () => {
  const byArn = Object.fromEntries(ofType(plan, "aws:scheduler/schedule:Schedule").map((r) => [inputs(r).target.arn, inputs(r)]));
  const stop = byArn["arn:aws:scheduler:::aws-sdk:rds:stopDBInstance"];
  const start = byArn["arn:aws:scheduler:::aws-sdk:rds:startDBInstance"];
  assert.equal(Object.keys(byArn).length, 2);
  assert.deepEqual([stop.scheduleExpression, stop.scheduleExpressionTimezone], ["cron(0 20 ? * MON-FRI *)", "America/New_York"]);
  assert.deepEqual([start.scheduleExpression, start.scheduleExpressionTimezone], ["cron(0 8 ? * MON-FRI *)", "America/New_York"]);
  const db = inputs(one(plan, "aws:rds/instance:Instance"));
  for (const s of [stop, start]) assert.deepEqual(JSON.parse(s.target.input), { DbInstanceIdentifier: db.identifier });
});

test("the scheduler's role is trusted by scheduler.amazonaws.com and may only stop and start that one database", () => {
  const roleArn = inputs(ofType(plan, "aws:scheduler/schedule:Schedule")[0]).target.roleArn as string;
  const roleName = roleArn.split("/").pop()!;
  const trust = JSON.parse(inputs(one(plan, "aws:iam/role:Role", roleName)).assumeRolePolicy);
  assert.deepEqual(
    trust.Statement.map((s: any) => [s.Principal.Service, s.Action]),
    [["scheduler.amazonaws.com", "sts:AssumeRole"]],
  );

  const policies = ofType(plan, "aws:iam/rolePolicy:RolePolicy").filter((p) => inputs(p).role === `${roleName}-id`);
  assert.equal(policies.length, 1);
  assert.equal(
    ofType(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").filter((a) => inputs(a).role === roleName).length,
    0,
  );
  const statements = JSON.parse(inputs(policies[0]).policy).Statement;
  const dbArn = `arn:aws:mock:us-east-1:123456789012:Instance/${one(plan, "aws:rds/instance:Instance").name}`;
  assert.deepEqual(statements, [{ Effect: "Allow", Action: ["rds:StopDBInstance", "rds:StartDBInstance"], Resource: dbArn }]);
});

test("the scheduler's role trusts EventBridge Scheduler for this account's group of the database's schedules only", () => {
  // EventBridge Scheduler guide, "Confused deputy prevention": aws:SourceAccount, and aws:SourceArn a schedule group's.
  const schedules = ofType(plan, "aws:scheduler/schedule:Schedule").map(inputs);
  const roleName = (schedules[0].target.roleArn as string).split("/").pop()!;
  const [trust] = JSON.parse(inputs(one(plan, "aws:iam/role:Role", roleName)).assumeRolePolicy).Statement;
  assert.deepEqual(trust.Condition, {
    StringEquals: { "aws:SourceAccount": "123456789012" },
    ArnLike: { "aws:SourceArn": "arn:aws:scheduler:us-east-1:123456789012:schedule-group/default" },
  });
  for (const s of schedules) assert.equal(s.groupName, "default", "each schedule is in the group the trust names");
});

test("no off-peak CronJobs in dev: outside work hours nothing runs at all", () => {
  const names = ofType(plan, "kubernetes:batch/v1:CronJob").map((c) => c.name);
  assert.ok(!names.some((n) => n.startsWith("offpeak")), names.join(", "));
});

test("the schedule stack output says when dev is on and off", () => {
  assert.deepEqual(plan.outputs.schedule, [
    "on MON-FRI 08:00-20:00 (America/New_York): general nodes 1, database running",
    "off outside those hours (nights and weekends): every node group at 0, database stopped",
  ]);
});

test("work hours past midnight stop the database on the mornings they end, the day after each evening they start", async () => {
  const overnight = await stackPlan("dev", {
    "agent-stack:overrides": JSON.stringify({
      schedule: { workHoursOnly: { days: ["MON", "TUE", "WED", "THU", "FRI"], start: "20:00", end: "04:00" } },
      backups: { qdrantSnapshotCron: "30 21 * * 1-5" },
    }),
  });
  const byArn = Object.fromEntries(
    ofType(overnight, "aws:scheduler/schedule:Schedule").map((r) => [inputs(r).target.arn, inputs(r).scheduleExpression]),
  );
  // Stopped on the work days instead, Monday 04:00 came before any start and Saturday's stop never came.
  assert.equal(byArn["arn:aws:scheduler:::aws-sdk:rds:stopDBInstance"], "cron(0 4 ? * TUE-SAT *)");
  assert.equal(byArn["arn:aws:scheduler:::aws-sdk:rds:startDBInstance"], "cron(0 20 ? * MON-FRI *)");
});
