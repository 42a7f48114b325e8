// Reads the plan's schedule resources and turns them into capacity over time for what they act on:
//  - `aws:autoscaling/schedule:Schedule` -> an EKS node group, matched by its Auto Scaling group name;
//  - `aws:scheduler/schedule:Schedule` calling rds:stopDBInstance / rds:startDBInstance -> an RDS instance,
//    matched by DbInstanceIdentifier.
// Sizes and hours come from these resources, never from the tier config. A schedule that matches nothing is
// reported (its saving is not counted); a schedule we cannot read (L/W/# cron, rate()) is reported too.
import type { PlannedResource } from "../../plan/types.ts";
import type { PreviewResource } from "../preview.ts";
import { at, isKnown, needNumber, optionalNumber, optionalString } from "../inputs.ts";
import { CronError, type CronDialect, type CronSchedule, parseCron } from "../../time.ts";
import { simulate, type TimedAction } from "./simulate.ts";

export const ASG_SCHEDULE = "aws:autoscaling/schedule:Schedule";
export const SCHEDULER_SCHEDULE = "aws:scheduler/schedule:Schedule";
const NODE_GROUP = "aws:eks/nodeGroup:NodeGroup";
const RDS_INSTANCE = "aws:rds/instance:Instance";

export interface CapacityProfile {
  /** Time-weighted mean node count. */
  averageNodes: number;
  /** The full size: the declared desired size or the largest size a schedule sets, whichever is larger. */
  fullNodes: number;
  schedules: string[];
}

export interface RunProfile {
  /** Share of hours the instance runs (1 without stop/start schedules). */
  runningFraction: number;
  schedules: string[];
}

export interface ScheduleSummary {
  target: string;
  targetType: string;
  schedules: string[];
  /** "3 nodes, 2.75 on average" / "runs 35.7 % of hours". */
  effect: string;
  /** Monthly hours-at-full-size saved, as a share (0.083 = 8.3 %). */
  reduction: number;
}

export interface ScheduleIndex {
  nodeGroup(nodeGroup: PlannedResource): CapacityProfile;
  rdsInstance(instance: PlannedResource): RunProfile;
  /** Every schedule that acts on a resource of the plan, with its effect. */
  summaries(): ScheduleSummary[];
  warnings: string[];
}

interface AsgState {
  min: number;
  desired: number;
  max: number;
}

/** The node group whose Auto Scaling group a schedule acts on: the source of its `autoscalingGroupName` input
 * (the plan's recorded property dependencies, or a preview's), else by the real ASG name in a node group's outputs. */
function nodeGroupOf(schedule: PlannedResource, nodeGroups: PlannedResource[]): PlannedResource | undefined {
  const from = schedule.propertyDependencies?.autoscalingGroupName ?? [];
  const byDependency = nodeGroups.find((n) => from.includes(n.urn));
  if (byDependency) return byDependency;
  const asgName = optionalString(schedule.inputs, "autoscalingGroupName");
  return asgName === undefined ? undefined : nodeGroups.find((n) => asgNamesInOutputs(n).includes(asgName));
}

function asgNamesInOutputs(ng: PlannedResource): string[] {
  const names: string[] = [];
  for (const res of (at((ng as PreviewResource).outputs, "resources") as unknown[] | undefined) ?? []) {
    for (const g of (at(res, "autoscalingGroups") as unknown[] | undefined) ?? []) {
      const name = at(g, "name");
      if (typeof name === "string" && isKnown(name)) names.push(name);
    }
  }
  return names;
}

/** A size input of a scheduled action: undefined and -1 mean "leave unchanged". */
function sizeInput(inputs: Record<string, unknown>, key: string): number | undefined {
  const n = optionalNumber(inputs, key);
  return n === undefined || n < 0 ? undefined : n;
}

function asgAction(s: PlannedResource, cron: CronSchedule): TimedAction<AsgState> {
  const min = sizeInput(s.inputs, "minSize");
  const max = sizeInput(s.inputs, "maxSize");
  const desired = sizeInput(s.inputs, "desiredCapacity");
  return {
    cron,
    apply: (state) => {
      const next = { min: min ?? state.min, max: max ?? state.max, desired: desired ?? state.desired };
      next.desired = Math.min(Math.max(next.desired, next.min), next.max);
      return next;
    },
  };
}

