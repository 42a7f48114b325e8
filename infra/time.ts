// Time, in one place: days and windows (the tiers' off-peak and work hours), the stack's time zone, and cron
// in both AWS dialects. Cron fields are parsed only by croner (https://github.com/hexagon/croner, v11:
// modes "5-part" and "7-part", `alternativeWeekdays` for Quartz-style 1 = Sunday, `timezone` for IANA zones):
//  - Unix cron, 5 fields "min hour day-of-month month day-of-week", 0 and 7 = Sunday, day-of-month OR
//    day-of-week when both are set: EC2 Auto Scaling `recurrence` and Kubernetes CronJob `schedule`;
//  - EventBridge `cron(min hour day-of-month month day-of-week year)`, 1 = Sunday, `?` for "any": EventBridge
//    Scheduler `scheduleExpression` and AWS Backup rules.
// This module prints both from a window and reads both back (the cost simulation, the tier checks).
import { Cron } from "croner";

export const DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"] as const;
export type Day = (typeof DAYS)[number];

/** A recurring window, wall-clock time in the stack's time zone; end may be past midnight (end < start). */
export interface Window {
  days: Day[];
  start: string;
  end: string;
}

// ---- time zones ----

/** Intl also accepts "utc" or "america/new_york"; AWS and Kubernetes (Go's tzdata) want the exact spelling. */
export function isIanaTimeZone(tz: string): boolean {
  try {
    const canonical = new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
    // Aliases (Asia/Calcutta for Asia/Kolkata) resolve to another name; only a case-only difference is wrong.
    return tz === canonical || tz.toLowerCase() !== canonical.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * The zone of the city each AWS region is in, the default for `agent-stack:timeZone`: off-peak means night
 * where the region's users most likely are. A region not listed gets UTC (set timeZone then).
 */
const REGION_TIME_ZONES: Record<string, string> = {
  "us-east-1": "America/New_York",
  "us-east-2": "America/New_York",
  "us-west-1": "America/Los_Angeles",
  "us-west-2": "America/Los_Angeles",
  "ca-central-1": "America/Toronto",
  "ca-west-1": "America/Edmonton",
  "sa-east-1": "America/Sao_Paulo",
  "mx-central-1": "America/Mexico_City",
  "eu-west-1": "Europe/Dublin",
  "eu-west-2": "Europe/London",
  "eu-west-3": "Europe/Paris",
  "eu-central-1": "Europe/Berlin",
  "eu-central-2": "Europe/Zurich",
  "eu-north-1": "Europe/Stockholm",
  "eu-south-1": "Europe/Rome",
  "eu-south-2": "Europe/Madrid",
  "me-central-1": "Asia/Dubai",
  "me-south-1": "Asia/Bahrain",
  "il-central-1": "Asia/Jerusalem",
  "af-south-1": "Africa/Johannesburg",
  "ap-south-1": "Asia/Kolkata",
  "ap-south-2": "Asia/Kolkata",
  "ap-east-1": "Asia/Hong_Kong",
  "ap-northeast-1": "Asia/Tokyo",
  "ap-northeast-2": "Asia/Seoul",
  "ap-northeast-3": "Asia/Tokyo",
  "ap-southeast-1": "Asia/Singapore",
  "ap-southeast-2": "Australia/Sydney",
  "ap-southeast-3": "Asia/Jakarta",
  "ap-southeast-4": "Australia/Melbourne",
  "ap-southeast-5": "Asia/Kuala_Lumpur",
  "ap-southeast-7": "Asia/Bangkok",
};

export function defaultTimeZone(region: string): string {
  return REGION_TIME_ZONES[region] ?? "UTC";
}

/** Minutes to add to UTC to get wall-clock time in the zone at this instant (-240 for New York in summer). */
export function utcOffsetMinutes(timeZone: string, at: Date): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  const local = Date.UTC(
    Number(parts.year),
    Number(parts.month) - 1,
    Number(parts.day),
    Number(parts.hour),
    Number(parts.minute),
  );
  return Math.round((local - Math.floor(at.getTime() / 60_000) * 60_000) / 60_000);
}

/** Wall-clock hour and day (0 = Sunday) of an instant in a zone. */
export function localTime(timeZone: string, at: Date): { hour: number; minute: number; dayOfWeek: number } {
  const local = new Date(at.getTime() + utcOffsetMinutes(timeZone, at) * 60_000);
  return { hour: local.getUTCHours(), minute: local.getUTCMinutes(), dayOfWeek: local.getUTCDay() };
}

// ---- printing cron from a window ----

const CRON_DAY: Record<Day, number> = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };

