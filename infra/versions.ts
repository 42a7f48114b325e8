// Every third-party version the stack deploys: Helm charts, container images, EKS add-ons. One place, so a
// bump is one line and `npm run preflight` can check each pin against its repository before `pulumi up`.
// Beside each pin: the upstream source it was checked against (2026-12-01, mirrors of the upstream repos).

export interface ChartPin {
  chart: string;
  version: string;
  /** Helm repository URL; `<repo>/index.yaml` lists every released version. */
  repo: string;
}

const PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts";
const GRAFANA = "https://grafana.github.io/helm-charts";

/** Pinned Helm charts (cluster add-ons and the monitoring stack). */
export const CHARTS = {
  // aws/eks-charts gh-pages index.yaml: 1.14.0, appVersion v2.14.0 (commit 049a6f7 "v2.14.0 (#1254)").
  albController: { chart: "aws-load-balancer-controller", version: "1.14.0", repo: "https://aws.github.io/eks-charts" },
  // kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.12.2, index.yaml appVersion 0.7.2.
  metricsServer: { chart: "metrics-server", version: "3.12.2", repo: "https://kubernetes-sigs.github.io/metrics-server/" },
  // kubernetes/autoscaler tag cluster-autoscaler-chart-9.59.0 (5a0b98e): appVersion 1.35.0, values image.tag
  // v1.35.0, templates/clusterrole.yaml grants storage.k8s.io volumeattachments and resource.k8s.io
  // resourceslices/deviceclasses/resourceclaims, which the 1.35 image waits for. 9.38.0 carried 1.31's RBAC;
  // 9.54.x says appVersion 1.35.0 but still defaults to image v1.34.2.
  clusterAutoscaler: { chart: "cluster-autoscaler", version: "9.59.0", repo: "https://kubernetes.github.io/autoscaler" },
  // NVIDIA/k8s-device-plugin tag v0.17.1, deployments/helm/nvidia-device-plugin/Chart.yaml version 0.17.1.
  nvidiaDevicePlugin: { chart: "nvidia-device-plugin", version: "0.17.1", repo: "https://nvidia.github.io/k8s-device-plugin" },
  // prometheus-community/helm-charts tag kube-prometheus-stack-81.4.3 (d43b299), appVersion v0.88.1. The
  // 81.x history goes 81.4.3 -> 81.5.0; the former pin 81.4.5 was never released.
  kubePrometheusStack: { chart: "kube-prometheus-stack", version: "81.4.3", repo: PROMETHEUS_COMMUNITY },
  // grafana/loki tag helm-loki-6.29.0, production/helm/loki (the chart's source; the grafana/helm-charts release
  // of that name holds no chart files), index.yaml appVersion 3.4.2. Values checked there (2026-12-07).
  loki: { chart: "loki", version: "6.29.0", repo: GRAFANA },
  // grafana/alloy tag helm-chart/0.12.5, operations/helm/charts/alloy (the chart's source), index.yaml appVersion
  // v1.7.4. Values checked there (2026-12-07).
  alloy: { chart: "alloy", version: "0.12.5", repo: GRAFANA },
  // prometheus-community/helm-charts tag prometheus-postgres-exporter-7.3.0 (1b5fec4), appVersion v0.18.1.
  postgresExporter: { chart: "prometheus-postgres-exporter", version: "7.3.0", repo: PROMETHEUS_COMMUNITY },
  // prometheus-community/helm-charts tag prometheus-redis-exporter-6.20.0 (c13ac37), appVersion v1.80.0.
  redisExporter: { chart: "prometheus-redis-exporter", version: "6.20.0", repo: PROMETHEUS_COMMUNITY },
  // NVIDIA/dcgm-exporter gh-pages helm-charts/index.yaml: newest 4.8.2 (tag 4.5.3-4.8.2); 4.8.3 does not exist.
  dcgmExporter: { chart: "dcgm-exporter", version: "4.8.2", repo: "https://nvidia.github.io/dcgm-exporter/helm-charts" },
} as const satisfies Record<string, ChartPin>;

/**
 * Pinned images. Tags, not digests: no registry is reachable from where these pins were reviewed, so a digest
 * could not be checked and none is invented. `npm run preflight` resolves each tag to its digest in the
 * registry (and fails when the tag is gone); pin `name@sha256:...` here once it has printed them.
 * Short names are Docker Hub images (docker.io).
 */
