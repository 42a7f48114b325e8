// How a tier's node groups lie over the zones: the roles whose pods keep EBS volumes (a volume lives in one zone) get
// a group per zone, and such a role's sizes are dealt out over them. Pure: read by the cluster (platform/cluster.ts)
// and by the preflight's quota arithmetic, which must not load the Pulumi program.
import type { NodeGroupSpec, Tier } from "./tiers.ts";

export type NodeRole = keyof Tier["nodeGroups"];

/**
 * Roles whose pods keep EBS volumes: Qdrant's role (vector, or general without one) and the monitoring stack's
 * (monitoring, or general without one).
 */
export function zonalRoles(groups: Tier["nodeGroups"]): NodeRole[] {
  const roles = new Set<NodeRole>([groups.vector ? "vector" : "general", groups.monitoring ? "monitoring" : "general"]);
  return [...roles];
}

/**
 * A zonal role's groups: one group in the first zone when the role has one node at peak, else one group per
 * zone (up to the role's peak size) with min/desired/max dealt out so the totals stay the tier's.
 */
export function splitOverZones(spec: NodeGroupSpec, zoneCount: number): NodeGroupSpec[] {
  const zones = spec.desired <= 1 ? 1 : Math.min(zoneCount, spec.desired);
  const share = (total: number, i: number) => Math.floor(total / zones) + (i < total % zones ? 1 : 0);
  return Array.from({ length: zones }, (_, i) => ({
    ...spec,
    min: share(spec.min, i),
    desired: share(spec.desired, i),
    max: Math.max(1, share(spec.max, i)),
  }));
}