function describeAsgSchedule(s: PlannedResource): string {
  const i = s.inputs;
  const sizes = (["minSize", "desiredCapacity", "maxSize"] as const)
    .map((k) =>
      sizeInput(i, k) === undefined ? undefined : `${k === "desiredCapacity" ? "desired" : k.replace("Size", "")} ${i[k]}`,
    )
    .filter(Boolean)
    .join(", ");
  return `${s.name}: "${String(i.recurrence)}" ${optionalString(i, "timeZone") ?? "UTC"} -> ${sizes || "no size change"}`;
}

type RdsAction = "stop" | "start";

function rdsActionOf(s: PlannedResource): { action: RdsAction; identifier: string | undefined } | undefined {
  const arn = optionalString(s.inputs, "target.arn") ?? "";
  const action = /:rds:stopDBInstance$/i.test(arn) ? "stop" : /:rds:startDBInstance$/i.test(arn) ? "start" : undefined;
  if (!action) return undefined;
  let input = at(s.inputs, "target.input");
  if (typeof input === "string") {
    try {
      input = JSON.parse(input);
    } catch {
      input = undefined;
    }
  }
  const identifier = at(input, "DbInstanceIdentifier");
  return { action, identifier: typeof identifier === "string" && isKnown(identifier) ? identifier : undefined };
}

