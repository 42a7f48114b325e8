// Which availability zones the VPC spans: chosen by zone ID (names are shuffled per account, IDs are not),
// never one EKS refuses, and only zones that offer every instance type the tier's node groups use. Chosen when a
// subnet is created, then kept: the choice moves with the instance types (a tier, an override, the GPU group) and with
// what AWS offers, but a subnet cannot (network.ts).

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
  return qualifyingZones(facts, instanceTypes, count, region).slice(0, count);
}

/** Zone ID -> the instance types it offers, from getInstanceTypeOfferings (location type availability-zone-id). */
function offeredTypes(offerings: ZoneFacts["offerings"]): Map<string, Set<string>> {
  const offered = new Map<string, Set<string>>();
  offerings.locations.forEach((zoneId, i) => {
    offered.set(zoneId, (offered.get(zoneId) ?? new Set()).add(offerings.instanceTypes[i]));
  });
  return offered;
}

/**
 * Every zone EKS accepts that offers every one of `instanceTypes`, in zone-ID order (chooseZones takes the first
 * `count`). Throws, naming the types and zones, when fewer than `count` qualify.
 */
export function qualifyingZones(facts: ZoneFacts, instanceTypes: string[], count: number, region: string): Zone[] {
  const offered = offeredTypes(facts.offerings);
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
  return fit;
}

/**
 * The zone of the next pair of subnets: the first qualifying zone (qualifyingZones, in order) that no subnet before it
 * holds. A subnet never moves (`availabilityZoneId` is ForceNew, and a new subnet with the same CIDR block cannot be
 * created before the old one is gone), so `taken` is where the earlier subnets actually are, which on a stack deployed
 * under another choice (other instance types, another tier) need not be the first zones of today's choice.
 */
export function nextZone(qualifying: string[], taken: string[], region: string): string {
  const zone = qualifying.find((z) => !taken.includes(z));
  if (!zone) {
    throw new Error(
      `${region}: no zone left for another pair of subnets: the qualifying zones ${qualifying.join(", ")} are all taken ` +
        `(${taken.join(", ")}). Lower network.azCount or choose other instance types (overrides.nodeGroups.<group>.instanceTypes).`,
    );
  }
  return zone;
}

/**
 * `zoneIds`, where a stack's subnets are, when each offers every one of `instanceTypes`; else throws, naming the zones
 * and the types they miss. A tier or an override can bring a type one of a stack's zones does not offer: its subnets
 * stay (see nextZone), so the node groups there could never launch it. The program (network.ts) and the preflight ask
 * the same.
 */
export function keptZones(
  zoneIds: string[],
  offerings: ZoneFacts["offerings"],
  instanceTypes: string[],
  region: string,
): string[] {
  const lacking = zonesLacking(zoneIds, offerings, instanceTypes);
  if (lacking.length > 0) {
    throw new Error(
      `${region}: the stack's subnets are in ${zoneIds.join(", ")} and stay there (a subnet cannot change zones), ` +
        `and not every one offers what the node groups now use (missing: ${lacking.join("; ")}). Choose instance ` +
        `types each of these zones offers (overrides.nodeGroups.<group>.instanceTypes).`,
    );
  }
  return zoneIds;
}

/**
 * The kept zones (where the subnets are) that miss one of `instanceTypes`, as "zone: types"; empty when each offers all.
 */
export function zonesLacking(zoneIds: string[], offerings: ZoneFacts["offerings"], instanceTypes: string[]): string[] {
  const offered = offeredTypes(offerings);
  return zoneIds.flatMap((z) => {
    const missing = instanceTypes.filter((t) => !offered.get(z)?.has(t));
    return missing.length > 0 ? [`${z}: ${missing.join(", ")}`] : [];
  });
}