export const IMAGES = {
  // ollama/ollama git tag v0.13.5 (the Docker Hub image is published per release tag, without the "v": release.yaml
  // `type=semver,pattern={{version}}`). Not 0.12.x: nomic-embed-text (nomic-bert) ran on the llama.cpp runner with a
  // 512-token batch and crashed on a longer input (ollama/ollama#13054), a 500 for every embed on that runner at once;
  // from v0.13.3 an embedding model's batch is its whole context (3475d915c, #13429). Its Dockerfile builds the same
  // CUDA 12.8 and 13.0 as 0.12.10, so the NVIDIA AMI's driver serves both. Not v0.30+: another engine.
  ollama: "ollama/ollama:0.13.5",
  // qdrant/qdrant git tag v1.15.5 (Docker Hub tags keep the "v").
  qdrant: "qdrant/qdrant:v1.15.5",
  // aws/aws-cli git tag 2.27.63 (Docker Hub amazon/aws-cli tags are the release numbers).
  awsCli: "amazon/aws-cli:2.27.63",
  // psql for the DB-roles Job: official library/postgres tag 16.10-alpine (docker-library/official-images;
  // public repos pin it by digest, e.g. @sha256:0296606…). The preflight resolves and checks its digest.
  postgresClient: "postgres:16.10-alpine",
} as const;

/**
 * AWS-managed engines, pinned to a major (AWS installs that major's newest minor and patches it in the maintenance
 * window). The parameter-group family must match the major.
 */
export const MANAGED_ENGINES = {
  // RDS for PostgreSQL release notes (postgresql-versions): 16.x minors through 16.11 in 2026, in standard support;
  // RDS User Guide "Working with parameter groups": family postgres16.
  postgres: { engine: "postgres", version: "16", family: "postgres16" },
  // ElastiCache User Guide "Engine specific parameters": Valkey 8.0, 8.1 and 8.2, parameter group family valkey8.
  // Never below the running minor: the provider replaces a group to downgrade it (terraform-provider-aws
  // internal/service/elasticache/engine_version.go), and the replacement fails on the fixed replication group id (README,
  // "The cache's Valkey minor").
  cache: { engine: "valkey", version: "8.0", family: "valkey8" },
} as const;

/** The cluster autoscaler's image; its minor must equal the cluster's (autoscaler README, "Releases"). */
export const CLUSTER_AUTOSCALER = {
  /** Default of CHARTS.clusterAutoscaler's values.yaml at that tag; set explicitly so the pair is visible. */
  image: "registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0",
  kubernetesMinor: "1.35",
} as const;

/** Official kubectl image at the cluster's first patch release, so it stays within the supported skew. */
export function kubectlImage(kubernetesVersion: string): string {
  return `registry.k8s.io/kubectl:v${kubernetesVersion}.0`;
}

/**
 * Managed EKS add-ons. `null` = the default version EKS gives the stack's Kubernetes version, read at every preview
 * (cluster.ts, getAddonVersion), so a kubernetesVersion bump upgrades them after the control plane: the
 * valid `-eksbuild.N` versions for 1.35 could not be checked from here (only `aws eks describe-addon-versions`
 * lists them), so none is invented. `npm run preflight` calls DescribeAddonVersions and fails when an add-on
 * has no version for the cluster's Kubernetes version or a pinned one is not listed.
 */
export const EKS_ADDONS: Record<"vpc-cni" | "kube-proxy" | "coredns" | "aws-ebs-csi-driver", string | null> = {
  "vpc-cni": null,
  "kube-proxy": null,
  coredns: null,
  "aws-ebs-csi-driver": null,
};

export interface ImageRef {
  registry: string;
  repository: string;
  tag: string;
  digest?: string;
}

/** Splits `registry/repo:tag[@sha256:...]` (Docker Hub short names get `docker.io` and `library/`). */
export function parseImageRef(ref: string): ImageRef {
  const [nameTag, digest] = ref.split("@");
  const slash = nameTag.indexOf("/");
  const first = slash < 0 ? "" : nameTag.slice(0, slash);
  const explicitRegistry = first.includes(".") || first.includes(":") || first === "localhost";
  const registry = explicitRegistry ? first : "docker.io";
  let path = explicitRegistry ? nameTag.slice(slash + 1) : nameTag;
  const colon = path.lastIndexOf(":");
  const tag = colon > 0 ? path.slice(colon + 1) : "latest";
  if (colon > 0) path = path.slice(0, colon);
  if (registry === "docker.io" && !path.includes("/")) path = `library/${path}`;
  return { registry, repository: path, tag, ...(digest ? { digest } : {}) };
}
