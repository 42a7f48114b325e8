// What a stack asks of the AWS account, read from its resolved config: instance types and how many vCPUs
// of each EC2 quota family its node groups may reach, the names it will create, the pins it will pull.
import type { StackConfig } from "../config.ts";
import { stackBucketName, stackPrefix } from "../config.ts";
import { zonalRoles } from "../node-zones.ts";
import { CHARTS, CLUSTER_AUTOSCALER, EKS_ADDONS, IMAGES, kubectlImage, type ChartPin } from "../versions.ts";

export interface GroupNeed {
  role: string;
  instanceTypes: string[];
  max: number;
  spot: boolean;
  /**
   * Nodes a node update (a new launch template or Kubernetes version) launches beyond the role's max: EKS raises a
   * group's max and desired by twice the zones it spans before it drains the old nodes (EKS User Guide, "Understand
   * each phase of node updates", scale up phase). A zonal role's per-zone groups update one after the other
   * (platform/cluster.ts), one zone at a time.
   */
  updateSurge: number;
}

export interface StackNeeds {
  stack: string;
  region: string;
  kubernetesVersion: string;
  groups: GroupNeed[];
  instanceTypes: string[];
  azCount: number;
  /** Names that are unique per account and region (cluster, RDS identifiers) or global (buckets). */
  clusterName: string;
  dbIdentifiers: string[];
  bucketNames: (accountId: string) => string[];
  githubOidc: "create" | "existing" | "none";
  domain?: string;
  charts: ChartPin[];
  images: string[];
  addons: Record<string, string | null>;
}

export function needsOf(config: StackConfig): StackNeeds {
  const prefix = stackPrefix(config.stack);
  const { sizes } = config;
  const zonal: string[] = zonalRoles(sizes.nodeGroups);
  const groups = Object.entries(sizes.nodeGroups)
    .filter(([, g]) => g)
    .map(([role, g]) => ({
      role,
      instanceTypes: g!.instanceTypes,
      max: g!.max,
      spot: g!.capacityType === "SPOT",
      updateSurge: 2 * (zonal.includes(role) ? 1 : sizes.network.azCount),
    }));
  const gpu = sizes.nodeGroups.gpu !== null;
  const charts = Object.entries(CHARTS)
    .filter(([key]) => gpu || !["nvidiaDevicePlugin", "dcgmExporter"].includes(key))
    .map(([, pin]) => pin);
  return {
    stack: config.stack,
    region: config.region,
    kubernetesVersion: config.kubernetesVersion,
    groups,
    instanceTypes: [...new Set(groups.flatMap((g) => g.instanceTypes))],
    azCount: sizes.network.azCount,
    clusterName: prefix,
    dbIdentifiers: [prefix, ...Array.from({ length: sizes.database.readReplicas }, (_, i) => `${prefix}-replica-${i}`)],
    bucketNames: (accountId) => [
      stackBucketName(prefix, "backups", accountId),
      ...(sizes.monitoring.lokiMode === "s3" ? [stackBucketName(prefix, "logs", accountId)] : []),
    ],
    githubOidc: !config.ci.githubRepo ? "none" : config.ci.oidcProviderArn ? "existing" : "create",
    domain: config.domain,
    charts,
    images: [...Object.values(IMAGES), CLUSTER_AUTOSCALER.image, kubectlImage(config.kubernetesVersion)],
    addons: EKS_ADDONS,
  };
}
