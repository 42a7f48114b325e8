// RDS backup windows follow the tier's hours in its own time zone, away from the AWS Backup plan's run.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backupRules, rdsBackupWindow } from "../../infra/platform/backups.ts";
import { minutesOf, utcOffsetMinutes, windowLength } from "../../infra/time.ts";
import { TIERS } from "../../infra/tiers.ts";

const schedule = TIERS.dev.schedule;

test("work hours in a zone east of UTC move the UTC window earlier", () => {
  // Asia/Kolkata has no DST: an hour into 08:00-20:00, 09:00 local, is 03:30 UTC.
  assert.equal(
    rdsBackupWindow({ ...schedule, workHoursOnly: { days: ["MON"], start: "08:00", end: "20:00" } }, "Asia/Kolkata"),
    "03:30-04:30",
  );
});

test("RDS's backup window and the AWS Backup run are an hour apart or more, winter and summer, while the database runs", () => {
  // Work hours the tier schema takes (schedule-config.unit.ts: 8 hours or more, not on the maintenance window).
  for (const [zone, start, end] of [
    ["America/New_York", "08:00", "20:00"], // dev
    ["America/New_York", "09:00", "17:00"],
    ["Europe/Dublin", "07:30", "16:30"],
    ["Australia/Sydney", "09:00", "18:00"], // daylight saving in January
    ["Asia/Kolkata", "20:00", "04:00"], // past midnight
  ] as const) {
    const hours = { ...schedule, workHoursOnly: { days: ["MON" as const], start, end } };
    const [from] = rdsBackupWindow(hours, zone).split("-").map(minutesOf);
    const [rule] = backupRules(TIERS.dev.backups, hours, zone);
    const [minute, hour] = /cron\((\d+) (\d+) /.exec(rule!.schedule)!.slice(1, 3).map(Number);
    const planAt = hour! * 60 + minute!;
    for (const month of [0, 6]) {
      const local = (from! + utcOffsetMinutes(zone, new Date(Date.UTC(2026, month, 15, 12)))) % 1440;
      const into = (local - minutesOf(start) + 1440) % 1440;
      const where = `${zone} ${start}-${end}, month ${month + 1}: RDS at ${local / 60} h, AWS Backup at ${planAt / 60} h`;
      // Started by then (the database starts with the hours), and ended an hour before the plan's run.
      assert.ok(into >= 60 && into + 60 <= windowLength({ start, end }), where);
      assert.ok((planAt - local + 1440) % 1440 >= 120, where);
    }
  }
});
