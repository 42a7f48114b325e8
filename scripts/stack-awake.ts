// `tsx scripts/stack-awake.ts --stack dev [--event push|schedule|workflow_dispatch]`: should CI deploy this
// stack now? A stack with work hours only (tier dev: nodes at zero and the database stopped outside them)
// is deployed only while it is up; a push at night is skipped, and the first scheduled run after the
// window opens (deploy.yml, hourly) deploys main then. Prints `deploy=true|false` and the reason,
// and appends them to $GITHUB_OUTPUT when set.
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseStackConfig } from "../infra/config.ts";
import { loadStackFile } from "../infra/plan/stackfile.ts";
import { DAYS, hhmmOf, localTime, minutesOf, type Window, windowLength, windowRanges } from "../infra/time.ts";

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
  const { hour, minute, dayOfWeek } = localTime(timeZone, now);
  const day = DAYS[(dayOfWeek + 6) % 7]; // localTime counts from Sunday, DAYS from Monday
  const local = `${day[0]}${day.slice(1).toLowerCase()} ${hhmmOf(hour * 60 + minute)} ${timeZone}`;
  if (!w) return { awake: true, opening: false, local };
  const at = DAYS.indexOf(day) * 24 * 60 + hour * 60 + minute; // minutes of the week, as windowRanges counts them
  const within = (x: Window) => windowRanges(x).some(([s, e]) => at >= s && at < e);
  const opening = { ...w, end: hhmmOf(minutesOf(w.start) + Math.min(OPENING_MINUTES, windowLength(w))) };
  return { awake: within(w), opening: within(opening), local };
}

export function shouldDeploy(state: Awake, event: string): { deploy: boolean; reason: string } {
  if (!state.awake)
    return {
      deploy: false,
      reason: `outside its work hours (${state.local}): nodes are at zero and the database is stopped; the first scheduled run after they open deploys main`,
    };
  if (event === "schedule" && !state.opening)
    return {
      deploy: false,
      reason: `scheduled catch-up runs only in the first ${OPENING_MINUTES} min of work hours (${state.local})`,
    };
  return { deploy: true, reason: `inside its work hours (${state.local})` };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { stack: { type: "string" }, event: { type: "string", default: "push" } } });
  const file = loadStackFile(values.stack!);
  const config = parseStackConfig(file.config, values.stack!);
  const { schedule } = config.sizes;
  const verdict = shouldDeploy(windowState(schedule.workHoursOnly, config.timeZone, new Date()), values.event!);
  console.log(`deploy=${verdict.deploy}: ${values.stack} is ${verdict.reason}`);
  if (process.env.GITHUB_OUTPUT)
    appendFileSync(process.env.GITHUB_OUTPUT, `deploy=${verdict.deploy}\nreason=${verdict.reason}\n`);
}
