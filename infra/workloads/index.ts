// Everything that runs on the cluster, composed in order: Kubernetes provider -> namespaces and storage
// -> add-ons (ALB controller, metrics-server, GPU device plugin) -> image, database roles (a Job) and secrets
// -> Qdrant, Ollama, the API with its autoscaler and (tier network.publicIngress) ALB ingress -> network policies.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { OidcProvider } from "../platform/iam.ts";
import type { Tier } from "../tiers.ts";
import { ClusterAddons } from "./addons.ts";
import { Api } from "./api.ts";
import { ApiAutoscaler } from "./api-autoscaler.ts";
import { ApiIngress, domainUrl } from "./api-ingress.ts";
import { ClusterBase } from "./base.ts";
import { DatabaseRoles, type DatabaseRolesArgs, databaseUrl, type RoleLogin } from "./db-roles.ts";
import { AppImage } from "./image.ts";
import { OLLAMA, PORT_FORWARD_API_URL, QDRANT, serviceUrl } from "./names.ts";
import { NetworkPolicies } from "./network-policies.ts";
import { Ollama } from "./ollama.ts";
import { Qdrant } from "./qdrant.ts";
import { AppSecrets, type AppSecretsArgs } from "./secrets.ts";

export interface WorkloadsArgs {
  clusterName: pulumi.Input<string>;
  kubernetesVersion: string;
  kubeconfig: pulumi.Input<string>;
  oidc: OidcProvider;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
  /**
   * Nothing is deployed before the nodes and the cluster's add-ons exist: a volume claim made before the EBS CSI
   * driver runs stays Pending, and a Helm release waiting on it may time out (references audit).
   */
  clusterReady: pulumi.Resource[];
  region: string;
  vpcId: pulumi.Input<string>;
  /** The public subnets' CIDRs: the only addresses (the ALB's) admitted to the API's serving port, when there is an ALB. */
  loadBalancerCidrs: pulumi.Input<string>[];
  sizes: Tier;
  /** Config `domain` and `hostedZoneId`: serve HTTPS on it with a certificate validated in that zone. */
  domain?: { name: string; hostedZoneId: string };
  /** Config `docsEnabled`: the API serves /docs and /openapi.json. */
  docsEnabled: boolean;
  /** Config `corsOrigins`: the origins whose pages may call the API (the app's CORS_ORIGINS); [] for none. */
  corsOrigins: string[];
  disposable: boolean;
  /** AWS Backup's selection tag; Qdrant's volumes carry it. */
  backupTag: { key: string; value: string };
  /** The RDS instance and its master login; the workloads log in as the roles DatabaseRoles creates. */
  database: DatabaseRolesArgs["database"];
  cache: AppSecretsArgs["cache"];
  repositoryUrl: pulumi.Input<string>;
  /** The VPC's internet gateway and public subnets: the Ingress's ALB must be gone before they are deleted. */
  internetEdge?: pulumi.Resource[];
  /** The stack's cost tags: the ALB controller puts them on every load balancer it creates. */
  resourceTags: Record<string, string>;
}

export class Workloads extends pulumi.ComponentResource {
  readonly provider: k8s.Provider;
  readonly namespaces: { agent: pulumi.Output<string>; monitoring: pulumi.Output<string>; monitoringHost: pulumi.Output<string> };
  /** The default StorageClass's name, known at registration; a claim naming it waits for the StorageClass. */
  readonly storageClassName: pulumi.Output<string>;
  /** The exporter's login (read-only statistics), for the monitoring stack. */
  readonly databaseMonitor: RoleLogin;
  readonly apiUrl: pulumi.Output<string>;
  readonly imageRef: pulumi.Output<string>;
  readonly imageDigest: pulumi.Output<string>;
  /** The Secret (and key) holding QDRANT_API_KEY. */
  readonly qdrantApiKeySecret: { name: pulumi.Output<string>; key: string };
  /** What the off-peak scaler patches (spec.replicas). */
  readonly ollamaWorkload = { kind: OLLAMA.kind, name: OLLAMA.name } as const;

