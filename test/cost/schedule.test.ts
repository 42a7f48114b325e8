// Cron parsing of both AWS schedulers and the week simulation: daily windows, weekday-only recurrences,
// windows across midnight, time zones, and sizes left unchanged.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CronError, parseAwsCron, parseUnixCron } from "../../infra/cost/schedule/cron.ts";
import { simulate, type TimedAction } from "../../infra/cost/schedule/simulate.ts";

type Nodes = { desired: number };
const set = (expr: string, desired: number, timeZone = "UTC"): TimedAction<Nodes> => ({
  cron: parseUnixCron(expr),
  timeZone,
  apply: () => ({ desired }),
});
const nodes = (s: Nodes) => s.desired;

describe("cron expressions", () => {
  it("reads Unix day-of-week numbers and names, 7 being Sunday", () => {
    assert.deepEqual([...parseUnixCron("0 6 * * 1-5").daysOfWeek!].sort(), [1, 2, 3, 4, 5]);
    assert.deepEqual([...parseUnixCron("0 6 * * SUN,7").daysOfWeek!], [0]);
    assert.deepEqual([...parseUnixCron("*/15 0-1 * * *").minutes], [0, 15, 30, 45]);
  });

  it("reads EventBridge cron with 1 = Sunday and ? for any", () => {
    const spec = parseAwsCron("cron(0 20 ? * MON-FRI *)");
    assert.deepEqual([...spec.daysOfWeek!].sort(), [1, 2, 3, 4, 5]);
    assert.equal(spec.daysOfMonth, null);
    assert.deepEqual([...parseAwsCron("cron(0 8 ? * 2-6 *)").daysOfWeek!].sort(), [1, 2, 3, 4, 5]);
    assert.deepEqual([...parseAwsCron("cron(0 8 ? * 1 *)").daysOfWeek!], [0]);
  });

  it("refuses what it cannot simulate, with the reason", () => {
    assert.throws(() => parseAwsCron("cron(0 8 ? * 6L *)"), CronError);
    assert.throws(() => parseAwsCron("rate(1 day)"), /rate\(\) and at\(\)/);
    assert.throws(() => parseUnixCron("0 6 * *"), /5-field/);
    assert.throws(() => parseUnixCron("0 25 * * *"), /hour/);
  });
});

describe("week simulation", () => {
  it("no action: the initial size all week", () => {
    assert.deepEqual(simulate({ desired: 3 }, [], nodes), { average: 3, peak: 3, minimum: 3, periodHours: 168 });
  });

  it("daily 00:00-06:00 off-peak 3 -> 2: 2.75 nodes on average", () => {
    const r = simulate({ desired: 3 }, [set("0 0 * * *", 2), set("0 6 * * *", 3)], nodes);
    assert.equal(r.average, 3 - 6 / 24);
    assert.equal(r.peak, 3);
    assert.equal(r.minimum, 2);
  });

  it("partial hours count to the minute: 00:30-06:15 is 5.75 h", () => {
    const r = simulate({ desired: 2 }, [set("30 0 * * *", 1), set("15 6 * * *", 2)], nodes);
    assert.ok(Math.abs(r.average - (2 - 5.75 / 24)) < 1e-9);
  });

  it("a window across midnight (22:00-06:00) is 8 h a day", () => {
    const r = simulate({ desired: 3 }, [set("0 22 * * *", 1), set("0 6 * * *", 3)], nodes);
    assert.ok(Math.abs(r.average - (3 - (2 * 8) / 24)) < 1e-9);
  });

  it("weekday work hours 08:00-20:00 only: 60 of 168 hours", () => {
    const r = simulate({ desired: 1 }, [set("0 8 * * 1-5", 1), set("0 20 * * 1-5", 0)], nodes);
    assert.ok(Math.abs(r.average - 60 / 168) < 1e-9);
  });

  it("weekends off (Friday 20:00 to Monday 08:00): 108 of 168 hours", () => {
    const r = simulate({ desired: 1 }, [set("0 20 * * FRI", 0), set("0 8 * * MON", 1)], nodes);
    assert.ok(Math.abs(r.average - 108 / 168) < 1e-9);
  });

  it("reads each expression in its own time zone", () => {
    // Down at 00:00 UTC, up at 00:00 Tokyo (15:00 UTC the day before): down 15 h a day.
    const r = simulate({ desired: 3 }, [set("0 0 * * *", 2, "UTC"), set("0 0 * * *", 3, "Asia/Tokyo")], nodes);
    assert.ok(Math.abs(r.average - (3 - 15 / 24)) < 1e-9);
  });

  it("starts from the state the schedules leave behind, not the declared size", () => {
    // Only a scale-down: after the first week the group stays at 1.
    const r = simulate({ desired: 3 }, [set("0 0 * * MON", 1)], nodes);
    assert.equal(r.average, 1);
  });

  it("simulates a year when an expression is not weekly (first of the month)", () => {
    const r = simulate({ desired: 2 }, [set("0 0 1 * *", 1), set("0 0 2 * *", 2)], nodes);
    assert.equal(r.periodHours, 52 * 168);
    // One day a month at 1 node: about 12 of 364 days.
    assert.ok(r.average > 2 - 13 / 364 && r.average < 2 - 11 / 364, String(r.average));
  });
});
