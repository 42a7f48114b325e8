// Which availability zones the VPC spans: chosen by zone ID (names are shuffled per account, IDs are not),
// never one EKS refuses, and only zones that offer every instance type the tier's node groups use.

/**
 * Zone IDs where EKS does not create clusters ("View Amazon EKS networking requirements for VPC and subnets",
 * docs.aws.amazon.com/eks/latest/userguide/network-reqs.html): CreateCluster answers
 * UnsupportedAvailabilityZoneException for subnets there.
 */
export const EKS_UNSUPPORTED_ZONE_IDS = ["use1-az3", "usw1-az2", "cac1-az3", "cnn1-az4"];

export interface Zone {
  name: string;
  zoneId: string;
}

/** The answers of getAvailabilityZones and getInstanceTypeOfferings (location type availability-zone-id). */
export interface ZoneFacts {
  names: string[];
  zoneIds: string[];
  offerings: { instanceTypes: string[]; locations: string[] };
}

/**
 * The first `count` zones (in zone-ID order, so the choice is stable across accounts) that EKS accepts and that
 * offer every one of `instanceTypes`. Throws, naming the types and zones, when fewer qualify.
 */
export function chooseZones(facts: ZoneFacts, instanceTypes: string[], count: number, region: string): Zone[] {
  const offered = new Map<string, Set<string>>();
  facts.offerings.locations.forEach((zoneId, i) => {
    offered.set(zoneId, (offered.get(zoneId) ?? new Set()).add(facts.offerings.instanceTypes[i]));
  });
  const zones = facts.zoneIds
    .map((zoneId, i) => ({ name: facts.names[i], zoneId }))
    .filter((z) => !EKS_UNSUPPORTED_ZONE_IDS.includes(z.zoneId))
    .sort((a, b) => a.zoneId.localeCompare(b.zoneId, "en", { numeric: true }));
  const fit = zones.filter((z) => instanceTypes.every((t) => offered.get(z.zoneId)?.has(t)));
  if (fit.length < count) {
    const missing = zones
      .map((z) => `${z.zoneId}: ${instanceTypes.filter((t) => !offered.get(z.zoneId)?.has(t)).join(", ") || "all offered"}`)
      .join("; ");
    throw new Error(
      `${region}: the tier needs ${count} availability zones offering ${instanceTypes.join(", ")}, ` +
        `found ${fit.length} (${missing}). Choose other instance types (overrides.nodeGroups.<group>.instanceTypes) or another region.`,
    );
  }
  return fit.slice(0, count);
}
