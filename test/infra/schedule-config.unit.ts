// Schedule, backup and budget config: every bad value is refused with one message naming the key and why.
import assert from "node:assert/strict";
import { test } from "node:test";
import { configFailure as failure } from "../support/config.ts";
import { parseStackConfig } from "../../infra/config.ts";
import { TIER_NAMES } from "../../infra/tiers.ts";

const raw = (tier: string, overrides: unknown = {}, extra: Record<string, string> = {}) => ({
  "aws:region": "us-east-1",
  "agent-stack:tier": tier,
  "agent-stack:overrides": JSON.stringify(overrides),
  ...extra,
});

const offPeak = (w: object) => ({
  schedule: { offPeak: { days: ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], start: "00:00", end: "06:00", ...w } },
});

test("every tier's schedule, backups and budget are valid as shipped", () => {
  for (const tier of TIER_NAMES) assert.doesNotThrow(() => parseStackConfig(raw(tier), tier), tier);
});

test("a time that is not HH:MM", () => {
  assert.equal(
    failure(raw("medium", offPeak({ start: "24:00" }))),
    'agent-stack:overrides.schedule.offPeak.start: got "24:00"; allowed: a time HH:MM (00:00-23:59)',
  );
  assert.match(failure(raw("medium", offPeak({ end: "6:00" }))), /schedule\.offPeak\.end: got "6:00"; allowed: a time HH:MM/);
});

test("a window whose start equals its end", () => {
  assert.equal(
    failure(raw("medium", offPeak({ start: "06:00" }))),
    "agent-stack:overrides.schedule.offPeak.end: 06:00 equals start; a window's start and end must differ",
  );
});

test("an off-peak window too short to settle and warm up in", () => {
  assert.equal(
    failure(raw("medium", offPeak({ start: "05:30" }))),
    "agent-stack:overrides.schedule.offPeak: MON,TUE,WED,THU,FRI,SAT,SUN 05:30-06:00 is 30 minutes; needs more than 40 (the sizes settle 20 minutes after the start and come back 20 before the end)",
  );
});

test("off-peak sizes above the peak sizes", () => {
  const message = failure(raw("medium", { schedule: { offPeakSizes: { generalNodes: 4, apiMinReplicas: 5 } } }));
  assert.match(message, /schedule\.offPeakSizes\.generalNodes: 4 is above the peak size nodeGroups\.general\.desired = 3/);
  assert.match(message, /schedule\.offPeakSizes\.apiMinReplicas: 5 is above the peak size api\.minReplicas = 3/);
});

test("an off-peak API minimum of 0 (the PodDisruptionBudget needs one pod)", () => {
  assert.equal(
    failure(raw("medium", { schedule: { offPeakSizes: { apiMinReplicas: 0 } } })),
    "agent-stack:overrides.schedule.offPeakSizes.apiMinReplicas: got 0; allowed: >= 1",
  );
});

test("off-peak Ollama on GPUs with no GPU node left", () => {
  assert.match(
    failure(raw("medium", { schedule: { offPeakSizes: { gpuNodes: 0 } } })),
    /schedule\.offPeakSizes\.gpuNodes: 0 leaves the 1 off-peak Ollama replica\(s\) without a GPU node; needs >= 1/,
  );
});

test("agent-stack:timeZone: an IANA name spelled exactly, else a message naming the key", () => {
  for (const tz of ["Mars/Olympus", "GMT+1", "europe/berlin"]) {
    assert.equal(
      failure(raw("medium", {}, { "agent-stack:timeZone": tz })),
      `agent-stack:timeZone: an IANA time zone with its exact spelling, like America/New_York, Europe/Berlin or UTC`,
    );
  }
  assert.equal(parseStackConfig(raw("medium", {}, { "agent-stack:timeZone": "Europe/Berlin" }), "t").timeZone, "Europe/Berlin");
});

test("agent-stack:timeZone defaults to the region's zone, UTC for a region not in the table", () => {
  assert.equal(parseStackConfig(raw("medium"), "t").timeZone, "America/New_York");
  assert.equal(parseStackConfig(raw("medium", {}, { "aws:region": "eu-central-1" }), "t").timeZone, "Europe/Berlin");
  assert.equal(parseStackConfig(raw("medium", {}, { "aws:region": "us-isof-south-1" }), "t").timeZone, "UTC");
});

test("an off-peak window in the hours work-hours-only switches everything off", () => {
  assert.match(
    failure(raw("dev", offPeak({}))),
    /^agent-stack:overrides\.schedule\.offPeak: MON,TUE,WED,THU,FRI,SAT,SUN 00:00-06:00 overlaps the hours outside workHoursOnly \(MON,TUE,WED,THU,FRI 08:00-20:00\)/,
  );
  // Inside work hours it is fine (a lunch-time dip).
  const ok = parseStackConfig(raw("dev", offPeak({ days: ["MON", "FRI"], start: "12:00", end: "13:30" })), "dev");
  assert.equal(ok.sizes.schedule.offPeak?.start, "12:00");
});

test("work-hours-only with RDS read replicas (RDS cannot stop such an instance)", () => {
  assert.match(
    failure(raw("dev", { database: { readReplicas: 1 } })),
    /database\.readReplicas: 1: RDS cannot stop an instance with read replicas/,
  );
});

