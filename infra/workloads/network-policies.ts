// Ingress rules of the agent namespace: nothing gets in unless listed here. The ALB (its nodes sit in the
// public subnets; with target-type ip it connects to the pods from there) reaches the API's serving port (a stack
// without an ALB admits nothing there: `kubectl port-forward` needs no rule, as the container runtime dials the
// port on the pod's own loopback, containerd internal/cri/server/sandbox_portforward_linux.go, and loopback never
// crosses the pod's veth where the VPC CNI's eBPF policy programs sit), and
// only Prometheus reaches its metrics port; only the API reaches Ollama and Qdrant's REST port (plus pods labelled as
// Qdrant clients, e.g. the snapshot job; nothing speaks Qdrant's gRPC); Qdrant peers reach each other; only Prometheus
// scrapes metrics ports. Kubelet probes come from the node and are always allowed (aws-network-policy-agent allows
// the node's own address). Egress stays open: the policies select no egress. In the monitoring namespace, the pods that
// serve an API (Prometheus, Alertmanager, Grafana, Loki and its gateway) have a policy each (monitoringIngress); the
// exporters and Alloy, which serve only their metrics, have none.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { API, NAME_LABEL, NAMESPACES, OLLAMA, QDRANT, QDRANT_CLIENT_LABEL } from "./names.ts";
import { labelsFor, selectorFor } from "./pod.ts";

type Rule = k8s.types.input.networking.v1.NetworkPolicyIngressRule;

/** A policy admitting to the selected pods only what `ingress` lists (none of them: nothing). */
function ingressPolicy(
  resourceName: string,
  policy: { name: string; namespace: pulumi.Input<string>; podSelector: object; ingress: Rule[] },
  opts: pulumi.CustomResourceOptions,
) {
  const { name, namespace, podSelector, ingress } = policy;
  return new k8s.networking.v1.NetworkPolicy(
    resourceName,
    { metadata: { name, namespace, labels: labelsFor(name) }, spec: { podSelector, policyTypes: ["Ingress"], ingress } },
    opts,
  );
}

const tcp = (...ports: number[]) => ports.map((port) => ({ protocol: "TCP", port }));
const pods = (labels: Record<string, string>) => ({ podSelector: { matchLabels: labels } });
/**
 * The monitoring stack's pods by the label their operator or chart gives them: prometheus-operator v0.88.1
 * (kube-prometheus-stack 81.4.3's appVersion) pkg/prometheus/server/operator.go and pkg/alertmanager/operator.go
 * makeSelectorLabels; grafana chart 10.5.15 templates/_helpers.tpl grafana.selectorLabels; loki chart 6.29.0
 * templates/_helpers.tpl loki.selectorLabels (loki.name: the chart's name, nameOverride unset) with the component of
 * single-binary/_helpers-single-binary.tpl and gateway/_helpers-gateway.tpl; alloy chart 0.12.5 templates/_helpers.tpl
 * alloy.selectorLabels, on the pod by controllers/_pod.yaml.
 */
