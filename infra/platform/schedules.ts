// Off-peak scale-down and work-hours-only operation of the AWS side, declared per tier (tiers.ts `schedule`):
// scheduled actions on the node groups' Auto Scaling groups and, for work-hours-only tiers, RDS stopped at
// night by EventBridge Scheduler. The Kubernetes side (API HPA minimum, Ollama replicas) is workloads/offpeak.ts.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { NodeGroupSpec, Tier } from "../tiers.ts";
import { OFF_PEAK_SETTLE_MINUTES, OFF_PEAK_WARM_UP_MINUTES } from "../tier-schema.ts";
import { type Day, describeDays, endDays, eventBridgeCron, shifted, unixCron, type Window } from "../time.ts";
import type { NodeRole } from "../node-zones.ts";
import type { NodeGroupInstance } from "./cluster.ts";
import { serviceTrustPolicy } from "./iam.ts";

type Schedule = Tier["schedule"];

export interface OffPeakSchedulesArgs {
  schedule: Schedule;
  /** The stack's IANA time zone: Auto Scaling `timeZone`, EventBridge Scheduler `scheduleExpressionTimezone`. */
  timeZone: string;
  /** Every node group with its peak sizes (a zonal role has one group per zone, each with its share). */
  nodeGroups: NodeGroupInstance[];
  /** The instance work-hours-only tiers stop at night. */
  database: { identifier: pulumi.Input<string>; arn: pulumi.Input<string> };
  /** The schedules' region and account: the scheduler's role trusts EventBridge Scheduler for their group only. */
  region: string;
  accountId: pulumi.Input<string>;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
}

/** An ASG scheduled action's sizes; -1 leaves a size as it is. */
export interface AsgSizes {
  minSize: number;
  desiredCapacity: number;
  maxSize: number;
}

const UNCHANGED = -1;
/** The database's schedules' group: EventBridge Scheduler's `default`, which every account has in every region. */
export const SCHEDULE_GROUP = "default";
/** Off-peak applies to these groups; vector (Qdrant) and monitoring keep their size around the clock. */
const OFF_PEAK_SIZE: Partial<Record<NodeRole, "generalNodes" | "gpuNodes">> = { general: "generalNodes", gpu: "gpuNodes" };

export class OffPeakSchedules extends pulumi.ComponentResource {
  constructor(name: string, args: OffPeakSchedulesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:OffPeakSchedules", name, {}, opts);
    const { schedule } = args;
    const o = { parent: this };

    for (const { role, key, spec, group } of args.nodeGroups) {
      const asgName = group.resources.apply((r) => r[0].autoscalingGroups![0].name!);
      for (const { suffix, hhmm, days, sizes } of groupActions(schedule, role, spec)) {
        new aws.autoscaling.Schedule(
          `${name}-${key}-${suffix}`,
          {
            autoscalingGroupName: asgName,
            scheduledActionName: suffix,
            recurrence: unixCron(hhmm, days),
            // @pulumi/aws autoscaling.Schedule `timeZone`: "an IANA time zone"; the recurrence is read in it (DST included).
            timeZone: args.timeZone,
            ...sizes,
          },
          o,
        );
      }
    }

    if (schedule.workHoursOnly) this.stopDatabaseOutsideWorkHours(name, schedule.workHoursOnly, args);
    this.registerOutputs({});
  }

