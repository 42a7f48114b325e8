// EKS control plane (pinned version, KMS envelope encryption of secrets, control-plane logs, OIDC for IRSA)
// and the managed node groups: general (API), vector (Qdrant), gpu (Ollama), monitoring.
// Zones: an EBS volume lives in one zone, and a group spanning several zones may bring its next node up in
// another, stranding the pod. Roles that host EBS-backed StatefulSets (vector, monitoring, and general where
// it hosts them) get one node group per zone, or a single zone where the role has a single node; the cluster
// autoscaler keeps per-zone groups even (balance-similar-node-groups, workloads/addons.ts). The gpu group
// spans every zone: Ollama keeps its models on the instance store, not on EBS.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { instanceShape } from "../capacity.ts";
import { type NodeRole, splitOverZones, zonalRoles } from "../node-zones.ts";
import { ConfigError } from "../config.ts";
import type { NodeGroupSpec, Tier } from "../tiers.ts";
import { EKS_ADDONS } from "../versions.ts";
import { attachManagedPolicies, eksClusterArn, type IrsaRole, irsaRole, serviceTrustPolicy, type OidcProvider } from "./iam.ts";

export interface ClusterArgs {
  clusterName: string;
  /** The cluster's region and account: its role trusts EKS for this cluster only. */
  region: string;
  accountId: pulumi.Input<string>;
  kubernetesVersion: string;
  vpcId: pulumi.Input<string>;
  publicSubnetIds: pulumi.Input<string>[];
  privateSubnetIds: pulumi.Input<string>[];
  /** Public API endpoint admits only these; empty: public endpoint off (private access is always on). */
  endpointPublicAccessCidrs: string[];
  /** CIDRs the cluster security group admits on 443, for the private endpoint (README "Reaching a private endpoint"). */
  endpointPrivateAccessCidrs: string[];
  nodeGroups: Tier["nodeGroups"];
  /** Whether a group's scheduled actions move its minimum size (schedules.ts movesMinimum): then left to them. */
  movesMinimum: (role: NodeRole, spec: NodeGroupSpec) => boolean;
  logRetentionDays: number;
  /** The provider's default tags: launch templates put them on instances, volumes and ENIs (cost allocation). */
  resourceTags: Record<string, string>;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
}

/** One managed node group: a whole role, or the role's share in one zone (`zone`: index of the private subnet). */
export interface NodeGroupInstance {
  role: NodeRole;
  /** "general", or "vector-0" for the vector role's group in the first zone. */
  key: string;
  zone?: number;
  spec: NodeGroupSpec;
  group: aws.eks.NodeGroup;
}

/** Label every node group carries (`role: <name>`); workloads select on it. */
export const NODE_ROLE_LABEL = "role";
export const GPU_LABEL = "k8s.amazonaws.com/accelerator";
/**
 * For a pod whose emptyDirs hold nothing worth keeping (scratch space, a socket, a cache): the cluster autoscaler never
 * removes a node with a pod that mounts an emptyDir (skip-nodes-with-local-storage, default true: kubernetes/autoscaler
 * cluster-autoscaler/config/flags/flags.go) unless the pod says it may be evicted, so a general node holding an API pod
 * stayed through off-peak until the settle action let the Auto Scaling group pick one to terminate.
 */
