// Synthetic plans for the cost tests: resources as the offline plan records them, and a small price table with
// round numbers so every expected value can be worked out by hand.
import type { Plan, PlannedResource } from "../../infra/plan/types.ts";
import { PriceTable } from "../../infra/cost/prices.ts";
import { isTierName, TIERS } from "../../infra/tiers.ts";
import { USAGE } from "../../infra/usage.ts";
import { linkReferences } from "../support/plan.ts";

export function resource(
  type: string,
  name: string,
  inputs: Record<string, unknown> = {},
  extra: Partial<PlannedResource> = {},
): PlannedResource {
  return {
    type,
    name,
    urn: `urn:pulumi:test::agent-stack::${type}::${name}`,
    component: "test",
    inputs,
    custom: true,
    options: {},
    ...extra,
  };
}

/** A plan as the harness records it: references linked, and the tier's resolved config (none for an unknown tier). */
export function plan(resources: PlannedResource[], tier = "medium", region = "us-east-1"): Plan {
  const config = isTierName(tier)
    ? { tier, region, timeZone: "UTC", budget: { ...TIERS[tier].budget }, usage: USAGE[tier], guide: { ...TIERS[tier].guide } }
    : null;
  return { stack: "test", tier, region, config, resources: linkReferences(resources), outputs: {}, cost: null, policies: null };
}

const entry = (usd: number, unit: string) => ({ usd, unit, source: "test", date: "2026-11-24" });

/** Round test prices: an m.x node $0.50/h, gp3 $0.10/GB-month, RDS db.x $1/h single-AZ, ... */
export const TEST_PRICES = new PriceTable(
  "us-east-1",
  "2026-11-24",
  {
    "ec2:m.x": entry(0.5, "instance-hour"),
    "ec2:g.x": entry(2, "instance-hour"),
    "ebs:gp3": entry(0.1, "GB-month"),
    "ebs:gp2": entry(0.2, "GB-month"),
    "eks:cluster": entry(0.1, "cluster-hour"),
    "eks:cluster-extended-support": entry(0.6, "cluster-hour"),
    "rds:postgres:db.x:single-az": entry(1, "instance-hour"),
    "rds:postgres:db.x:multi-az": entry(2, "instance-hour"),
    "rds:postgres:db.t:single-az": entry(0.1, "instance-hour"),
    "rds:storage:gp3:single-az": entry(0.1, "GB-month"),
    "rds:storage:gp3:multi-az": entry(0.2, "GB-month"),
    "elasticache:valkey:cache.x": entry(0.08, "node-hour"),
    "elasticache:redis:cache.x": entry(0.1, "node-hour"),
    "elasticache:backup-storage": entry(0.1, "GB-month"),
    "vpc:nat-gateway-hour": entry(0.05, "gateway-hour"),
    "vpc:nat-gateway-gb": entry(0.05, "GB"),
    "vpc:public-ipv4-hour": entry(0.005, "address-hour"),
    "elb:alb-hour": entry(0.02, "load-balancer-hour"),
    "elb:alb-lcu-hour": entry(0.01, "LCU-hour"),
    "cloudwatch:logs-ingest": entry(0.5, "GB"),
    "cloudwatch:logs-storage": entry(0.03, "GB-month"),
    "s3:standard": entry(0.02, "GB-month"),
    "s3:glacier-flexible": entry(0.004, "GB-month"),
    "backup:rds-snapshot": entry(0.1, "GB-month"),
    "kms:key": entry(1, "key-month"),
    "ec2:t3.large": entry(0.1, "instance-hour"),
    "ec2:cpu-credit-vcpu-hour": entry(0.05, "vCPU-hour"),
    "rds:postgres:db.t4g.micro:single-az": entry(0.02, "instance-hour"),
    "rds:cpu-credit-vcpu-hour": entry(0.1, "vCPU-hour"),
    "backup:ebs-snapshot": entry(0.05, "GB-month"),
  },
  {
    "spot-discount": { value: 0.6, unit: "share saved", source: "https://example.test/spot", date: "2026-11-24" },
  },
);

/** A node group as the cluster component declares it, with its launch template (root volume). */
export function nodeGroupWithTemplate(
  name: string,
  instanceType: string,
  desired: number,
  diskGb: number,
  min = 0,
  max = 10,
): PlannedResource[] {
  return [
    resource("aws:ec2/launchTemplate:LaunchTemplate", name, {
      blockDeviceMappings: [{ deviceName: "/dev/xvda", ebs: { volumeSize: diskGb, volumeType: "gp3" } }],
    }),
    resource("aws:eks/nodeGroup:NodeGroup", name, {
      instanceTypes: [instanceType],
      capacityType: "ON_DEMAND",
      scalingConfig: { minSize: min, desiredSize: desired, maxSize: max },
      launchTemplate: { id: `${name}-id`, version: "1" },
    }),
  ];
}

/** An Auto Scaling scheduled action on a node group's ASG (mock name `eks-<node group>-asg`). */
export function asgSchedule(
  name: string,
  nodeGroup: string,
  recurrence: string,
  sizes: { min?: number; desired?: number; max?: number },
  timeZone = "UTC",
): PlannedResource {
  return resource("aws:autoscaling/schedule:Schedule", name, {
    autoscalingGroupName: `eks-${nodeGroup}-asg`,
    scheduledActionName: name,
    recurrence,
    timeZone,
    ...(sizes.min === undefined ? {} : { minSize: sizes.min }),
    ...(sizes.desired === undefined ? {} : { desiredCapacity: sizes.desired }),
    ...(sizes.max === undefined ? {} : { maxSize: sizes.max }),
  });
}

/** An EventBridge Scheduler schedule that stops or starts an RDS instance. */
export function rdsSchedule(
  name: string,
  identifier: string,
  action: "stop" | "start",
  expression: string,
  timeZone = "UTC",
): PlannedResource {
  return resource("aws:scheduler/schedule:Schedule", name, {
    scheduleExpression: expression,
    scheduleExpressionTimezone: timeZone,
    flexibleTimeWindow: { mode: "OFF" },
    target: {
      arn: `arn:aws:scheduler:::aws-sdk:rds:${action}DBInstance`,
      roleArn: "arn:aws:iam::123456789012:role/scheduler",
      input: JSON.stringify({ DbInstanceIdentifier: identifier }),
    },
  });
}

export function close(actual: number, expected: number, tolerance = 0.01): boolean {
  return Math.abs(actual - expected) <= tolerance;
}