export function indexSchedules(resources: readonly PlannedResource[]): ScheduleIndex {
  const warnings: string[] = [];
  const nodeGroups = resources.filter((r) => r.type === NODE_GROUP);
  const rdsInstances = resources.filter((r) => r.type === RDS_INSTANCE);
  const asgByNodeGroup = new Map<PlannedResource, { schedule: PlannedResource; cron: CronSchedule }[]>();
  const rdsByInstance = new Map<PlannedResource, { schedule: PlannedResource; cron: CronSchedule; action: RdsAction }[]>();

  const parse = (s: PlannedResource, expression: unknown, dialect: CronDialect, timeZone: string): CronSchedule | undefined => {
    if (typeof expression !== "string" || !isKnown(expression)) {
      warnings.push(`schedule ${s.name}: its expression is not known; its effect is not counted`);
      return undefined;
    }
    try {
      return parseCron(expression, dialect, timeZone);
    } catch (err) {
      if (err instanceof CronError) {
        warnings.push(`schedule ${s.name}: ${err.message}; its effect is not counted`);
        return undefined;
      }
      throw err;
    }
  };

  for (const s of resources.filter((r) => r.type === ASG_SCHEDULE)) {
    const asgName = optionalString(s.inputs, "autoscalingGroupName");
    const ng = nodeGroupOf(s, nodeGroups);
    if (!ng) {
      warnings.push(
        asgName === undefined
          ? `schedule ${s.name}: its Auto Scaling group is not known until apply; its effect is not counted`
          : `schedule ${s.name}: Auto Scaling group "${asgName}" is not a node group of this plan; its effect is not counted`,
      );
      continue;
    }
    if (isKnown(s.inputs.startTime) || isKnown(s.inputs.endTime))
      warnings.push(`schedule ${s.name}: startTime/endTime are ignored; the recurrence is taken as permanent`);
    const cron = parse(s, s.inputs.recurrence, "unix", optionalString(s.inputs, "timeZone") ?? "UTC");
    if (cron) asgByNodeGroup.set(ng, [...(asgByNodeGroup.get(ng) ?? []), { schedule: s, cron }]);
  }

  for (const s of resources.filter((r) => r.type === SCHEDULER_SCHEDULE)) {
    const target = rdsActionOf(s);
    if (!target) continue; // not an RDS stop/start: nothing to simulate
    if (optionalString(s.inputs, "state") === "DISABLED") continue;
    const from = s.propertyDependencies?.target ?? [];
    const db =
      rdsInstances.find((r) => from.includes(r.urn)) ??
      rdsInstances.find((r) => target.identifier !== undefined && r.inputs.identifier === target.identifier);
    if (!db) {
      warnings.push(
        `schedule ${s.name}: RDS instance "${target.identifier ?? "unknown"}" is not in this plan; its effect is not counted`,
      );
      continue;
    }
    const cron = parse(
      s,
      s.inputs.scheduleExpression,
      "eventbridge",
      optionalString(s.inputs, "scheduleExpressionTimezone") ?? "UTC",
    );
    if (cron) rdsByInstance.set(db, [...(rdsByInstance.get(db) ?? []), { schedule: s, cron, action: target.action }]);
  }

  const nodeProfiles = new Map<PlannedResource, CapacityProfile>();
  const nodeGroup = (ng: PlannedResource): CapacityProfile => {
    const cached = nodeProfiles.get(ng);
    if (cached) return cached;
    const declared = needNumber(ng.inputs, "scalingConfig.desiredSize");
    const initial: AsgState = {
      min: optionalNumber(ng.inputs, "scalingConfig.minSize") ?? 0,
      desired: declared,
      max: optionalNumber(ng.inputs, "scalingConfig.maxSize") ?? declared,
    };
    const scheduled = asgByNodeGroup.get(ng) ?? [];
    let profile: CapacityProfile = { averageNodes: declared, fullNodes: declared, schedules: [] };
    if (scheduled.length > 0) {
      const result = simulate(
        initial,
        scheduled.map(({ schedule, cron }) => asgAction(schedule, cron)),
        (s) => s.desired,
      );
      profile = {
        averageNodes: result.average,
        fullNodes: Math.max(declared, result.peak),
        schedules: scheduled.map(({ schedule }) => describeAsgSchedule(schedule)),
      };
    }
    nodeProfiles.set(ng, profile);
    return profile;
  };

  const rdsProfiles = new Map<PlannedResource, RunProfile>();
  const rdsInstance = (db: PlannedResource): RunProfile => {
    const cached = rdsProfiles.get(db);
    if (cached) return cached;
    const scheduled = rdsByInstance.get(db) ?? [];
    let profile: RunProfile = { runningFraction: 1, schedules: [] };
    if (scheduled.length > 0) {
      const actions = scheduled.map(
        ({ cron, action }): TimedAction<boolean> => ({
          cron,
          apply: () => action === "start",
        }),
      );
      const result = simulate(true, actions, (running) => (running ? 1 : 0));
      profile = {
        runningFraction: result.average,
        schedules: scheduled.map(
          ({ schedule, action }) =>
            `${schedule.name}: "${String(schedule.inputs.scheduleExpression)}" ${optionalString(schedule.inputs, "scheduleExpressionTimezone") ?? "UTC"} -> ${action}`,
        ),
      };
    }
    rdsProfiles.set(db, profile);
    return profile;
  };

  const summaries = (): ScheduleSummary[] => {
    const out: ScheduleSummary[] = [];
    for (const ng of asgByNodeGroup.keys()) {
      try {
        const p = nodeGroup(ng);
        out.push({
          target: ng.name,
          targetType: ng.type,
          schedules: p.schedules,
          effect: `${p.fullNodes} node${p.fullNodes === 1 ? "" : "s"} at full size, ${round(p.averageNodes, 2)} on average`,
          reduction: p.fullNodes === 0 ? 0 : 1 - p.averageNodes / p.fullNodes,
        });
      } catch {
        // an unpriceable node group is reported as unpriced by the estimator
      }
    }
    for (const db of rdsByInstance.keys()) {
      const p = rdsInstance(db);
      out.push({
        target: db.name,
        targetType: db.type,
        schedules: p.schedules,
        effect: `runs ${round(p.runningFraction * 100, 1)} % of hours`,
        reduction: 1 - p.runningFraction,
      });
    }
    return out;
  };

  return { nodeGroup, rdsInstance, summaries, warnings };
}

function round(n: number, digits: number): number {
  return Math.round(n * 10 ** digits) / 10 ** digits;
}
