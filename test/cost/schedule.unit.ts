// Cron of both AWS schedulers (read by the time module, on croner) and the simulation: daily windows,
// weekday-only recurrences, windows across midnight, time zones, and sizes left unchanged.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { simulate, type TimedAction } from "../../infra/cost/schedule/simulate.ts";
import { CronError, parseCron } from "../../infra/time.ts";

type Nodes = { desired: number };
const set = (expr: string, desired: number, timeZone = "UTC"): TimedAction<Nodes> => ({
  cron: parseCron(expr, "unix", timeZone),
  apply: () => ({ desired }),
});
const nodes = (s: Nodes) => s.desired;
const WEEK = { from: new Date(Date.UTC(2024, 0, 1)), to: new Date(Date.UTC(2024, 0, 8)) }; // Monday to Monday
const firings = (expr: string, dialect: "unix" | "eventbridge", timeZone = "UTC") =>
  parseCron(expr, dialect, timeZone)
    .firings(WEEK.from, WEEK.to)
    .map((d) => d.toISOString().slice(0, 16));

describe("cron expressions", () => {
  it("reads Unix day-of-week numbers and names, 7 being Sunday", () => {
    assert.deepEqual(firings("0 6 * * 1-5", "unix"), [
      "2024-01-01T06:00",
      "2024-01-02T06:00",
      "2024-01-03T06:00",
      "2024-01-04T06:00",
      "2024-01-05T06:00",
    ]);
    assert.deepEqual(firings("0 6 * * SUN,7", "unix"), ["2024-01-07T06:00"]);
    assert.equal(firings("*/15 0-1 * * *", "unix").filter((t) => t.startsWith("2024-01-01")).length, 8);
  });

  it("reads EventBridge cron with 1 = Sunday and ? for any", () => {
    const weekdays = ["2024-01-01T20:00", "2024-01-02T20:00", "2024-01-03T20:00", "2024-01-04T20:00", "2024-01-05T20:00"];
    assert.deepEqual(firings("cron(0 20 ? * MON-FRI *)", "eventbridge"), weekdays);
    assert.deepEqual(firings("cron(0 20 ? * 2-6 *)", "eventbridge"), weekdays);
    assert.deepEqual(firings("cron(0 8 ? * 1 *)", "eventbridge"), ["2024-01-07T08:00"]);
  });

  it("reads the expression in its time zone: 20:00 in New York is 01:00 UTC the next day in winter", () => {
    assert.deepEqual(firings("0 20 * * 1", "unix", "America/New_York"), ["2024-01-02T01:00"]);
    assert.deepEqual(firings("cron(0 20 ? * MON *)", "eventbridge", "America/New_York"), ["2024-01-02T01:00"]);
  });

  it("refuses what is not a recurring cron, with the reason", () => {
    assert.throws(() => parseCron("rate(1 day)", "eventbridge"), /rate\(\) and at\(\)/);
    assert.throws(() => parseCron("0 6 * *", "unix"), /5-field/);
    assert.throws(() => parseCron("0 25 * * *", "unix"), CronError);
    assert.throws(() => parseCron("0 25 * * *", "unix"), /hour/);
  });
});

describe("simulation over 52 weeks", () => {
  it("no action: the initial size all year", () => {
    assert.deepEqual(simulate({ desired: 3 }, [], nodes), { average: 3, peak: 3, minimum: 3, periodHours: 52 * 168 });
  });

  it("daily 00:00-06:00 off-peak 3 -> 2: 2.75 nodes on average", () => {
    const r = simulate({ desired: 3 }, [set("0 0 * * *", 2), set("0 6 * * *", 3)], nodes);
    assert.ok(Math.abs(r.average - (3 - 6 / 24)) < 1e-9);
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
    assert.ok(Math.abs(r.average - 1) < 1e-9);
  });

  it("a New York window keeps 6 h a night through DST (one night of 5 h, one of 7 h)", () => {
    const r = simulate({ desired: 3 }, [set("0 0 * * *", 2, "America/New_York"), set("0 6 * * *", 3, "America/New_York")], nodes);
    assert.ok(Math.abs(r.average - (3 - 6 / 24)) < 1e-9, String(r.average));
  });

  it("counts a monthly expression (first of the month) over the year", () => {
    const r = simulate({ desired: 2 }, [set("0 0 1 * *", 1), set("0 0 2 * *", 2)], nodes);
    assert.equal(r.periodHours, 52 * 168);
    // One day a month at 1 node: about 12 of 364 days.
    assert.ok(r.average > 2 - 13 / 364 && r.average < 2 - 11 / 364, String(r.average));
  });
});