export const MONITORING_PODS = {
  prometheus: { "app.kubernetes.io/name": "prometheus" },
  alertmanager: { "app.kubernetes.io/name": "alertmanager" },
  grafana: { "app.kubernetes.io/name": "grafana" },
  loki: { "app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "single-binary" },
  lokiGateway: { "app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "gateway" },
  alloy: { "app.kubernetes.io/name": "alloy" },
};

export interface NetworkPoliciesArgs {
  namespace: pulumi.Input<string>;
  /**
   * Where the ALB's addresses come from: the public subnets' CIDRs (never the whole VPC, i.e. every pod).
   * [] when there is no ALB: then no rule admits anything to the serving port.
   */
  loadBalancerCidrs: pulumi.Input<string>[];
}

export class NetworkPolicies extends pulumi.ComponentResource {
  constructor(name: string, args: NetworkPoliciesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:NetworkPolicies", name, {}, opts);
    const policy = (policyName: string, podSelector: object, ingress: Rule[]) =>
      ingressPolicy(policyName, { name: policyName, namespace: args.namespace, podSelector, ingress }, { parent: this });
    const fromApi = pods({ [NAME_LABEL]: API.name });
    // Prometheus alone, not every pod of its namespace (Grafana, Loki, Alloy, the exporters).
    const fromPrometheus = {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": NAMESPACES.monitoring } },
      ...pods(MONITORING_PODS.prometheus),
    };

    policy("default-deny-ingress", {}, []);
    // Never a rule with an empty `from`: Kubernetes reads that as "from everywhere".
    const fromLoadBalancer: Rule[] =
      args.loadBalancerCidrs.length > 0
        ? [{ from: args.loadBalancerCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: tcp(API.port) }]
        : [];
    policy(`${API.name}-ingress`, selectorFor(API.name), [
      ...fromLoadBalancer,
      { from: [fromPrometheus], ports: tcp(API.metricsPort) },
    ]);
    policy(`${OLLAMA.name}-ingress`, selectorFor(OLLAMA.name), [{ from: [fromApi], ports: tcp(OLLAMA.port) }]);
    policy(`${QDRANT.name}-ingress`, selectorFor(QDRANT.name), [
      { from: [fromApi, pods(QDRANT_CLIENT_LABEL)], ports: tcp(QDRANT.ports.http) },
      // Peers: consensus and streamed shard transfers on p2p; a snapshot shard transfer has the receiving peer download
      // the snapshot from the sender's REST port (qdrant v1.15.5 lib/collection/src/shards/transfer/snapshot.rs).
      { from: [pods({ [NAME_LABEL]: QDRANT.name })], ports: tcp(QDRANT.ports.p2p, QDRANT.ports.http) },
      { from: [fromPrometheus], ports: tcp(QDRANT.ports.http) },
    ]);
    this.registerOutputs({});
  }
}

/**
 * Ingress of the monitoring namespace's pods that serve an API, none of which takes credentials (Grafana's login aside):
 * without these any pod of the cluster (Ollama pulling third-party models, say) could read every metric and log line,
 * push forged logs or delete them through Loki's API, or silence every alert. Each admits its clients in this namespace
 * only (a `from` without a namespaceSelector), on the ports they use. Kubelet probes are always allowed, and
 * `kubectl port-forward` (Grafana's way in, README "Dashboards") dials the pod's loopback, which no policy sees.
 * - Prometheus, web 9090 and the config reloader's 8080 (prometheus-operator v0.88.1 pkg/prometheus/common.go
 *   MakeContainerPorts, pkg/operator/config_reloader.go configReloaderPort; the reloader reloads it on localhost):
 *   Prometheus scrapes both on every replica (kube-prometheus-stack 81.4.3 templates/prometheus/servicemonitor.yaml:
 *   http-web and reloader-web); Grafana queries 9090 (templates/grafana/configmaps-datasources.yaml, the Service's
 *   port and targetPort 9090). Nothing else queries it: no adapter or KEDA (the HPA reads metrics-server's resource
 *   metrics), no Thanos, no job.
 * - Alertmanager, web 9093, reloader 8080, mesh 9094 TCP and UDP (prometheus-operator v0.88.1
 *   pkg/alertmanager/statefulset.go): Prometheus sends alerts to the web port and scrapes it and the reloader's
 *   (templates/alertmanager/servicemonitor.yaml); Grafana reads it as a data source (the chart's
 *   sidecar.datasources.alertmanager, on by default); replicas gossip on the mesh port.
 * - Grafana, 3000 (grafana chart 10.5.15 values service.targetPort, templates/_pod.tpl): Prometheus scrapes it
 *   (kube-prometheus-stack values grafana.serviceMonitor.enabled, true by default); its sidecars reload it on
 *   localhost, and its gossip port serves only HA alerting, which one replica does not run.
 * - Loki's gateway, 8080 (loki chart 6.29.0 values gateway.containerPort; Service port 80): Grafana's Loki data source
 *   and Alloy's push (monitoring/logs/config.alloy) go to http://loki-gateway.
 * - Loki, HTTP 3100, gRPC 9095, memberlist 7946 (single-binary/statefulset.yaml; dskit's memberlist speaks TCP only):
 *   the gateway proxies every path to 3100 (_helpers.tpl loki.nginxFile, singleBinaryUrl). Loki pods reach each other
 *   on all three: the ring (memberlist, then gRPC to the ingesters by pod address) and compactor_address, the Service
 *   http://loki:3100 (_helpers.tpl loki.compactorAddress), which a single binary does not use (Loki v3.4.2
 *   pkg/loki/modules.go compactorAddress: its own gRPC port when the target is all) but more replicas would. Nothing
 *   scrapes Loki (values monitoring.serviceMonitor.enabled false); the canary and tests are off.
 */
export function monitoringIngress(name: string, namespace: pulumi.Input<string>, opts: pulumi.CustomResourceOptions) {
  const from = (...labels: Record<string, string>[]) => labels.map(pods);
  const policy = (policyName: string, selected: Record<string, string>, ingress: Rule[]) =>
    ingressPolicy(
      `${name}-${policyName}`,
      { name: policyName, namespace, podSelector: { matchLabels: selected }, ingress },
      opts,
    );
  const { prometheus, alertmanager, grafana, loki, lokiGateway, alloy } = MONITORING_PODS;
  const prom = { web: 9090, reloader: 8080 };
  const am = { web: 9093, reloader: 8080, mesh: 9094 };
  const grafanaWeb = 3000;
  const lokiGatewayWeb = 8080;
  const lokiPorts = { http: 3100, grpc: 9095, memberlist: 7946 };
  return [
    policy("prometheus-ingress", prometheus, [
      { from: from(prometheus), ports: tcp(prom.web, prom.reloader) },
      { from: from(grafana), ports: tcp(prom.web) },
    ]),
    policy("alertmanager-ingress", alertmanager, [
      { from: from(prometheus), ports: tcp(am.web, am.reloader) },
      { from: from(grafana), ports: tcp(am.web) },
      { from: from(alertmanager), ports: [...tcp(am.mesh), { protocol: "UDP", port: am.mesh }] },
    ]),
    policy("grafana-ingress", grafana, [{ from: from(prometheus), ports: tcp(grafanaWeb) }]),
    policy("loki-gateway-ingress", lokiGateway, [{ from: from(grafana, alloy), ports: tcp(lokiGatewayWeb) }]),
    policy("loki-ingress", loki, [
      { from: from(lokiGateway), ports: tcp(lokiPorts.http) },
      { from: from(loki), ports: tcp(lokiPorts.http, lokiPorts.grpc, lokiPorts.memberlist) },
    ]),
  ];
}