  constructor(name: string, args: WorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Workloads", name, {}, opts);
    const { sizes } = args;

    this.provider = new k8s.Provider(
      `${name}-k8s`,
      {
        kubeconfig: args.kubeconfig,
        enableServerSideApply: true,
      },
      { parent: this, dependsOn: args.clusterReady },
    );
    const o = { parent: this, providers: { kubernetes: this.provider } };

    const base = new ClusterBase(`${name}-base`, { disposable: args.disposable, backupTag: args.backupTag }, o);
    const namespace = base.agentNamespace;
    const addons = new ClusterAddons(
      `${name}-addons`,
      {
        clusterName: args.clusterName,
        kubernetesVersion: args.kubernetesVersion,
        region: args.region,
        vpcId: args.vpcId,
        oidc: args.oidc,
        permissionsBoundary: args.permissionsBoundary,
        // The device plugin belongs wherever GPU nodes exist (as the DCGM exporter does), whatever runs there.
        gpu: sizes.gpu,
        disposable: args.disposable,
        resourceTags: args.resourceTags,
      },
      o,
    );
    // The ALB controller's webhooks intercept pods and Ingresses in the agent namespace.
    const afterAlbController = { ...o, dependsOn: [addons.albController] };

    const image = new AppImage(`${name}-image`, { repositoryUrl: args.repositoryUrl }, o);
    const dbRoles = new DatabaseRoles(
      `${name}-db-roles`,
      {
        namespace,
        caNamespaces: [base.monitoringNamespace],
        database: args.database,
      },
      o,
    );
    const secrets = new AppSecrets(
      `${name}-secrets`,
      {
        namespace,
        databaseUrl: databaseUrl(dbRoles.app, args.database),
        databaseMigrateUrl: databaseUrl(dbRoles.owner, args.database),
        cache: args.cache,
      },
      o,
    );

    new Qdrant(
      `${name}-qdrant`,
      {
        namespace,
        sizes: sizes.qdrant,
        nodeRole: sizes.nodeGroups.vector ? "vector" : "general",
        storageClassName: base.backedUpStorageClassName,
        apiKey: secrets.qdrantApiKey,
      },
      afterAlbController,
    );
    // The off-peak CronJobs exist where the tier has an off-peak window (stack.ts OffPeakScaler).
    const scaledOffPeak = sizes.schedule.offPeak !== null;
    new Ollama(`${name}-ollama`, { namespace, sizes: sizes.ollama, gpu: sizes.gpu, scaledOffPeak }, afterAlbController);

    const api = new Api(
      `${name}-api`,
      {
        namespace,
        imageRef: image.imageRef,
        sizes: sizes.api,
        ollama: sizes.ollama,
        qdrantReplication: { factor: sizes.qdrant.replicationFactor, writeConsistency: sizes.qdrant.writeConsistency },
        envSecret: secrets.apiSecret,
        docsEnabled: args.docsEnabled,
        corsOrigins: args.corsOrigins,
        publicUrl: args.domain ? domainUrl(args.domain) : undefined,
        qdrantApiKey: secrets.qdrantApiKey,
        qdrantUrl: serviceUrl(QDRANT.name, QDRANT.ports.http),
        ollamaUrl: serviceUrl(OLLAMA.name, OLLAMA.port),
      },
      { ...afterAlbController, dependsOn: [addons.albController, dbRoles.job] },
    );
    new ApiAutoscaler(`${name}-api-autoscaler`, { namespace, sizes: sizes.api, deployment: api.deployment, scaledOffPeak }, o);
    // Without a public entry (dev) there is no Ingress, so no ALB, and nothing from the VPC reaches the serving port.
    const ingress = sizes.network.publicIngress
      ? new ApiIngress(
          `${name}-api-ingress`,
          {
            namespace,
            service: api.service,
            domain: args.domain,
            deleteBefore: [addons.albController, ...(args.internetEdge ?? [])],
            perIpRequestsPerMinute: sizes.network.perIpRequestsPerMinute,
            corsOrigins: args.corsOrigins,
          },
          afterAlbController,
        )
      : undefined;

    new NetworkPolicies(`${name}-network-policies`, { namespace, loadBalancerCidrs: ingress ? args.loadBalancerCidrs : [] }, o);

    this.namespaces = { agent: namespace, monitoring: base.monitoringNamespace, monitoringHost: base.monitoringHostNamespace };
    this.storageClassName = base.storageClassName;
    this.databaseMonitor = dbRoles.monitor;
    this.apiUrl = ingress ? ingress.apiUrl : pulumi.output(PORT_FORWARD_API_URL);
    this.imageRef = image.imageRef;
    this.imageDigest = image.digest;
    this.qdrantApiKeySecret = secrets.qdrantApiKey;
    this.registerOutputs({ apiUrl: this.apiUrl, imageRef: this.imageRef, imageDigest: this.imageDigest });
  }
}
