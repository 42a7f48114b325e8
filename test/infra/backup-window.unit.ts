// RDS backup windows follow the tier's hours in its own time zone.
import assert from "node:assert/strict";
import { test } from "node:test";
import { rdsBackupWindow } from "../../infra/platform/backups.ts";
import { TIERS } from "../../infra/tiers.ts";

const schedule = TIERS.dev.schedule;

test("work hours in a zone east of UTC move the UTC window earlier", () => {
  // Asia/Kolkata has no DST: 14:00 local is 08:30 UTC; the window starts on the UTC hour.
  assert.equal(
    rdsBackupWindow({ ...schedule, workHoursOnly: { days: ["MON"], start: "08:00", end: "20:00" } }, "Asia/Kolkata"),
    "09:00-10:00",
  );
});

test("always-on tiers back up in the off-peak night", () => {
  assert.equal(
    rdsBackupWindow({ ...schedule, offPeak: { days: ["MON"], start: "00:00", end: "06:00" }, workHoursOnly: null }, "UTC"),
    "03:00-04:00",
  );
});