test("work hours too short for the database's backup window and the AWS Backup run, or putting it on maintenance", () => {
  const hours = (start: string, end: string) => ({
    schedule: { workHoursOnly: { days: ["MON", "TUE", "WED", "THU", "FRI"], start, end } },
    backups: { qdrantSnapshotCron: `30 ${(Number(start.slice(0, 2)) + 1) % 24} * * 1-5` },
  });
  assert.match(
    failure(raw("dev", hours("08:00", "10:00"))),
    /^agent-stack:overrides\.schedule\.workHoursOnly: MON,TUE,WED,THU,FRI 08:00-10:00 is too short: the database's backup window \(09:00, an hour later in summer\) and the AWS Backup run/,
  );
  assert.match(failure(raw("dev", hours("08:30", "16:30"))), /16:30 is too short/, "the run is on the hour: 12:00");
  assert.doesNotThrow(() => parseStackConfig(raw("dev", hours("09:00", "17:00")), "dev"));
  assert.doesNotThrow(() => parseStackConfig(raw("dev", hours("20:00", "04:00")), "dev"), "past midnight");
  assert.equal(
    failure(raw("dev", hours("03:00", "12:00"))),
    "agent-stack:overrides.schedule.workHoursOnly.start: 03:00 puts the database's backup window (04:00) on its SUN maintenance window (04:00, an hour), which RDS refuses; start the work hours by 02:00 or from 04:00",
  );
  // Back to back is no overlap.
  for (const start of ["02:00", "04:00"]) assert.doesNotThrow(() => parseStackConfig(raw("dev", hours(start, "14:00")), "dev"));
});

test("a Qdrant snapshot cron that is not one, or that fires while work-hours-only has the cluster off", () => {
  const cron = (c: string) => failure(raw("dev", { backups: { qdrantSnapshotCron: c } }));
  assert.match(
    cron("0 12 * *"),
    /backups\.qdrantSnapshotCron: "0 12 \* \*" is not a 5-field cron expression \(min hour day-of-month month day-of-week\)/,
  );
  assert.match(cron("0 24 * * 3"), /backups\.qdrantSnapshotCron: "0 24 \* \* 3": Invalid value for hour: 24/);
  assert.match(cron("0 3 * * 0"), /backups\.qdrantSnapshotCron: "0 3 \* \* 0" can fire outside workHoursOnly/);
  assert.match(cron("0 12 * * SAT"), /can fire outside workHoursOnly/);
  assert.match(cron("0 12 1 * *"), /can fire outside workHoursOnly/, "the 1st of a month can be a Sunday");
  assert.doesNotThrow(() => parseStackConfig(raw("dev", { backups: { qdrantSnapshotCron: "30 9 * * MON-FRI" } }), "dev"));
  assert.doesNotThrow(() => parseStackConfig(raw("medium", { backups: { qdrantSnapshotCron: "0 2 * * 0" } }), "prod"));
});

test("a Qdrant snapshot cron the CronJob cannot take (L, W, #), or one that never fires", () => {
  // Kubernetes parses a CronJob's schedule with robfig/cron's standard parser (numbers, names, * ? , - /); croner,
  // which reads it here, also takes Quartz's L, W and #.
  const cron = (c: string) => failure(raw("medium", { backups: { qdrantSnapshotCron: c } }));
  for (const c of ["0 3 L * *", "0 3 15W * *", "0 3 * * MON#1", "0 3 * * 5L"])
    assert.match(cron(c), /backups\.qdrantSnapshotCron: ".*" uses L, W or # \(\S+\), which Kubernetes CronJobs do not take/, c);
  // A word that is no name is told so, not taken for L, W or #.
  assert.match(cron("0 3 * JULY *"), /"0 3 \* JULY \*": "JULY" is neither a number nor a name Kubernetes CronJobs take/);
  assert.match(cron("0 3 * * LUNDI"), /"LUNDI" is neither a number nor a name/);
  assert.match(cron("0 0 31 2 *"), /backups\.qdrantSnapshotCron: "0 0 31 2 \*" never fires/);
  assert.doesNotThrow(() => parseStackConfig(raw("medium", { backups: { qdrantSnapshotCron: "0 2 * jul sun" } }), "prod"));
});

test("backups that expire before they reach Glacier, or before Glacier's 90 billed days", () => {
  const expected = (days: number) =>
    `agent-stack:overrides.backups.expireAfterDays: ${days} must be at least glacierAfterDays 30 + 90: Glacier bills 90 days for each object however soon it expires`;
  assert.equal(failure(raw("medium", { backups: { expireAfterDays: 30 } })), expected(30));
  assert.equal(failure(raw("medium", { backups: { expireAfterDays: 119 } })), expected(119));
  assert.doesNotThrow(() => parseStackConfig(raw("medium", { backups: { expireAfterDays: 120 } }), "prod"));
});

test("budget: an override must be a positive amount; the SNS topic must be an SNS ARN", () => {
  assert.match(failure(raw("medium", { budget: { monthlyUsd: 0 } })), /^agent-stack:overrides\.budget\.monthlyUsd: got 0/);
  assert.equal(parseStackConfig(raw("medium", { budget: { monthlyUsd: 9000 } }), "prod").sizes.budget.monthlyUsd, 9000);
  assert.match(
    failure(raw("medium", {}, { "agent-stack:budgetSnsTopicArn": "budget-alerts" })),
    /^agent-stack:budgetSnsTopicArn: got "budget-alerts"; allowed: an SNS topic ARN/,
  );
});

test("work hours too short for a deploy to warm up, catch up and end inside them", () => {
  const hours = { schedule: { workHoursOnly: { days: ["MON", "TUE", "WED", "THU", "FRI"], start: "08:00", end: "12:00" } } };
  assert.match(
    failure(raw("dev", hours)),
    /^agent-stack:overrides\.schedule\.workHoursOnly: MON,TUE,WED,THU,FRI 08:00-12:00 leaves no time to deploy: the stack is ready 20 minutes after the start .* the deploy job may run 170 minutes \(deploy-stack\.yml timeout-minutes\).*give it at least 250 minutes$/m,
  );
});
