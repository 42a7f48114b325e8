// RDS backup windows follow the tier's hours in its own time zone, away from the AWS Backup plan's run.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backupRules, rdsBackupWindow } from "../../infra/platform/backups.ts";
import { minutesOf, utcOffsetMinutes } from "../../infra/time.ts";
import { TIERS } from "../../infra/tiers.ts";

const schedule = TIERS.dev.schedule;

test("work hours in a zone east of UTC move the UTC window earlier", () => {
  // Asia/Kolkata has no DST: an hour into 08:00-20:00, 09:00 local, is 03:30 UTC.
  assert.equal(
    rdsBackupWindow({ ...schedule, workHoursOnly: { days: ["MON"], start: "08:00", end: "20:00" } }, "Asia/Kolkata"),
    "03:30-04:30",
  );
});

test("dev's RDS window and its AWS Backup run are hours apart, in winter and summer, while the database runs", () => {
  const zone = "America/New_York";
  const [from] = rdsBackupWindow(schedule, zone).split("-").map(minutesOf);
  const work = schedule.workHoursOnly!;
  const [rule] = backupRules(TIERS.dev.backups, schedule, zone);
  const backupAt = minutesOf(/cron\((\d+) (\d+) /.exec(rule!.schedule)!.slice(1, 3).reverse().join(":"));
  for (const month of [0, 6]) {
    const local = (from! + utcOffsetMinutes(zone, new Date(Date.UTC(2026, month, 15, 12))) + 1440) % 1440;
    // The plan's job runs within its 60-minute start window; RDS skips or delays one inside its own window.
    assert.ok(Math.abs(local - backupAt) >= 120, `month ${month + 1}: RDS at ${local / 60} h, AWS Backup at ${backupAt / 60} h`);
    assert.ok(local >= minutesOf(work.start) && local + 60 <= minutesOf(work.end), `month ${month + 1}: ${local / 60} h`);
  }
});

test("always-on tiers back up in the off-peak night", () => {
  assert.equal(
    rdsBackupWindow({ ...schedule, offPeak: { days: ["MON"], start: "00:00", end: "06:00" }, workHoursOnly: null }, "UTC"),
    "03:00-04:00",
  );
});
