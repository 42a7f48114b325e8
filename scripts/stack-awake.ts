// `tsx scripts/stack-awake.ts --stack dev [--event push|schedule|workflow_dispatch]`: should CI deploy this
// stack now? A stack with work hours only (tier dev: nodes at zero and the database stopped outside them)
// is deployed only when the job can run start to end while it is up: from the window's start plus the warm-up
// (the database starting, a node joining from zero: OFF_PEAK_WARM_UP_MINUTES) to its end less the deploy job's
// longest run (deploy-stack.yml timeout-minutes, DEPLOY_JOB_TIMEOUT_MINUTES). A push outside that span is skipped
// with the reason and the next chance; the first scheduled run in it (deploy.yml, hourly) deploys main then.
// Prints `deploy=true|false` and the reason, and appends them to $GITHUB_OUTPUT when set.
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseStackConfig } from "../infra/config.ts";
import { loadStackFile } from "../infra/plan/stackfile.ts";
import {
  DEPLOY_CATCH_UP_MINUTES,
  DEPLOY_JOB_TIMEOUT_MINUTES,
  deploySpanMinutes,
  OFF_PEAK_WARM_UP_MINUTES,
} from "../infra/tier-schema.ts";
import {
  DAY_MINUTES,
  DAYS,
  hhmmOf,
  localTime,
  minutesOf,
  shifted,
  WEEK_MINUTES,
  type Window,
  windowRanges,
} from "../infra/time.ts";

/** The part of `w` from `offset` minutes after its start, `length` minutes long, on the days that part starts. */
function partOf(w: Window, offset: number, length: number): Window {
  const { hhmm, days } = shifted(w.start, w.days, offset);
  return { days, start: hhmm, end: hhmmOf(minutesOf(hhmm) + length) };
}

export interface Awake {
  /** Inside the work hours. */
  awake: boolean;
  /** Inside the deploy span: warmed up, and a deploy job started now ends before the hours do. */
  deployable: boolean;
  /** In the first OFF_PEAK_WARM_UP_MINUTES of the work hours, while the database and nodes come up. */
  warming: boolean;
  /** Within DEPLOY_CATCH_UP_MINUTES after a start of the deploy span. */
  opening: boolean;
  local: string;
  /** The deploy span, "08:20-17:10", or null without work hours. */
  span: string | null;
  /** The next start of the deploy span, "Wed 08:20 UTC"; null without one. */
  next: string | null;
  /** The window's start and end, for the reason. */
  window: Window | null;
}

/** Whether `now` falls inside the window and its deploy span, read in `timeZone` (a window may run past midnight). */
export function windowState(w: Window | null, timeZone: string, now: Date): Awake {
  const { hour, minute, dayOfWeek } = localTime(timeZone, now);
  const label = (m: number) => {
    const d = DAYS[Math.floor((((m % WEEK_MINUTES) + WEEK_MINUTES) % WEEK_MINUTES) / DAY_MINUTES)];
    return `${d[0]}${d.slice(1).toLowerCase()} ${hhmmOf(m)} ${timeZone}`;
  };
  // Minutes of the week, Monday 00:00 = 0 (localTime counts days from Sunday).
  const at = ((dayOfWeek + 6) % 7) * DAY_MINUTES + hour * 60 + minute;
  const local = label(at);
  if (!w) return { awake: true, deployable: true, warming: false, opening: false, local, span: null, next: null, window: null };
  const within = (x: Window) => windowRanges(x).some(([s, e]) => at >= s && at < e);
  // The schema keeps the span at least DEPLOY_CATCH_UP_MINUTES long (tier-schema.ts deploySpanMinutes).
  const span = partOf(w, OFF_PEAK_WARM_UP_MINUTES, deploySpanMinutes(w));
  const waits = span.days.map((d) => (DAYS.indexOf(d) * DAY_MINUTES + minutesOf(span.start) - at + WEEK_MINUTES) % WEEK_MINUTES);
  return {
    awake: within(w),
    deployable: within(span),
    warming: within(partOf(w, 0, OFF_PEAK_WARM_UP_MINUTES)),
    opening: within(partOf(w, OFF_PEAK_WARM_UP_MINUTES, DEPLOY_CATCH_UP_MINUTES)),
    local,
    span: `${span.start}-${span.end}`,
    next: label(at + Math.min(...waits)),
    window: w,
  };
}

export function shouldDeploy(state: Awake, event: string): { deploy: boolean; reason: string } {
  const w = state.window;
  const next = `the first scheduled run from ${state.next} deploys main`;
  if (!state.awake)
    return {
      deploy: false,
      reason: `outside its work hours (${state.local}): nodes are at zero and the database is stopped; ${next}`,
    };
  if (!state.deployable) {
    const why = state.warming
      ? `still warming up (${state.local}): the database and nodes start at ${w!.start} and get ${OFF_PEAK_WARM_UP_MINUTES} min to be ready`
      : `too close to the end of its work hours (${state.local}): the deploy job may run ${DEPLOY_JOB_TIMEOUT_MINUTES} min (its timeout, a rollback included) and the stack stops at ${w!.end}`;
    return { deploy: false, reason: `${why}; deploys run ${state.span}; ${next}` };
  }
  if (event === "schedule" && !state.opening)
    return {
      deploy: false,
      reason: `scheduled catch-up runs only in the first ${DEPLOY_CATCH_UP_MINUTES} min of its deploy span${state.span ? ` ${state.span}` : ""} (${state.local})`,
    };
  return {
    deploy: true,
    reason: state.span ? `inside its deploy span ${state.span} (${state.local})` : `inside its work hours (${state.local})`,
  };
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