export const EVICTABLE = { "cluster-autoscaler.kubernetes.io/safe-to-evict": "true" } as const;
export const GPU_TAINT = { key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" } as const;
/** Qdrant's nodes take only pods that tolerate this (Qdrant and DaemonSets). */
export const VECTOR_TAINT = { key: "dedicated", value: "vector", effect: "NO_SCHEDULE" } as const;
const TAINTS: Partial<Record<NodeRole, { key: string; value: string; effect: "NO_SCHEDULE" }>> = {
  gpu: GPU_TAINT,
  vector: VECTOR_TAINT,
};

/**
 * nodeadm NodeConfig (amazon-eks-ami nodeadm/doc/api.md, LocalStorageOptions): RAID0 over the instance-store
 * NVMe disks, mounted under /mnt/k8s-disks with the kubelet's and containerd's directories on it, so emptyDir
 * volumes (Ollama's models) sit on the g5's local NVMe. EKS merges this MIME part with its own.
 */
const LOCAL_STORAGE_USER_DATA = Buffer.from(`MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: application/node.eks.aws

apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    localStorage:
      strategy: RAID0

--//--
`).toString("base64");

const NODE_POLICIES = [
  "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
  "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
  "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
  "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
];

export class Cluster extends pulumi.ComponentResource {
  readonly name: pulumi.Output<string>;
  readonly endpoint: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly oidc: OidcProvider;
  /** Security group EKS puts on every managed node; databases admit traffic from it. */
  readonly nodeSecurityGroupId: pulumi.Output<string>;
  readonly nodeGroups: NodeGroupInstance[];
  /** The managed add-ons (EKS_ADDONS): the CNI, CoreDNS, kube-proxy and the EBS CSI driver. */
  readonly addons: aws.eks.Addon[];
  readonly kmsKeyArn: pulumi.Output<string>;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Cluster", name, {}, opts);
    const o = { parent: this };

    const key = new aws.kms.Key(
      `${name}-secrets`,
      {
        description: `${args.clusterName} EKS secrets envelope encryption`,
        enableKeyRotation: true,
        deletionWindowInDays: 7,
      },
      o,
    );
    this.kmsKeyArn = key.arn;

    // The EKS guide's "Cross-service confused deputy prevention in Amazon EKS" (cluster role): source account and the
    // cluster's ARN, known before the cluster from its name.
    const role = new aws.iam.Role(
      `${name}-control-plane`,
      {
        assumeRolePolicy: serviceTrustPolicy("eks.amazonaws.com", {
          account: args.accountId,
          arn: eksClusterArn(args.region, args.accountId, args.clusterName),
        }),
        permissionsBoundary: args.permissionsBoundary,
      },
      o,
    );
    // The provider docs require the cluster to depend on this attachment: otherwise EKS can be created before
    // the role may manage it, and on destroy the policy can go first and the cluster deletion fails.
    const clusterPolicy = new aws.iam.RolePolicyAttachment(
      `${name}-control-plane`,
      {
        role: role.name,
        policyArn: "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
      },
      o,
    );

    // Created up front so its retention is ours, not "never expire".
    const logs = new aws.cloudwatch.LogGroup(
      `${name}-logs`,
      {
        name: `/aws/eks/${args.clusterName}/cluster`,
        retentionInDays: args.logRetentionDays,
      },
      o,
    );

    const cluster = new aws.eks.Cluster(
      `${name}`,
      {
        name: args.clusterName,
        version: args.kubernetesVersion,
        roleArn: role.arn,
        vpcConfig: {
          subnetIds: [...args.privateSubnetIds, ...args.publicSubnetIds],
          endpointPrivateAccess: true,
          endpointPublicAccess: args.endpointPublicAccessCidrs.length > 0,
          publicAccessCidrs: args.endpointPublicAccessCidrs.length > 0 ? args.endpointPublicAccessCidrs : undefined,
        },
        encryptionConfig: { provider: { keyArn: key.arn }, resources: ["secrets"] },
        enabledClusterLogTypes: ["api", "audit", "authenticator", "controllerManager", "scheduler"],
        accessConfig: { authenticationMode: "API_AND_CONFIG_MAP", bootstrapClusterCreatorAdminPermissions: true },
      },
      {
        ...o,
        dependsOn: [logs, clusterPolicy],
        // The control plane keeps the subnets it was created with. EKS takes new cluster subnets only in the zones the
        // cluster was created in (EKS User Guide, "View Amazon EKS networking requirements for VPC and subnets": the
        // subnets you add must be in the set of AZs given at creation; aws/containers-roadmap#2330 asks for more), so
        // the subnets of a zone added later (dev's two zones -> small's three, overrides.network.azCount) would fail the
        // update (UpdateClusterConfig). Node groups, load balancers and pods use the new zone's subnets without them
        // being the cluster's.
        ignoreChanges: ["vpcConfig.subnetIds"],
      },
    );
    this.name = cluster.name;
    this.endpoint = cluster.endpoint;
    this.nodeSecurityGroupId = cluster.vpcConfig.apply((v) => v.clusterSecurityGroupId!);
    // The private endpoint's network interfaces carry the security group EKS creates, which admits its own members
    // alone (EKS User Guide, "Cluster API server endpoint": the control plane security group must allow 443 from the
    // network that calls a private endpoint), so the rule goes on that group. Nodes carry it too; nothing on them serves
    // 443. The policy pack's no-world-ingress reads these rules as it reads inline ones.
    // Named by its CIDR: by its place in the list, removing one entry rewrote the rules after it.
    for (const cidr of args.endpointPrivateAccessCidrs) {
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-endpoint-access-${cidr.replace(/[./]/g, "-")}`,
        {
          securityGroupId: this.nodeSecurityGroupId,
          description: "Kubernetes API (private endpoint)",
          ipProtocol: "tcp",
          fromPort: 443,
          toPort: 443,
          cidrIpv4: cidr,
        },
        o,
      );
    }

    const oidcProvider = new aws.iam.OpenIdConnectProvider(
      `${name}-oidc`,
      {
        url: cluster.identities.apply((ids) => ids[0].oidcs![0].issuer!),
        clientIdLists: ["sts.amazonaws.com"],
      },
      o,
    );
    this.oidc = { arn: oidcProvider.arn, url: oidcProvider.url };

    // No source condition: the EKS guide's node role ("Amazon EKS node IAM role") trusts EC2 without one, and no guide
    // documents EC2 sending aws:SourceAccount or aws:SourceArn when an instance profile's role is assumed.
    const nodeRole = new aws.iam.Role(
      `${name}-node`,
      { assumeRolePolicy: serviceTrustPolicy("ec2.amazonaws.com"), permissionsBoundary: args.permissionsBoundary },
      o,
    );
    const attachments = attachManagedPolicies(`${name}-node`, nodeRole, NODE_POLICIES, o);

    this.nodeGroups = [];
    const zonal = zonalRoles(args.nodeGroups);
    for (const [role, spec] of Object.entries(args.nodeGroups) as [NodeRole, NodeGroupSpec | null][]) {
      if (!spec) continue;
      // One launch template per role: per-zone groups then carry the same node labels (the autoscaler's
      // similarity check compares them), and one edit rolls every zone.
      const template = this.launchTemplate(name, role, spec, cluster, args.resourceTags);
      const common = {
        cluster,
        nodeRole,
        template,
        dependsOn: attachments,
        movesMinimum: args.movesMinimum,
      };
      if (!zonal.includes(role)) {
        this.nodeGroups.push({
          role,
          key: role,
          spec,
          group: this.nodeGroup(`${name}-${role}`, role, role, spec, args.privateSubnetIds, common),
        });
        continue;
      }
      const shares = splitOverZones(spec, args.privateSubnetIds.length);
      // One zone's group after the other: a template or version change updates them all, and EKS drains each through the
      // eviction API, failing the update with PodEvictionFailure when a pod has not left within 15 minutes (EKS User
      // Guide, "Understand each phase of node updates", upgrade phase). Qdrant's budget lets one peer go at a time and a
      // large peer loads for minutes (qdrant.ts startupProbe): updated at once, the last zone waited for two reloads.
      let previous: aws.eks.NodeGroup | undefined;
      shares.forEach((zoneSpec, zone) => {
        const key = shares.length === 1 ? role : `${role}-${zone}`;
        const after = { ...common, dependsOn: previous ? [...common.dependsOn, previous] : common.dependsOn };
        const group = this.nodeGroup(`${name}-${key}`, role, key, zoneSpec, [args.privateSubnetIds[zone]], after);
        this.nodeGroups.push({ role, key, zone, spec: zoneSpec, group });
        previous = group;
      });
    }

    // Add-ons: EBS CSI (gp3 volumes for Qdrant, Ollama models, Prometheus) needs its own IRSA role.
    const ebs = irsaRole(
      `${name}-ebs-csi`,
      {
        oidc: this.oidc,
        namespace: "kube-system",
        serviceAccount: "ebs-csi-controller-sa",
        managedPolicyArns: ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"],
        permissionsBoundary: args.permissionsBoundary,
      },
      o,
    );
    // The VPC CNI (aws-node) calls EC2 through its own role too. The node role keeps the CNI policy: a new
    // cluster's self-managed aws-node uses it until this add-on takes over (hop limit 1: no pod reaches it).
    const cni = irsaRole(
      `${name}-vpc-cni`,
      {
        oidc: this.oidc,
        namespace: "kube-system",
        serviceAccount: "aws-node",
        managedPolicyArns: ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"],
        permissionsBoundary: args.permissionsBoundary,
      },
      o,
    );
    const addonRoles: Record<string, IrsaRole> = { "aws-ebs-csi-driver": ebs, "vpc-cni": cni };
    const firstGroup = this.nodeGroups.map((g) => g.group);
    this.addons = Object.entries(EKS_ADDONS).map(
      ([addon, version]) =>
        new aws.eks.Addon(
          `${name}-${addon}`,
          {
            clusterName: cluster.name,
            addonName: addon,
            // Unpinned: the version EKS gives this Kubernetes version by default, read at every preview. Left out,
            // an add-on kept the version it was created with: a kubernetesVersion bump upgraded the control plane
            // and left kube-proxy, CoreDNS, the CNI and the CSI driver behind (the provider only compares an
            // addon_version given). terraform-aws-eks reads the same data source (aws_eks_addon_version). Checked at
            // terraform-provider-aws addon_version_data_source.go: addon_name and kubernetes_version ("1.35", no
            // pattern), most_recent unset picks the version whose compatibility is marked default.
            addonVersion:
              version ??
              aws.eks.getAddonVersionOutput({ addonName: addon, kubernetesVersion: args.kubernetesVersion }, o).version,
            // A new cluster already runs vpc-cni, kube-proxy and coredns as self-managed objects: take them over.
            resolveConflictsOnCreate: "OVERWRITE",
            resolveConflictsOnUpdate: "OVERWRITE",
            serviceAccountRoleArn: addonRoles[addon]?.role.arn,
            // The VPC CNI enforces NetworkPolicies only when asked to.
            configurationValues:
              addon === "vpc-cni"
                ? JSON.stringify({ enableNetworkPolicy: "true" })
                : // The driver's own chart values (kubernetes-sigs/aws-ebs-csi-driver charts/.../values.yaml,
                  // controller.extraVolumeTags -> --extra-tags): every volume it creates carries the stack's tags.
                  addon === "aws-ebs-csi-driver"
                  ? // controller.podAnnotations: the add-on's configuration schema (DescribeAddonConfiguration, as quoted in
                    // aws/containers-roadmap#2582); the controller's socket-dir emptyDir held its node like any other.
                    JSON.stringify({ controller: { extraVolumeTags: args.resourceTags, podAnnotations: EVICTABLE } })
                  : undefined,
          },
          {
            ...o,
            dependsOn: [
              ...(addon === "coredns" || addon === "aws-ebs-csi-driver" ? firstGroup : []),
              ...(addonRoles[addon]?.policies ?? []),
            ],
          },
        ),
    );

    this.kubeconfig = pulumi.secret(
      pulumi
        .all([cluster.name, cluster.endpoint, cluster.certificateAuthority])
        .apply(([clusterName, endpoint, ca]) => kubeconfigFor(clusterName, endpoint, ca.data!)),
    );
    this.registerOutputs({ name: this.name, endpoint: this.endpoint, kubeconfig: this.kubeconfig });
  }

  private launchTemplate(
    name: string,
    role: NodeRole,
    spec: NodeGroupSpec,
    cluster: aws.eks.Cluster,
    resourceTags: Record<string, string>,
  ): aws.ec2.LaunchTemplate {
    const gpu = role === "gpu";
    // Provider default tags stop at the template; these reach what the node group launches.
    const tags = cluster.name.apply((n) => ({ ...resourceTags, Name: `${n}-${role}`, role }));
    return new aws.ec2.LaunchTemplate(
      `${name}-${role}`,
      {
        description: `${role} nodes: IMDSv2 only, encrypted gp3 root volume${gpu ? ", instance-store NVMe for pod volumes" : ""}`,
        updateDefaultVersion: true,
        metadataOptions: {
          httpEndpoint: "enabled",
          httpTokens: "required",
          // 1 hop: only host-network processes (kubelet, the VPC CNI's aws-node) reach IMDS; pods get no node
          // credentials and call AWS through their own IRSA roles.
          httpPutResponseHopLimit: 1,
        },
        blockDeviceMappings: [
          {
            deviceName: "/dev/xvda",
            ebs: { volumeSize: spec.diskGb, volumeType: "gp3", encrypted: "true", deleteOnTermination: "true" },
          },
        ],
        tagSpecifications: (["instance", "volume", "network-interface"] as const).map((resourceType) => ({ resourceType, tags })),
        userData: gpu ? LOCAL_STORAGE_USER_DATA : undefined,
        // T instances launch in unlimited mode, which bills surplus CPU credits beyond the hourly price; standard
        // throttles to the baseline instead (EC2 API CreditSpecification: standard | unlimited; T types only).
        creditSpecification: spec.instanceTypes.every((t) => /^t\d/.test(t)) ? { cpuCredits: "standard" } : undefined,
      },
      { parent: this },
    );
  }

  private nodeGroup(
    resourceName: string,
    role: NodeRole,
    key: string,
    spec: NodeGroupSpec,
    subnetIds: pulumi.Input<string>[],
    c: {
      cluster: aws.eks.Cluster;
      nodeRole: aws.iam.Role;
      template: aws.ec2.LaunchTemplate;
      dependsOn: pulumi.Resource[];
      movesMinimum: ClusterArgs["movesMinimum"];
    },
  ): aws.eks.NodeGroup {
    const taint = TAINTS[role];
    return new aws.eks.NodeGroup(
      resourceName,
      {
        clusterName: c.cluster.name,
        // A prefix, not a name: instance types, capacity type, AMI type and subnets cannot change in place (ForceNew in
        // terraform-provider-aws internal/service/eks/node_group.go), and Pulumi creates the new group before it deletes
        // the old one, which a fixed name refuses (EKS: the node group already exists). terraform-aws-eks names its
        // managed groups the same way (modules/eks-managed-node-group: node_group_name_prefix = "${var.name}-"). The
        // provider adds a 26-character suffix; a name may have 63.
        nodeGroupNamePrefix: `${key}-`,
        nodeRoleArn: c.nodeRole.arn,
        subnetIds,
        // The cluster's, after it: left out, a group kept the version it was created with and a kubernetesVersion bump
        // upgraded the control plane alone (terraform-provider-aws node_group.go: `version` is compared only when
        // given; a change is an in-place UpdateNodegroupVersion, rolling one node at a time, updateConfig).
        version: c.cluster.version,
        instanceTypes: spec.instanceTypes,
        capacityType: spec.capacityType,
        amiType: role === "gpu" ? "AL2023_x86_64_NVIDIA" : amiTypeFor(role, resourceName, spec.instanceTypes),
        scalingConfig: { minSize: spec.min, desiredSize: spec.desired, maxSize: spec.max },
        launchTemplate: { id: c.template.id, version: c.template.latestVersion.apply(String) },
        labels: { [NODE_ROLE_LABEL]: role, ...acceleratorLabel(spec.instanceTypes) },
        taints: taint ? [taint] : undefined,
        updateConfig: { maxUnavailable: 1 },
      },
      {
        parent: this,
        dependsOn: c.dependsOn,
        // Schedules and autoscalers own the live size, and schedules the minimum they move; `pulumi up` must not reset them.
        ignoreChanges: ["scalingConfig.desiredSize", ...(c.movesMinimum(role, spec) ? ["scalingConfig.minSize"] : [])],
      },
    );
  }
}

/**
 * The cluster autoscaler's GPU label (kubernetes/autoscaler cluster-autoscaler-1.35.0 cloudprovider/aws
 * aws_cloud_provider.go GPULabel; README "Special note on GPU instances"). A new GPU node is Ready before its device
 * plugin advertises nvidia.com/gpu; only a node with this label counts as a GPU node still starting
 * (processors/customresources/gpu_processor.go), so without it the pending Ollama pod could have the autoscaler add a
 * node it did not need. The value names the group's GPU (its metrics and --gpu-total read it), from its first instance
 * type, as infra/capacity.ts sizes the models for it.
 */
export function acceleratorLabel(instanceTypes: string[]): Record<string, string> {
  const shape = instanceShape(instanceTypes[0]!);
  if (typeof shape === "string" || !shape.gpu) return {};
  return { [GPU_LABEL]: shape.gpu.accelerator };
}

/** Graviton families carry a "g" after the generation digit: c7g, r7g, m6gd, t4g (not the GPU family g5). */
export function isGraviton(instanceType: string): boolean {
  return /^[a-z]+\d+g[a-z]*\./.test(instanceType);
}

/** The EKS AMI for a CPU group: ARM for Graviton types, x86 otherwise; one group cannot mix the two. */
function amiTypeFor(role: NodeRole, name: string, instanceTypes: string[]): "AL2023_ARM_64_STANDARD" | "AL2023_x86_64_STANDARD" {
  const arm = instanceTypes.filter(isGraviton);
  if (arm.length > 0 && arm.length < instanceTypes.length) {
    throw new ConfigError(
      `agent-stack:overrides.nodeGroups.${role}.instanceTypes: ${name}: instance types ${instanceTypes.join(", ")} mix arm64 (${arm.join(", ")}) and x86_64; a node group has one AMI type`,
    );
  }
  return arm.length > 0 ? "AL2023_ARM_64_STANDARD" : "AL2023_x86_64_STANDARD";
}

function kubeconfigFor(clusterName: string, endpoint: string, caData: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: clusterName, cluster: { server: endpoint, "certificate-authority-data": caData } }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: clusterName } }],
    "current-context": clusterName,
    users: [
      {
        name: clusterName,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: "aws",
            args: ["eks", "get-token", "--cluster-name", clusterName, "--output", "json"],
          },
        },
      },
    ],
  });
}