  private stopDatabaseOutsideWorkHours(name: string, w: Window, args: OffPeakSchedulesArgs): void {
    const { timeZone: timezone, database: db } = args;
    const o = { parent: this };
    const role = new aws.iam.Role(
      `${name}-rds-scheduler`,
      {
        description: "EventBridge Scheduler: stop and start the database outside work hours",
        // The EventBridge Scheduler guide's "Confused deputy prevention": source account and the schedule group's ARN
        // (it says a group's, never a schedule's).
        assumeRolePolicy: serviceTrustPolicy("scheduler.amazonaws.com", {
          account: args.accountId,
          arn: pulumi.interpolate`arn:aws:scheduler:${args.region}:${args.accountId}:schedule-group/${SCHEDULE_GROUP}`,
        }),
        permissionsBoundary: args.permissionsBoundary,
      },
      o,
    );
    new aws.iam.RolePolicy(
      `${name}-rds-scheduler`,
      {
        role: role.id,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Action: ["rds:StopDBInstance", "rds:StartDBInstance"], Resource: db.arn }],
        }),
      },
      o,
    );
    const rdsAction = (suffix: string, api: "stopDBInstance" | "startDBInstance", hhmm: string, days: Day[]) =>
      new aws.scheduler.Schedule(
        `${name}-rds-${suffix}`,
        {
          description: `${api} for the database (workHoursOnly)`,
          groupName: SCHEDULE_GROUP,
          scheduleExpression: eventBridgeCron(hhmm, days),
          // @pulumi/aws scheduler.Schedule `scheduleExpressionTimezone`: the zone the cron is evaluated in (default UTC).
          scheduleExpressionTimezone: timezone,
          flexibleTimeWindow: { mode: "OFF" },
          target: {
            arn: `arn:aws:scheduler:::aws-sdk:rds:${api}`,
            roleArn: role.arn,
            input: pulumi.jsonStringify({ DbInstanceIdentifier: db.identifier }),
          },
        },
        o,
      );
    rdsAction("stop", "stopDBInstance", w.end, endDays(w));
    rdsAction("start", "startDBInstance", w.start, w.days);
  }
}

/** When the peak sizes come back: OFF_PEAK_WARM_UP_MINUTES before the window ends, so they serve by then. */
export const offPeakUp = (w: Window) => shifted(w.end, endDays(w), -OFF_PEAK_WARM_UP_MINUTES);

/**
 * The actions that take a group from its peak size to `size` and back: `down` lowers the minimum where the new size is
 * below it (an ASG rejects desired < min), `settle` sets the size OFF_PEAK_SETTLE_MINUTES later, `up` restores both
 * at once (growing, the group terminates nothing). The maximum never moves.
 *
 * Setting the size at the start let the Auto Scaling group pick the node to terminate itself (zones, launch template,
 * then at random: it knows nothing of pods), and the managed node group drained it: on half the nights in prod it was
 * the GPU node of the Ollama pod meant to stay, so no model was served until that pod rescheduled and pulled its
 * models again (probe U). With only the minimum moved, the cluster autoscaler removes the node the scaled-down pods
 * left, which it finds unneeded after `scale-down-unneeded-time` (10 min, workloads/addons.ts; a GPU node's
 * utilization is its GPU requests), never the one still serving (cluster-autoscaler FAQ, "How does scale-down
 * work?"). `settle` is the backstop, in case it did not; the estimate bills the nodes until then.
 */
export function scaleTo(spec: NodeGroupSpec, size: number): { down?: AsgSizes; settle: AsgSizes; up: AsgSizes } {
  const lowersMin = size < spec.min;
  return {
    ...(lowersMin ? { down: { minSize: size, desiredCapacity: UNCHANGED, maxSize: UNCHANGED } } : {}),
    settle: { minSize: UNCHANGED, desiredCapacity: size, maxSize: UNCHANGED },
    up: { minSize: lowersMin ? spec.min : UNCHANGED, desiredCapacity: spec.desired, maxSize: UNCHANGED },
  };
}

/** One scheduled action of a node group: its name, when it runs, and the sizes it sets. */
interface GroupAction {
  suffix: string;
  hhmm: string;
  days: Day[];
  sizes: AsgSizes;
}

