// Simulates scheduled actions and averages a measured quantity (nodes, "running") over a reference year of 52
// weeks, after a warm-up so the state at the start is the one the schedules leave behind. Each action's cron is
// read in its own IANA time zone by the time module (croner; DST included), so windows crossing midnight or set
// in local time come out right. Events, not minutes: a daily schedule is 364 state changes a year.
import type { CronSchedule } from "../../time.ts";

export interface TimedAction<S> {
  cron: CronSchedule;
  apply: (state: S) => S;
}

export interface SimulationResult {
  /** Time-weighted mean of the measured value. */
  average: number;
  peak: number;
  minimum: number;
  /** Length of the measured period in hours. */
  periodHours: number;
}

const HOUR = 3_600_000;
const WEEK = 168 * HOUR;
const WEEKS = 52;
const WARM_UP_WEEKS = 5;
/** Monday 2024-01-01 00:00 UTC: the measured period starts on a Monday. */
const REFERENCE_START = Date.UTC(2024, 0, 1);

export function simulate<S>(initial: S, actions: TimedAction<S>[], measure: (state: S) => number): SimulationResult {
  const warmUp = new Date(REFERENCE_START - WARM_UP_WEEKS * WEEK);
  const end = REFERENCE_START + WEEKS * WEEK;
  const events = actions
    .flatMap((action, order) => action.cron.firings(warmUp, new Date(end)).map((t) => ({ t: t.getTime(), order, action })))
    .sort((a, b) => a.t - b.t || a.order - b.order);

  let state = initial;
  let i = 0;
  for (; i < events.length && events[i].t <= REFERENCE_START; i++) state = events[i].action.apply(state);
  let sum = 0;
  let from = REFERENCE_START;
  let value = measure(state);
  let peak = value;
  let minimum = value;
  for (; i < events.length; i++) {
    sum += value * (events[i].t - from);
    from = events[i].t;
    state = events[i].action.apply(state);
    value = measure(state);
    peak = Math.max(peak, value);
    minimum = Math.min(minimum, value);
  }
  sum += value * (end - from);
  return { average: sum / (end - REFERENCE_START), peak, minimum, periodHours: WEEKS * 168 };
}
