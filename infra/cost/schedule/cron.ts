// Cron expressions of the two AWS schedulers the plan uses:
//  - EC2 Auto Scaling scheduled actions (`aws.autoscaling.Schedule.recurrence`): Unix cron, 5 fields
//    "min hour day-of-month month day-of-week", day-of-week 0-7 with 0 and 7 = Sunday.
//  - EventBridge Scheduler (`aws.scheduler.Schedule.scheduleExpression`): "cron(min hour dom month dow year)",
//    day-of-week 1-7 with 1 = Sunday, "?" for "any".
// Both parse into one CronSpec with day-of-week 0 = Sunday. L, W and # are not supported (an error says so).

export class CronError extends Error {
  override name = "CronError";
}

export interface CronSpec {
  expression: string;
  minutes: Set<number>;
  hours: Set<number>;
  /** null: any day of the month. */
  daysOfMonth: Set<number> | null;
  /** null: any month. */
  months: Set<number> | null;
  /** null: any day of the week; 0 = Sunday. */
  daysOfWeek: Set<number> | null;
  /** The expression repeats every week (no day-of-month or month restriction). */
  weekly: boolean;
}

/** Local wall-clock time in the schedule's time zone. */
export interface LocalTime {
  minute: number;
  hour: number;
  dayOfMonth: number;
  /** 1-12 */
  month: number;
  /** 0 = Sunday */
  dayOfWeek: number;
}

const MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

interface FieldRule {
  name: string;
  min: number;
  max: number;
  /** Name -> number, in this field's own numbering. */
  names?: Record<string, number>;
}

function parseField(text: string, rule: FieldRule, expression: string): Set<number> | null {
  if (text === "*" || text === "?") return null;
  if (/[LW#]/i.test(text)) throw new CronError(`${expression}: "${text}" in ${rule.name} (L, W, #) is not supported`);
  const values = new Set<number>();
  const value = (token: string): number => {
    const upper = token.toUpperCase();
    const n = rule.names && upper in rule.names ? rule.names[upper] : Number(token);
    if (!Number.isInteger(n) || n < rule.min || n > rule.max) {
      throw new CronError(`${expression}: "${token}" is not a valid ${rule.name} (${rule.min}-${rule.max})`);
    }
    return n;
  };
  for (const part of text.split(",")) {
    const [range, stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new CronError(`${expression}: bad step "${part}" in ${rule.name}`);
    let from: number;
    let to: number;
    if (range === "*") [from, to] = [rule.min, rule.max];
    else if (range.includes("-")) {
      const [a, b] = range.split("-");
      [from, to] = [value(a), value(b)];
    } else [from, to] = [value(range), stepText === undefined ? value(range) : rule.max];
    if (to < from) throw new CronError(`${expression}: range "${range}" in ${rule.name} runs backwards`);
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

function build(expression: string, fields: string[], dowRule: FieldRule, dowToSunday0: (n: number) => number): CronSpec {
  const [min, hour, dom, mon, dow] = fields;
  const minutes = parseField(min, { name: "minute", min: 0, max: 59 }, expression) ?? range(0, 59);
  const hours = parseField(hour, { name: "hour", min: 0, max: 23 }, expression) ?? range(0, 23);
  const daysOfMonth = parseField(dom, { name: "day-of-month", min: 1, max: 31 }, expression);
  const monthNames = Object.fromEntries(MONTH_NAMES.map((m, i) => [m, i + 1]));
  const months = parseField(mon, { name: "month", min: 1, max: 12, names: monthNames }, expression);
  const rawDow = parseField(dow, dowRule, expression);
  const daysOfWeek = rawDow ? new Set([...rawDow].map(dowToSunday0)) : null;
  return { expression, minutes, hours, daysOfMonth, months, daysOfWeek, weekly: daysOfMonth === null && months === null };
}

function range(from: number, to: number): Set<number> {
  return new Set(Array.from({ length: to - from + 1 }, (_, i) => from + i));
}

/** An Auto Scaling `recurrence`: "0 6 * * 1-5". */
export function parseUnixCron(expression: string): CronSpec {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) throw new CronError(`"${expression}" is not a 5-field cron expression (min hour day-of-month month day-of-week)`);
  const names = Object.fromEntries(DAY_NAMES.map((d, i) => [d, i]));
  return build(expression, fields, { name: "day-of-week", min: 0, max: 7, names }, (n) => n % 7);
}

/** An EventBridge Scheduler expression: "cron(0 20 ? * MON-FRI *)". rate() and at() are not recurring windows. */
export function parseAwsCron(expression: string): CronSpec {
  const m = /^cron\((.*)\)$/.exec(expression.trim());
  if (!m) throw new CronError(`"${expression}" is not a cron(...) expression; rate() and at() schedules are not simulated`);
  const fields = m[1].trim().split(/\s+/);
  if (fields.length !== 6) throw new CronError(`"${expression}" needs 6 fields (min hour day-of-month month day-of-week year)`);
  if (fields[5] !== "*") throw new CronError(`"${expression}": a year restriction is not simulated`);
  const names = Object.fromEntries(DAY_NAMES.map((d, i) => [d, i + 1]));
  return build(expression, fields.slice(0, 5), { name: "day-of-week", min: 1, max: 7, names }, (n) => n - 1);
}

/** Whether the expression fires at this local minute (Unix rule: day-of-month OR day-of-week when both are set). */
export function cronMatches(spec: CronSpec, t: LocalTime): boolean {
  if (!spec.minutes.has(t.minute) || !spec.hours.has(t.hour)) return false;
  if (spec.months && !spec.months.has(t.month)) return false;
  const dom = spec.daysOfMonth?.has(t.dayOfMonth);
  const dow = spec.daysOfWeek?.has(t.dayOfWeek);
  if (spec.daysOfMonth && spec.daysOfWeek) return Boolean(dom || dow);
  if (spec.daysOfMonth) return Boolean(dom);
  if (spec.daysOfWeek) return Boolean(dow);
  return true;
}
