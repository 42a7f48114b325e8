// EKS control plane (pinned version, KMS envelope encryption of secrets, control-plane logs, OIDC for IRSA)
// and the managed node groups: general (API), vector (Qdrant), gpu (Ollama), monitoring.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { NodeGroupSpec, Tier } from "../tiers.ts";
import { EKS_ADDONS } from "../versions.ts";
import { irsaRole, serviceTrustPolicy, type OidcProvider } from "./iam.ts";

export type NodeRole = keyof Tier["nodeGroups"];

export interface ClusterArgs {
  clusterName: string;
  kubernetesVersion: string;
  vpcId: pulumi.Input<string>;
  publicSubnetIds: pulumi.Input<string>[];
  privateSubnetIds: pulumi.Input<string>[];
  /** Public API endpoint admits only these; empty: public endpoint off (private access is always on). */
  endpointPublicAccessCidrs: string[];
  nodeGroups: Tier["nodeGroups"];
  logRetentionDays: number;
}

/** Label every node group carries (`role: <name>`); workloads select on it. */
export const NODE_ROLE_LABEL = "role";
export const GPU_TAINT = { key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" } as const;

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
  readonly nodeGroups: Partial<Record<NodeRole, aws.eks.NodeGroup>>;
  readonly kmsKeyArn: pulumi.Output<string>;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Cluster", name, {}, opts);
    const o = { parent: this };

    const key = new aws.kms.Key(`${name}-secrets`, {
      description: `${args.clusterName} EKS secrets envelope encryption`,
      enableKeyRotation: true,
      deletionWindowInDays: 7,
    }, o);
    this.kmsKeyArn = key.arn;

    const role = new aws.iam.Role(`${name}-control-plane`, { assumeRolePolicy: serviceTrustPolicy("eks.amazonaws.com") }, o);
    // The provider docs require the cluster to depend on this attachment: otherwise EKS can be created before
    // the role may manage it, and on destroy the policy can go first and the cluster deletion fails.
    const clusterPolicy = new aws.iam.RolePolicyAttachment(`${name}-control-plane`, {
      role: role.name,
      policyArn: "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
    }, o);

    // Created up front so its retention is ours, not "never expire".
    const logs = new aws.cloudwatch.LogGroup(`${name}-logs`, {
      name: `/aws/eks/${args.clusterName}/cluster`,
      retentionInDays: args.logRetentionDays,
    }, o);

    const cluster = new aws.eks.Cluster(`${name}`, {
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
    }, { ...o, dependsOn: [logs, clusterPolicy] });
    this.name = cluster.name;
    this.endpoint = cluster.endpoint;
    this.nodeSecurityGroupId = cluster.vpcConfig.apply((v) => v.clusterSecurityGroupId!);

    const oidcProvider = new aws.iam.OpenIdConnectProvider(`${name}-oidc`, {
      url: cluster.identities.apply((ids) => ids[0].oidcs![0].issuer!),
      clientIdLists: ["sts.amazonaws.com"],
    }, o);
    this.oidc = { arn: oidcProvider.arn, url: oidcProvider.url };

    const nodeRole = new aws.iam.Role(`${name}-node`, { assumeRolePolicy: serviceTrustPolicy("ec2.amazonaws.com") }, o);
    const attachments = NODE_POLICIES.map(
      (policyArn, i) => new aws.iam.RolePolicyAttachment(`${name}-node-${i}`, { role: nodeRole.name, policyArn }, o),
    );

    this.nodeGroups = {};
    for (const [role, spec] of Object.entries(args.nodeGroups) as [NodeRole, NodeGroupSpec | null][]) {
      if (!spec) continue;
      this.nodeGroups[role] = this.nodeGroup(name, role, spec, cluster, nodeRole, args.privateSubnetIds, attachments);
    }

    // Add-ons: EBS CSI (gp3 volumes for Qdrant, Ollama models, Prometheus) needs its own IRSA role.
    const ebsRole = irsaRole(`${name}-ebs-csi`, {
      oidc: this.oidc,
      namespace: "kube-system",
      serviceAccount: "ebs-csi-controller-sa",
      managedPolicyArns: ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"],
    }, o);
    // The VPC CNI (aws-node) calls EC2 through its own role too. The node role keeps the CNI policy: a new
    // cluster's self-managed aws-node uses it until this add-on takes over (hop limit 1: no pod reaches it).
    const cniRole = irsaRole(`${name}-vpc-cni`, {
      oidc: this.oidc,
      namespace: "kube-system",
      serviceAccount: "aws-node",
      managedPolicyArns: ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"],
    }, o);
    const addonRoles: Record<string, pulumi.Output<string>> = { "aws-ebs-csi-driver": ebsRole.arn, "vpc-cni": cniRole.arn };
    const firstGroup = Object.values(this.nodeGroups);
    for (const [addon, version] of Object.entries(EKS_ADDONS)) {
      new aws.eks.Addon(`${name}-${addon}`, {
        clusterName: cluster.name,
        addonName: addon,
        addonVersion: version ?? undefined,
        // A new cluster already runs vpc-cni, kube-proxy and coredns as self-managed objects: take them over.
        resolveConflictsOnCreate: "OVERWRITE",
        resolveConflictsOnUpdate: "OVERWRITE",
        serviceAccountRoleArn: addonRoles[addon],
        // The VPC CNI enforces NetworkPolicies only when asked to.
        configurationValues: addon === "vpc-cni" ? JSON.stringify({ enableNetworkPolicy: "true" }) : undefined,
      }, { ...o, dependsOn: addon === "coredns" || addon === "aws-ebs-csi-driver" ? firstGroup : [] });
    }

    this.kubeconfig = pulumi.secret(
      pulumi.all([cluster.name, cluster.endpoint, cluster.certificateAuthority]).apply(([clusterName, endpoint, ca]) =>
        kubeconfigFor(clusterName, endpoint, ca.data!),
      ),
    );
    this.registerOutputs({ name: this.name, endpoint: this.endpoint, kubeconfig: this.kubeconfig });
  }

  private nodeGroup(
    name: string,
    role: NodeRole,
    spec: NodeGroupSpec,
    cluster: aws.eks.Cluster,
    nodeRole: aws.iam.Role,
    subnetIds: pulumi.Input<string>[],
    dependsOn: pulumi.Resource[],
  ): aws.eks.NodeGroup {
    const o = { parent: this };
    const template = new aws.ec2.LaunchTemplate(`${name}-${role}`, {
      description: `${role} nodes: IMDSv2 only, encrypted gp3 root volume`,
      updateDefaultVersion: true,
      metadataOptions: {
        httpEndpoint: "enabled",
        httpTokens: "required",
        // 1 hop: only host-network processes (kubelet, the VPC CNI's aws-node) reach IMDS; pods get no node
        // credentials and call AWS through their own IRSA roles.
        httpPutResponseHopLimit: 1,
      },
      blockDeviceMappings: [{
        deviceName: "/dev/xvda",
        ebs: { volumeSize: spec.diskGb, volumeType: "gp3", encrypted: "true", deleteOnTermination: "true" },
      }],
      tagSpecifications: [{ resourceType: "instance", tags: cluster.name.apply((n) => ({ Name: `${n}-${role}`, role })) }],
    }, o);
    const gpu = role === "gpu";
    return new aws.eks.NodeGroup(`${name}-${role}`, {
      clusterName: cluster.name,
      nodeGroupName: role,
      nodeRoleArn: nodeRole.arn,
      subnetIds,
      instanceTypes: spec.instanceTypes,
      capacityType: spec.capacityType,
      amiType: gpu ? "AL2023_x86_64_NVIDIA" : "AL2023_x86_64_STANDARD",
      scalingConfig: { minSize: spec.min, desiredSize: spec.desired, maxSize: spec.max },
      launchTemplate: { id: template.id, version: template.latestVersion.apply(String) },
      labels: { [NODE_ROLE_LABEL]: role },
      taints: gpu ? [GPU_TAINT] : undefined,
      updateConfig: { maxUnavailable: 1 },
    }, {
      ...o,
      dependsOn,
      // Schedules and autoscalers own the live size; `pulumi up` must not reset it.
      ignoreChanges: ["scalingConfig.desiredSize"],
    });
  }
}

function kubeconfigFor(clusterName: string, endpoint: string, caData: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: clusterName, cluster: { server: endpoint, "certificate-authority-data": caData } }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: clusterName } }],
    "current-context": clusterName,
    users: [{
      name: clusterName,
      user: {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1beta1",
          command: "aws",
          args: ["eks", "get-token", "--cluster-name", clusterName, "--output", "json"],
        },
      },
    }],
  });
}
