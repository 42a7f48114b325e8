// Reads the plan's schedule resources and turns them into capacity over time for what they act on:
//  - `aws:autoscaling/schedule:Schedule` -> an EKS node group, matched by its Auto Scaling group name;
//  - `aws:scheduler/schedule:Schedule` calling rds:stopDBInstance / rds:startDBInstance -> an RDS instance,
//    matched by DbInstanceIdentifier.
// Sizes and hours come from these resources, never from the tier config. A schedule that matches nothing is
// reported (its saving is not counted); a schedule we cannot read (L/W/# cron, rate()) is reported too.
import type { PlannedResource } from "../../plan/types.ts";
import type { PreviewResource } from "../preview.ts";
import { at, isKnown, needNumber, optionalNumber, optionalString } from "../inputs.ts";
import { CronError, parseAwsCron, parseUnixCron, type CronSpec } from "./cron.ts";
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

/** Auto Scaling group names a node group may have: the mocks' `eks-<name>-asg`, the real one from outputs. */
function asgNames(ng: PlannedResource): { exact: Set<string>; prefix: string } {
  const exact = new Set([`eks-${ng.name}-asg`]);
  const outputs = (ng as PreviewResource).outputs;
  for (const res of (at(outputs, "resources") as unknown[] | undefined) ?? []) {
    for (const g of (at(res, "autoscalingGroups") as unknown[] | undefined) ?? []) {
      const name = at(g, "name");
      if (typeof name === "string" && isKnown(name)) exact.add(name);
    }
  }
  // EKS names the group eks-<nodeGroupName>-<uuid>.
  return { exact, prefix: `eks-${optionalString(ng.inputs, "nodeGroupName") ?? ng.name}-` };
}

function matchesAsg(asgName: string, ng: PlannedResource): boolean {
  const { exact, prefix } = asgNames(ng);
  if (exact.has(asgName)) return true;
  return asgName.startsWith(prefix) && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(asgName.slice(prefix.length));
}

/** A size input of a scheduled action: undefined and -1 mean "leave unchanged". */
function sizeInput(inputs: Record<string, unknown>, key: string): number | undefined {
  const n = optionalNumber(inputs, key);
  return n === undefined || n < 0 ? undefined : n;
}

function asgAction(s: PlannedResource, cron: CronSpec): TimedAction<AsgState> {
  const min = sizeInput(s.inputs, "minSize");
  const max = sizeInput(s.inputs, "maxSize");
  const desired = sizeInput(s.inputs, "desiredCapacity");
  return {
    cron,
    timeZone: optionalString(s.inputs, "timeZone") ?? "UTC",
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
    .map((k) => (sizeInput(i, k) === undefined ? undefined : `${k === "desiredCapacity" ? "desired" : k.replace("Size", "")} ${i[k]}`))
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
  const asgByNodeGroup = new Map<PlannedResource, { schedule: PlannedResource; cron: CronSpec }[]>();
  const rdsByInstance = new Map<PlannedResource, { schedule: PlannedResource; cron: CronSpec; action: RdsAction }[]>();

  const parse = (s: PlannedResource, expression: unknown, parser: (e: string) => CronSpec): CronSpec | undefined => {
    if (typeof expression !== "string" || !isKnown(expression)) {
      warnings.push(`schedule ${s.name}: its expression is not known; its effect is not counted`);
      return undefined;
    }
    try {
      return parser(expression);
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
    // Before the first apply the name is unknown; a preview still says which resource it comes from.
    const from = (s as PreviewResource).propertyDependencies?.autoscalingGroupName ?? [];
    const ng = asgName === undefined ? nodeGroups.find((n) => from.includes(n.urn)) : nodeGroups.find((n) => matchesAsg(asgName, n));
    if (!ng) {
      warnings.push(
        asgName === undefined
          ? `schedule ${s.name}: its Auto Scaling group is not known until apply; its effect is not counted`
          : `schedule ${s.name}: Auto Scaling group "${asgName}" is not a node group of this plan; its effect is not counted`,
      );
      continue;
    }
    if (isKnown(s.inputs.startTime) || isKnown(s.inputs.endTime)) warnings.push(`schedule ${s.name}: startTime/endTime are ignored; the recurrence is taken as permanent`);
    const cron = parse(s, s.inputs.recurrence, parseUnixCron);
    if (cron) asgByNodeGroup.set(ng, [...(asgByNodeGroup.get(ng) ?? []), { schedule: s, cron }]);
  }

  for (const s of resources.filter((r) => r.type === SCHEDULER_SCHEDULE)) {
    const target = rdsActionOf(s);
    if (!target) continue; // not an RDS stop/start: nothing to simulate
    if (optionalString(s.inputs, "state") === "DISABLED") continue;
    const db = rdsInstances.find((r) => target.identifier !== undefined && (r.inputs.identifier === target.identifier || r.name === target.identifier));
    if (!db) {
      warnings.push(`schedule ${s.name}: RDS instance "${target.identifier ?? "unknown"}" is not in this plan; its effect is not counted`);
      continue;
    }
    const cron = parse(s, s.inputs.scheduleExpression, parseAwsCron);
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
      const result = simulate(initial, scheduled.map(({ schedule, cron }) => asgAction(schedule, cron)), (s) => s.desired);
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
      const actions = scheduled.map(({ schedule, cron, action }): TimedAction<boolean> => ({
        cron,
        timeZone: optionalString(schedule.inputs, "scheduleExpressionTimezone") ?? "UTC",
        apply: () => action === "start",
      }));
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