/** The scheduled actions of one node group, from its own sizes (a zonal role's group: its zone's share). */
function groupActions(schedule: Schedule, role: NodeRole, spec: NodeGroupSpec): GroupAction[] {
  const actions: GroupAction[] = [];
  const offPeakKey = OFF_PEAK_SIZE[role];
  if (schedule.offPeak && offPeakKey) {
    const w = schedule.offPeak;
    const { down, settle, up } = scaleTo(spec, schedule.offPeakSizes[offPeakKey]);
    if (down) actions.push({ suffix: "offpeak-down", hhmm: w.start, days: w.days, sizes: down });
    actions.push({ suffix: "offpeak-settle", ...shifted(w.start, w.days, OFF_PEAK_SETTLE_MINUTES), sizes: settle });
    actions.push({ suffix: "offpeak-up", ...offPeakUp(w), sizes: up });
  }
  if (schedule.workHoursOnly) {
    const w = schedule.workHoursOnly;
    const [off, on] = switchOff(spec);
    actions.push({ suffix: "workhours-off", hhmm: w.end, days: endDays(w), sizes: off });
    actions.push({ suffix: "workhours-on", hhmm: w.start, days: w.days, sizes: on });
  }
  return actions;
}

/**
 * Whether a node group's scheduled actions move its minimum size (off-peak lowers it, work hours set it to 0): `pulumi
 * up` then leaves it as it is live (cluster.ts ignoreChanges), as it does the desired size. Managed, a refresh inside
 * the window read the lowered minimum back, and the next update sent the spec's minimum above the live desired size,
 * which EKS refuses ("Minimum capacity can't be greater than desired size"), or raised the group back mid-window. A
 * change of the minimum reaches the group with its next `up` or `on` action, which carries it. Not the maximum, though
 * work hours set it to 0: the provider refuses a maximum under 1 (terraform-provider-aws eks/node_group.go `max_size`
 * IntAtLeast(1)), so a 0 refreshed into the state and kept would fail every later update; an update at night then
 * sends the spec's maximum, and the group stays at 0 until a pod waits for a node. Read from the group's own actions:
 * a role split over zones moves the minimum of a zone's group only where that zone's share is lowered.
 */
export const movesMinimum =
  (schedule: Schedule) =>
  (role: NodeRole, spec: NodeGroupSpec): boolean =>
    groupActions(schedule, role, spec).some((a) => a.sizes.minSize !== UNCHANGED);

/**
 * Outside work hours the group is off: max 0 too, so nothing (the cluster autoscaler, a manual scale)
 * can bring a node back before the "on" action restores the group's own sizes.
 */
function switchOff(spec: NodeGroupSpec): [off: AsgSizes, on: AsgSizes] {
  return [
    { minSize: 0, desiredCapacity: 0, maxSize: 0 },
    { minSize: spec.min, desiredCapacity: spec.desired, maxSize: spec.max },
  ];
}

/** When each group is at which size, in words (the `schedule` stack output). */
export function describeSchedule(
  t: Pick<Tier, "gpu" | "schedule" | "nodeGroups" | "api" | "ollama">,
  timeZone: string,
): string[] {
  const { schedule, nodeGroups: specs } = t;
  const tz = `(${timeZone})`;
  const lines: string[] = [];
  if (schedule.offPeak) {
    const w = schedule.offPeak;
    const s = schedule.offPeakSizes;
    const changes = [
      `general nodes ${specs.general.desired} -> ${s.generalNodes}`,
      ...(t.gpu && specs.gpu ? [`gpu nodes ${specs.gpu.desired} -> ${s.gpuNodes}`] : []),
      `API min replicas ${t.api.minReplicas} -> ${s.apiMinReplicas}`,
      `Ollama replicas ${t.ollama.replicas} -> ${s.ollamaReplicas}`,
    ];
    lines.push(
      `off-peak ${describeDays(w.days)} ${w.start}-${w.end} ${tz}: ${changes.join(", ")}; peak sizes again from ${offPeakUp(w).hhmm}, serving by ${w.end}`,
    );
  }
  if (schedule.workHoursOnly) {
    const w = schedule.workHoursOnly;
    const groups = (Object.entries(specs) as [NodeRole, NodeGroupSpec | null][])
      .filter(([, spec]) => spec)
      .map(([role, spec]) => `${role} nodes ${spec!.desired}`);
    lines.push(`on ${describeDays(w.days)} ${w.start}-${w.end} ${tz}: ${groups.join(", ")}, database running`);
    lines.push(`off outside those hours (nights and weekends): every node group at 0, database stopped`);
  }
  if (lines.length === 0) lines.push("always on at peak sizes (no off-peak window)");
  return lines;
}
