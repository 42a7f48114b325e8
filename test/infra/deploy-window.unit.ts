// Issue 13 item 8: deploy credentials outlast the job, and dev is deployed only while it is up.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { DEPLOY_SESSION_SECONDS } from "../../infra/platform/ci-roles.ts";
import { DEPLOY_JOB_TIMEOUT_MINUTES } from "../../infra/tier-schema.ts";
import { TIERS } from "../../infra/tiers.ts";
import { localTime, parseCron } from "../../infra/time.ts";
import { shouldDeploy, windowState } from "../../scripts/stack-awake.ts";

const workflow = (name: string) => YAML.parse(readFileSync(new URL(`../../.github/workflows/${name}`, import.meta.url), "utf8"));

test("the deploy job's credentials last its whole timeout, within the deploy role's maximum session", () => {
  const job = workflow("deploy-stack.yml").jobs.deploy;
  const creds = job.steps.find((s: any) => String(s.uses).startsWith("aws-actions/configure-aws-credentials"));
  const seconds = Number(creds.with["role-duration-seconds"]);
  assert.ok(seconds >= job["timeout-minutes"] * 60, `${seconds} s of credentials for a ${job["timeout-minutes"]} min job`);
  assert.ok(seconds <= DEPLOY_SESSION_SECONDS, `${seconds} s is above the role's MaxSessionDuration ${DEPLOY_SESSION_SECONDS}`);
  // The job must have room for the Ollama update (60 min timeout) and the rollback's second update.
  assert.ok(job["timeout-minutes"] >= 2 * 60 + 2 * 15, `${job["timeout-minutes"]} min leaves no room for a rollback`);
});

test("dev deploys go through the gate; prod does not", () => {
  const jobs = workflow("deploy.yml").jobs;
  assert.equal(jobs.dev.needs, "dev-gate");
  assert.match(jobs.dev.if, /needs\.dev-gate\.outputs\.deploy == 'true'/);
  assert.ok(jobs["dev-gate"].steps.some((s: any) => String(s.run).includes("scripts/stack-awake.ts --stack dev")));
  assert.equal(jobs.prod.needs, undefined);
});

