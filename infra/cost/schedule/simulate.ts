// Simulates scheduled actions minute by minute and averages a measured quantity (nodes, "running") over a
// reference period: one week when every expression repeats weekly, 52 weeks otherwise, after a warm-up so the
// state at the start of the period is the one the schedules leave behind. Each action's expression is read in
// its own IANA time zone (DST included), so windows crossing midnight or set in local time come out right.
import { cronMatches, type CronSpec, type LocalTime } from "./cron.ts";

export interface TimedAction<S> {
  cron: CronSpec;
  timeZone: string;
  apply: (state: S) => S;
}

export interface SimulationResult {
  /** Time-weighted mean of the measured value. */
  average: number;
  peak: number;
  minimum: number;
  /** Length of the measured period in hours (168 for a week). */
  periodHours: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const WEEK = 7 * 24 * HOUR;
/** Monday 2024-01-01 00:00 UTC: the measured period starts on a Monday. */
const REFERENCE_START = Date.UTC(2024, 0, 1);

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Milliseconds to add to UTC to get local wall-clock time in the zone, at this instant. */
function offsetAt(timeZone: string, utcMs: number): number {
  const parts = Object.fromEntries(formatter(timeZone).formatToParts(new Date(utcMs)).map((p) => [p.type, p.value]));
  const local = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute));
  return local - utcMs;
}

class LocalClock {
  private readonly offsets = new Map<number, number>();
  constructor(private readonly timeZone: string) {}

  at(utcMs: number): LocalTime {
    const hourKey = Math.floor(utcMs / HOUR);
    let offset = this.offsets.get(hourKey);
    if (offset === undefined) {
      offset = offsetAt(this.timeZone, hourKey * HOUR);
      this.offsets.set(hourKey, offset);
    }
    const d = new Date(utcMs + offset);
    return {
      minute: d.getUTCMinutes(),
      hour: d.getUTCHours(),
      dayOfMonth: d.getUTCDate(),
      month: d.getUTCMonth() + 1,
      dayOfWeek: d.getUTCDay(),
    };
  }
}

export function simulate<S>(initial: S, actions: TimedAction<S>[], measure: (state: S) => number): SimulationResult {
  const weekly = actions.every((a) => a.cron.weekly);
  const weeks = weekly ? 1 : 52;
  const warmUpWeeks = weekly ? 1 : 5;
  const clocks = new Map<string, LocalClock>();
  const clockFor = (tz: string) => {
    let c = clocks.get(tz);
    if (!c) clocks.set(tz, (c = new LocalClock(tz)));
    return c;
  };

  let state = initial;
  let sum = 0;
  let samples = 0;
  let peak = -Infinity;
  let minimum = Infinity;
  const end = REFERENCE_START + weeks * WEEK;
  for (let t = REFERENCE_START - warmUpWeeks * WEEK; t < end; t += MINUTE) {
    for (const action of actions) {
      if (cronMatches(action.cron, clockFor(action.timeZone).at(t))) state = action.apply(state);
    }
    if (t < REFERENCE_START) continue;
    const v = measure(state);
    sum += v;
    samples++;
    if (v > peak) peak = v;
    if (v < minimum) minimum = v;
  }
  return { average: sum / samples, peak, minimum, periodHours: weeks * 168 };
}
