// Everything that runs on the cluster, composed in order: Kubernetes provider -> namespaces and storage
// -> add-ons (ALB controller, metrics-server, GPU device plugin) -> image and secrets -> Qdrant, Ollama,
// the API with its autoscaler and ALB ingress -> network policies.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { OidcProvider } from "../platform/iam.ts";
import type { Tier } from "../tiers.ts";
import { ClusterAddons } from "./addons.ts";
import { Api } from "./api.ts";
import { ApiAutoscaler } from "./api-autoscaler.ts";
import { ApiIngress } from "./api-ingress.ts";
import { ClusterBase } from "./base.ts";
import { AppImage } from "./image.ts";
import { OLLAMA, QDRANT, serviceUrl } from "./names.ts";
import { NetworkPolicies } from "./network-policies.ts";
import { Ollama } from "./ollama.ts";
import { Qdrant } from "./qdrant.ts";
import { AppSecrets, type AppSecretsArgs } from "./secrets.ts";

export interface WorkloadsArgs {
  clusterName: pulumi.Input<string>;
  kubernetesVersion: string;
  kubeconfig: pulumi.Input<string>;
  oidc: OidcProvider;
  /** Nothing is deployed before the nodes exist. */
  nodeGroups: pulumi.Resource[];
  region: string;
  vpcId: pulumi.Input<string>;
  vpcCidr: string;
  sizes: Tier;
  /** Config `domain`: serve HTTPS on it. */
  domain?: string;
  disposable: boolean;
  /** AWS Backup's selection tag; Qdrant's volumes carry it. */
  backupTag: { key: string; value: string };
  database: AppSecretsArgs["database"];
  cache: AppSecretsArgs["cache"];
  repositoryUrl: pulumi.Input<string>;
  /** The stack's cost tags: the ALB controller puts them on every load balancer it creates. */
  resourceTags: Record<string, string>;
}

export class Workloads extends pulumi.ComponentResource {
  readonly provider: k8s.Provider;
  readonly namespaces: { agent: pulumi.Output<string>; monitoring: pulumi.Output<string> };
  readonly apiUrl: pulumi.Output<string>;
  readonly imageRef: pulumi.Output<string>;
  readonly imageDigest: pulumi.Output<string>;
  /** The Secret (and key) holding QDRANT_API_KEY. */
  readonly qdrantApiKeySecret: { name: pulumi.Output<string>; key: string };
  /** What the off-peak scaler patches (spec.replicas). */
  readonly ollamaWorkload = { kind: OLLAMA.kind, name: OLLAMA.name } as const;
  readonly certificateValidationRecords: pulumi.Output<{ name: string; type: string; value: string }[]>;

  constructor(name: string, args: WorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:Workloads", name, {}, opts);
    const { sizes } = args;

    this.provider = new k8s.Provider(`${name}-k8s`, {
      kubeconfig: args.kubeconfig,
      enableServerSideApply: true,
    }, { parent: this, dependsOn: args.nodeGroups });
    const o = { parent: this, providers: { kubernetes: this.provider } };

    const base = new ClusterBase(`${name}-base`, { disposable: args.disposable, backupTag: args.backupTag }, o);
    const namespace = base.agentNamespace;
    const addons = new ClusterAddons(`${name}-addons`, {
      clusterName: args.clusterName,
      kubernetesVersion: args.kubernetesVersion,
      region: args.region,
      vpcId: args.vpcId,
      oidc: args.oidc,
      // The device plugin belongs wherever GPU nodes exist (as the DCGM exporter does), whatever runs there.
      gpu: sizes.nodeGroups.gpu !== null,
      disposable: args.disposable,
      resourceTags: args.resourceTags,
    }, o);
    // The ALB controller's webhooks intercept pods and Ingresses in the agent namespace.
    const afterAlbController = { ...o, dependsOn: [addons.albController] };

    const image = new AppImage(`${name}-image`, { repositoryUrl: args.repositoryUrl }, o);
    const secrets = new AppSecrets(`${name}-secrets`, { namespace, database: args.database, cache: args.cache }, o);

    new Qdrant(`${name}-qdrant`, {
      namespace,
      sizes: sizes.qdrant,
      nodeRole: sizes.nodeGroups.vector ? "vector" : "general",
      storageClassName: base.backedUpStorageClassName,
      apiKey: secrets.qdrantApiKey,
    }, afterAlbController);
    new Ollama(`${name}-ollama`, { namespace, sizes: sizes.ollama }, afterAlbController);

    const api = new Api(`${name}-api`, {
      namespace,
      imageRef: image.imageRef,
      sizes: sizes.api,
      models: sizes.ollama.models,
      qdrantReplication: { factor: sizes.qdrant.replicationFactor, writeConsistency: sizes.qdrant.writeConsistency },
      envSecretName: secrets.apiSecretName,
      qdrantApiKey: secrets.qdrantApiKey,
      qdrantUrl: serviceUrl(QDRANT.name, QDRANT.ports.http),
      ollamaUrl: serviceUrl(OLLAMA.name, OLLAMA.port),
    }, afterAlbController);
    new ApiAutoscaler(`${name}-api-autoscaler`, { namespace, sizes: sizes.api, deployment: api.deployment }, o);
    const ingress = new ApiIngress(`${name}-api-ingress`, { namespace, service: api.service, domain: args.domain }, afterAlbController);

    new NetworkPolicies(`${name}-network-policies`, { namespace, vpcCidr: args.vpcCidr }, o);

    this.namespaces = { agent: namespace, monitoring: base.monitoringNamespace };
    this.apiUrl = ingress.apiUrl;
    this.imageRef = image.imageRef;
    this.imageDigest = image.digest;
    this.qdrantApiKeySecret = secrets.qdrantApiKey;
    this.certificateValidationRecords = ingress.certificateValidationRecords;
    this.registerOutputs({ apiUrl: this.apiUrl, imageRef: this.imageRef, imageDigest: this.imageDigest });
  }
}