test("the gate hands its verdict to the workflow: deploy= and reason= in $GITHUB_OUTPUT, as deploy.yml's dev job reads it", () => {
  // prod has no work hours: deploy=true at any hour. Without the outputs, `needs.dev-gate.outputs.deploy` is empty and
  // dev is never deployed, with no reason given.
  const dir = mkdtempSync(join(tmpdir(), "stack-awake-"));
  try {
    const output = join(dir, "github-output");
    const script = fileURLToPath(new URL("../../scripts/stack-awake.ts", import.meta.url));
    const result = spawnSync(process.execPath, ["--import", "tsx/esm", script, "--stack", "prod", "--event", "push"], {
      env: { ...process.env, GITHUB_OUTPUT: output },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^deploy=true: prod is inside its work hours \(/);
    assert.match(readFileSync(output, "utf8"), /^deploy=true\nreason=inside its work hours \(.+\)\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const dev = TIERS.dev.schedule.workHoursOnly!;
const at = (iso: string) => new Date(iso);

test("dev is up on weekdays 08:00-20:00 in its time zone, and a push outside is skipped with the reason", () => {
  assert.equal(windowState(dev, "UTC", at("2026-12-01T10:00:00Z")).awake, true); // Tuesday
  assert.equal(windowState(dev, "UTC", at("2026-12-01T21:00:00Z")).awake, false);
  assert.equal(windowState(dev, "UTC", at("2026-12-05T10:00:00Z")).awake, false); // Saturday
  // New York: 13:30 UTC is 08:30 local (EST), inside; 12:30 UTC is 07:30, outside.
  assert.equal(windowState(dev, "America/New_York", at("2026-12-01T13:30:00Z")).awake, true);
  assert.equal(windowState(dev, "America/New_York", at("2026-12-01T12:30:00Z")).awake, false);
  const night = shouldDeploy(windowState(dev, "UTC", at("2026-12-01T23:00:00Z")), "push");
  assert.equal(night.deploy, false);
  assert.match(night.reason, /^outside its work hours \(Tue 23:00 UTC\)/);
  assert.equal(shouldDeploy(windowState(dev, "UTC", at("2026-12-01T10:00:00Z")), "push").deploy, true);
});

test("the hourly schedule deploys once, in the first hour of the deploy span", () => {
  assert.equal(shouldDeploy(windowState(dev, "UTC", at("2026-12-01T08:20:00Z")), "schedule").deploy, true);
  assert.equal(shouldDeploy(windowState(dev, "UTC", at("2026-12-01T09:20:00Z")), "schedule").deploy, false);
  assert.equal(shouldDeploy(windowState(dev, "UTC", at("2026-12-05T08:20:00Z")), "schedule").deploy, false);
});

test("a window past midnight and a stack without work hours", () => {
  const late = { days: ["FRI" as const], start: "22:00", end: "02:00" };
  assert.equal(windowState(late, "UTC", at("2026-12-05T01:00:00Z")).awake, true); // Saturday 01:00, Friday's window
  assert.equal(windowState(late, "UTC", at("2026-12-05T03:00:00Z")).awake, false);
  assert.equal(windowState(null, "UTC", at("2026-12-05T03:00:00Z")).awake, true);
});

test("the hourly schedule reaches the first hour of every work day, in any time zone", () => {
  const cron = workflow("deploy.yml").on.schedule[0].cron;
  // A week from Sunday 00:00 UTC, and a day either side: a zone's Monday starts on Sunday in UTC east of it.
  const firings = parseCron(cron, "unix", "UTC").firings(at("2026-11-29T00:00:00Z"), at("2026-12-07T00:00:00Z"));
  for (const zone of [
    "UTC",
    "America/Los_Angeles",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
  ]) {
    const days = new Set(
      firings
        .filter((t) => shouldDeploy(windowState(dev, zone, t), "schedule").deploy)
        .map((t) => t.toLocaleDateString("en-CA", { timeZone: zone })),
    );
    const workDays = ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]; // Monday to Friday
    assert.deepEqual(
      workDays.filter((d) => !days.has(d)),
      [],
      `${zone}: work days without a scheduled deploy`,
    );
  }
});

test("the gate's deploy job time is the deploy job's timeout", () => {
  assert.equal(workflow("deploy-stack.yml").jobs.deploy["timeout-minutes"], DEPLOY_JOB_TIMEOUT_MINUTES);
});

test("a push deploys dev only after the warm-up and early enough for the job to end inside work hours", () => {
  const push = (iso: string) => shouldDeploy(windowState(dev, "UTC", at(iso)), "push");
  // 08:00-20:00 with a 20 min warm-up and a 170 min job: 08:20-17:10.
  const late = push("2026-12-01T19:50:00Z"); // Tuesday, 10 min before the end
  assert.equal(late.deploy, false);
  assert.match(late.reason, /^too close to the end of its work hours \(Tue 19:50 UTC\): the deploy job may run 170 min/);
  assert.match(late.reason, /deploys run 08:20-17:10; the first scheduled run from Wed 08:20 UTC deploys main$/);
  const early = push("2026-12-01T08:05:00Z"); // 5 min after the start
  assert.equal(early.deploy, false);
  assert.match(early.reason, /^still warming up \(Tue 08:05 UTC\): the database and nodes start at 08:00 and get 20 min/);
  assert.match(early.reason, /the first scheduled run from Tue 08:20 UTC deploys main$/);
  assert.match(push("2026-12-04T19:50:00Z").reason, /from Mon 08:20 UTC/, "Friday evening: next chance Monday");
  assert.equal(push("2026-12-01T13:00:00Z").deploy, true);
  assert.equal(push("2026-12-01T08:20:00Z").deploy, true);
  assert.equal(push("2026-12-01T17:09:00Z").deploy, true);
  assert.equal(push("2026-12-01T17:10:00Z").deploy, false);
});

test("the hourly catch-up run lands in the deploy span on every work day, whatever the zone's offset", () => {
  const cron = workflow("deploy.yml").on.schedule[0].cron;
  const firings = parseCron(cron, "unix", "UTC").firings(at("2026-11-29T00:00:00Z"), at("2026-12-07T00:00:00Z"));
  // Half- and quarter-hour zones: the :20 UTC run is :50 or :05 local there.
  for (const zone of ["UTC", "America/St_Johns", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Pacific/Chatham"]) {
    const runs = firings.filter((t) => shouldDeploy(windowState(dev, zone, t), "schedule").deploy);
    for (const t of runs) {
      const { hour, minute } = localTime(zone, t);
      const m = hour * 60 + minute;
      assert.ok(m >= 8 * 60 + 20 && m < 17 * 60 + 10, `${zone}: a scheduled deploy at ${hour}:${minute}, outside 08:20-17:10`);
    }
    // Sunday 00:00 to Monday 00:00 UTC: a zone east of UTC also gets the Monday after; each work day once.
    const days = runs.map((t) => t.toLocaleDateString("en-CA", { timeZone: zone }));
    for (const d of ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]) {
      assert.equal(days.filter((x) => x === d).length, 1, `${zone}: scheduled deploys on ${d}`);
    }
  }
});