/** Unix cron firing at hh:mm on these days: "0 20 * * 1-5". */
export function unixCron(hhmm: string, days: Day[]): string {
  const [h, m] = hhmm.split(":").map(Number);
  return `${m} ${h} * * ${dayOfWeek(days, String) ?? "*"}`;
}

/** EventBridge cron firing at hh:mm on these days: "cron(0 20 ? * MON-FRI *)". */
export function eventBridgeCron(hhmm: string, days: Day[]): string {
  const [h, m] = hhmm.split(":").map(Number);
  const list = dayOfWeek(days, (n) => DAYS.find((d) => CRON_DAY[d] === n)!);
  return list ? `cron(${m} ${h} ? * ${list} *)` : `cron(${m} ${h} * * ? *)`;
}

/** A day-of-week field, Sunday first, as runs ("1,3-4"); null for every day. */
function dayOfWeek(days: Day[], label: (cronDay: number) => string): string | null {
  const numbers = [...new Set(days.map((d) => CRON_DAY[d]))].sort((a, b) => a - b);
  if (numbers.length === 7) return null;
  return runs(numbers)
    .map(([a, b]) => (a === b ? label(a) : `${label(a)}-${label(b)}`))
    .join(",");
}

/** The days a window's end falls on: the next day for a window that runs past midnight. */
export function endDays(w: Window): Day[] {
  return w.end > w.start ? w.days : daysAfter(w.days, 1);
}

/** Each of `days` moved `n` days on (or back, for a negative `n`). */
const daysAfter = (days: Day[], n: number): Day[] =>
  days.map((d) => DAYS[(((DAYS.indexOf(d) + n) % DAYS.length) + DAYS.length) % DAYS.length]!);

/** `hhmm` on `days`, moved by `minutes` either way: past midnight it falls on the days after, before it on those before. */
export function shifted(hhmm: string, days: Day[], minutes: number): { hhmm: string; days: Day[] } {
  const total = minutesOf(hhmm) + minutes;
  return { hhmm: hhmmOf(((total % 1440) + 1440) % 1440), days: daysAfter(days, Math.floor(total / 1440)) };
}

