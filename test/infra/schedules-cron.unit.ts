// The schedule arithmetic behind the node-group, RDS, CronJob and backup schedules: no Pulumi involved.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backupRules } from "../../infra/platform/backups.ts";
import { describeSchedule, scaleTo } from "../../infra/platform/schedules.ts";
import { endDays, shifted, eventBridgeCron as schedulerCron, unixCron as cron, utcWindow } from "../../infra/time.ts";
import { TIERS } from "../../infra/tiers.ts";

const WEEKDAYS = ["MON", "TUE", "WED", "THU", "FRI"] as const;

test("five-field cron: every day is *, weekdays a range, Sunday 0", () => {
  assert.equal(cron("00:00", ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]), "0 0 * * *");
  assert.equal(cron("20:30", [...WEEKDAYS]), "30 20 * * 1-5");
  assert.equal(cron("06:05", ["SAT", "SUN"]), "5 6 * * 0,6");
  assert.equal(cron("07:00", ["MON", "WED", "THU"]), "0 7 * * 1,3-4");
});

test("EventBridge cron: six fields, ? in day of month, day names", () => {
  assert.equal(schedulerCron("20:00", [...WEEKDAYS]), "cron(0 20 ? * MON-FRI *)");
  assert.equal(schedulerCron("08:15", ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]), "cron(15 8 * * ? *)");
  assert.equal(schedulerCron("09:00", ["SAT", "SUN"]), "cron(0 9 ? * SUN,SAT *)");
});

test("a time moved past midnight falls on the days after, moved before it on the days before", () => {
  assert.deepEqual(shifted("23:50", ["SUN", "MON"], 20), { hhmm: "00:10", days: ["MON", "TUE"] });
  assert.deepEqual(shifted("00:10", ["MON", "SUN"], -20), { hhmm: "23:50", days: ["SUN", "SAT"] });
  assert.deepEqual(shifted("06:00", ["WED"], -20), { hhmm: "05:40", days: ["WED"] });
});

test("a window past midnight ends on the following days", () => {
  assert.deepEqual(endDays({ days: ["FRI", "SAT", "SUN"], start: "22:00", end: "06:00" }), ["SAT", "SUN", "MON"]);
  assert.deepEqual(endDays({ days: [...WEEKDAYS], start: "08:00", end: "20:00" }), [...WEEKDAYS]);
});

test("scaling below the group's minimum moves the minimum first, the size later, and both back; the maximum never moves", () => {
  const spec = { instanceTypes: ["c6i.2xlarge"], capacityType: "ON_DEMAND" as const, min: 3, desired: 3, max: 5, diskGb: 100 };
  assert.deepEqual(scaleTo(spec, 2), {
    down: { minSize: 2, desiredCapacity: -1, maxSize: -1 },
    settle: { minSize: -1, desiredCapacity: 2, maxSize: -1 },
    up: { minSize: 3, desiredCapacity: 3, maxSize: -1 },
  });
  assert.deepEqual(scaleTo({ ...spec, min: 1, desired: 2 }, 1), {
    settle: { minSize: -1, desiredCapacity: 1, maxSize: -1 },
    up: { minSize: -1, desiredCapacity: 2, maxSize: -1 },
  });
});

test("the schedule in words says when each group is at which size", () => {
  assert.deepEqual(describeSchedule(TIERS.medium, "UTC"), [
    "off-peak every day 00:00-06:00 (UTC): general nodes 3 -> 2, gpu nodes 2 -> 1, API min replicas 3 -> 2, Ollama replicas 2 -> 1; peak sizes again from 05:40, serving by 06:00",
  ]);
  assert.deepEqual(describeSchedule(TIERS.dev, "UTC"), [
    "on MON-FRI 08:00-20:00 (UTC): general nodes 1, database running",
    "off outside those hours (nights and weekends): every node group at 0, database stopped",
  ]);
});

test("backup rules keep 7 days, 4 weeks and 12 months; always-on tiers back up at 01:00 UTC", () => {
  const rules = backupRules(TIERS.medium.backups, TIERS.medium.schedule, "UTC");
  assert.deepEqual(
    rules.map((r) => [r.ruleName, r.schedule, r.scheduleExpressionTimezone, r.deleteAfterDays]),
    [
      ["daily", "cron(0 1 * * ? *)", "UTC", 7],
      ["weekly", "cron(0 1 ? * SUN *)", "UTC", 28],
      ["monthly", "cron(0 1 1 * ? *)", "UTC", 365],
    ],
  );
});

test("a work-hours-only tier backs up mid-way through work hours on work days, in its own zone", () => {
  assert.deepEqual(
    backupRules(TIERS.dev.backups, TIERS.dev.schedule, "Europe/Berlin").map((r) => [
      r.ruleName,
      r.schedule,
      r.scheduleExpressionTimezone,
    ]),
    [
      ["daily", "cron(0 14 ? * MON-FRI *)", "Europe/Berlin"],
      ["weekly", "cron(0 14 ? * MON *)", "Europe/Berlin"],
      ["monthly", "cron(0 14 ? * 2#1 *)", "Europe/Berlin"], // first Monday: the 1st may fall on a weekend
    ],
  );
});

test("work hours past midnight back up on the days they end: mid-way through them is past midnight", () => {
  // FRI 20:00-04:00: the database runs from Friday evening to Saturday 04:00, so 00:00 falls on Saturday.
  const overnight = { ...TIERS.dev.schedule, workHoursOnly: { days: ["FRI" as const], start: "20:00", end: "04:00" } };
  assert.deepEqual(
    backupRules(TIERS.dev.backups, overnight, "UTC").map((r) => r.schedule),
    ["cron(0 0 ? * SAT *)", "cron(0 0 ? * SAT *)", "cron(0 0 ? * 7#1 *)"],
  );
});

test("AWS windows: local off-peak hours in UTC at the zone's standard offset, across midnight and the week", () => {
  assert.equal(utcWindow("02:00", 60, "America/New_York"), "07:00-08:00");
  assert.equal(utcWindow("02:00", 60, "UTC"), "02:00-03:00");
  // Tokyo is UTC+9: early Sunday there is Saturday evening in UTC.
  assert.equal(utcWindow("05:00", 60, "Asia/Tokyo", "SUN"), "sat:20:00-sat:21:00");
  assert.equal(utcWindow("23:30", 60, "UTC", "SUN"), "sun:23:30-mon:00:30");
  // Sydney's standard time is UTC+10 (July); its summer offset (+11) does not move the window.
  assert.equal(utcWindow("02:00", 60, "Australia/Sydney"), "16:00-17:00");
});
