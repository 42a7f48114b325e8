// `tsx scripts/stack-awake.ts --stack dev [--event push|schedule|workflow_dispatch]`: should CI deploy this
// stack now? A stack with work hours only (tier dev: nodes at zero and the database stopped outside them)
// is deployed only while it is up; a push at night is skipped, and the first scheduled run after the
// window opens (deploy.yml, hourly on weekdays) deploys main then. Prints `deploy=true|false` and the reason,
// and appends them to $GITHUB_OUTPUT when set.
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseStackConfig } from "../infra/config.ts";
import { loadStackFile } from "../infra/plan/stackfile.ts";
import { DAYS, type Window } from "../infra/tiers.ts";

/** Minutes after the window opens during which a scheduled run still counts as "the morning run". */
export const OPENING_MINUTES = 60;

export interface Awake {
  awake: boolean;
  /** Within OPENING_MINUTES after a start of the window. */
  opening: boolean;
  local: string;
}

/** Whether `now` falls inside the window, read in `timeZone` (a window may run past midnight). */
export function windowState(w: Window | null, timeZone: string, now: Date): Awake {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(now)
      .map((p) => [p.type, p.value]),
  );
  const local = `${parts.weekday} ${parts.hour}:${parts.minute} ${timeZone}`;
  if (!w) return { awake: true, opening: false, local };
  const day = DAYS.indexOf(parts.weekday.toUpperCase() as (typeof DAYS)[number]);
  const minute = Number(parts.hour) * 60 + Number(parts.minute);
  const toMin = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const [start, end] = [toMin(w.start), toMin(w.end)];
  const length = (end - start + 1440) % 1440;
  // Minutes since the most recent start of the window on one of its days (today's or yesterday's).
  const since = [0, 1]
    .map((back) => ({ d: (day - back + 7) % 7, m: minute + back * 1440 - start }))
    .filter(({ d, m }) => m >= 0 && w.days.includes(DAYS[d]))
    .map(({ m }) => m);
  const awake = since.some((m) => m < length);
  return { awake, opening: since.some((m) => m < Math.min(OPENING_MINUTES, length)), local };
}

export function shouldDeploy(state: Awake, event: string): { deploy: boolean; reason: string } {
  if (!state.awake) return { deploy: false, reason: `outside its work hours (${state.local}): nodes are at zero and the database is stopped; the first scheduled run after they open deploys main` };
  if (event === "schedule" && !state.opening) return { deploy: false, reason: `scheduled catch-up runs only in the first ${OPENING_MINUTES} min of work hours (${state.local})` };
  return { deploy: true, reason: `inside its work hours (${state.local})` };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { stack: { type: "string" }, event: { type: "string", default: "push" } } });
  const file = loadStackFile(values.stack!);
  const config = parseStackConfig(file.config, values.stack!);
  const { schedule } = config.sizes;
  const verdict = shouldDeploy(windowState(schedule.workHoursOnly, schedule.timezone, new Date()), values.event!);
  console.log(`deploy=${verdict.deploy}: ${values.stack} is ${verdict.reason}`);
  if (process.env.GITHUB_OUTPUT) appendFileSync(process.env.GITHUB_OUTPUT, `deploy=${verdict.deploy}\nreason=${verdict.reason}\n`);
}