/** Consecutive runs in sorted numbers: [1,2,3,5] -> [[1,3],[5,5]]. */
function runs(sorted: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of sorted) {
    const last = out.at(-1);
    if (last && last[1] === n - 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

export function describeDays(days: Day[]): string {
  const ordered = DAYS.filter((d) => days.includes(d));
  if (ordered.length === 7) return "every day";
  const idx = ordered.map((d) => DAYS.indexOf(d));
  return runs(idx)
    .map(([a, b]) => (a === b ? DAYS[a] : b === a + 1 ? `${DAYS[a]},${DAYS[b]}` : `${DAYS[a]}-${DAYS[b]}`))
    .join(",");
}

export function describeWindow(w: Window): string {
  return `${w.days.join(",")} ${w.start}-${w.end}`;
}

// ---- minutes of the week (Monday 00:00 = 0), wall clock ----

export const DAY_MINUTES = 24 * 60;
export const WEEK_MINUTES = 7 * DAY_MINUTES;

/** "14:30" -> 870 (minutes after midnight). */
export function minutesOf(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

/** 870 -> "14:30"; wraps past midnight. */
export function hhmmOf(minutes: number): string {
  const m = ((minutes % DAY_MINUTES) + DAY_MINUTES) % DAY_MINUTES;
  return `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
}

/** A window's length in minutes (one ending past midnight runs into the next day). */
export function windowLength(w: Pick<Window, "start" | "end">): number {
  return (minutesOf(w.end) - minutesOf(w.start) + DAY_MINUTES) % DAY_MINUTES;
}

/** Half-way through a window, on the hour: "08:00"-"20:00" -> "14:00"; past midnight wraps. */
export function midpoint(start: string, end: string): string {
  const middle = minutesOf(start) + windowLength({ start, end }) / 2;
  return hhmmOf(Math.floor(middle / 60) * 60);
}

/** A window's occurrences as [start, end) minutes of the week; one ending past midnight runs into the next day. */
export function windowRanges(w: Window): [number, number][] {
  const start = minutesOf(w.start);
  const length = windowLength(w);
  return w.days.flatMap((day): [number, number][] => {
    const s = DAYS.indexOf(day) * DAY_MINUTES + start;
    const e = s + length;
    return e <= WEEK_MINUTES
      ? [[s, e]]
      : [
          [s, WEEK_MINUTES],
          [0, e - WEEK_MINUTES],
        ];
  });
}

// ---- AWS maintenance and snapshot windows (UTC strings) ----

/**
 * The zone's standard-time UTC offset (the smaller of mid-January's and mid-July's). Windows printed from it
 * stay the same all year, so a preview in July shows no diff against one in January; they move one local hour
 * with daylight saving.
 */
export function standardUtcOffsetMinutes(timeZone: string): number {
  const at = (month: number) => utcOffsetMinutes(timeZone, new Date(Date.UTC(2026, month, 15, 12)));
  return Math.min(at(0), at(6));
}

/**
 * A window starting at local `start` (hh:mm) and lasting `minutes`, as AWS reads it in UTC: "hh:mm-hh:mm",
 * or with `day` "ddd:hh:mm-ddd:hh:mm" (ElastiCache and RDS maintenance windows).
 */
export function utcWindow(start: string, minutes: number, timeZone: string, day?: Day): string {
  const local = (day ? DAYS.indexOf(day) * DAY_MINUTES : 0) + minutesOf(start);
  const from = (local - standardUtcOffsetMinutes(timeZone) + WEEK_MINUTES) % WEEK_MINUTES;
  const print = (m: number) => (day ? `${DAYS[Math.floor(m / DAY_MINUTES)].toLowerCase()}:${hhmmOf(m)}` : hhmmOf(m));
  return `${print(from)}-${print((from + minutes) % WEEK_MINUTES)}`;
}

// ---- reading cron ----

export class CronError extends Error {
  override name = "CronError";
}

export type CronDialect = "unix" | "eventbridge";

/** A parsed cron expression, read in one time zone. */
export interface CronSchedule {
  expression: string;
  timeZone: string;
  /** Every firing instant in [from, to). */
  firings(from: Date, to: Date): Date[];
}

/** Parses an expression of either dialect; a CronError names the expression and what is wrong. */
export function parseCron(expression: string, dialect: CronDialect, timeZone = "UTC"): CronSchedule {
  let pattern: string;
  let options: { mode: "5-part" | "7-part"; alternativeWeekdays: boolean };
  if (dialect === "unix") {
    if (expression.trim().split(/\s+/).length !== 5) {
      throw new CronError(`"${expression}" is not a 5-field cron expression (min hour day-of-month month day-of-week)`);
    }
    pattern = expression.trim();
    options = { mode: "5-part", alternativeWeekdays: false };
  } else {
    const m = /^cron\((.*)\)$/.exec(expression.trim());
    if (!m)
      throw new CronError(`"${expression}" is not a cron(...) expression; rate() and at() schedules are not recurring windows`);
    if (m[1].trim().split(/\s+/).length !== 6) {
      throw new CronError(`"${expression}" needs 6 fields (min hour day-of-month month day-of-week year)`);
    }
    pattern = `0 ${m[1].trim()}`; // croner's 7-part form leads with seconds
    options = { mode: "7-part", alternativeWeekdays: true };
  }
  let cron: Cron;
  try {
    // domAndDow false: day-of-month OR day-of-week when both are set, as Unix cron does.
    cron = new Cron(pattern, { ...options, timezone: timeZone, paused: true, domAndDow: false });
  } catch (err) {
    throw new CronError(`"${expression}": ${(err as Error).message.replace(/^CronPattern: /, "")}`);
  }
  return {
    expression,
    timeZone,
    firings(from, to) {
      const out: Date[] = [];
      // nextRun is strictly after its argument; start one second before `from` to include it.
      for (let t = cron.nextRun(new Date(from.getTime() - 1000)); t && t < to; t = cron.nextRun(t)) out.push(t);
      return out;
    },
  };
}

/**
 * The wall-clock minutes of the week (Monday 00:00 = 0) a Unix cron fires at on any day of a reference year
 * (2024, which starts on a Monday), so a day-of-month restriction counts every weekday it can land on.
 */
export function firingMinutesOfWeek(expression: string): number[] {
  const start = new Date(Date.UTC(2024, 0, 1));
  const end = new Date(Date.UTC(2025, 0, 1));
  const minutes = new Set<number>();
  for (const t of parseCron(expression, "unix", "UTC").firings(start, end)) {
    minutes.add(Math.round((t.getTime() - start.getTime()) / 60_000) % WEEK_MINUTES);
  }
  return [...minutes].sort((a, b) => a - b);
}
