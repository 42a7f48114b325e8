// Ingress rules of the agent namespace: nothing gets in unless listed here. The ALB (its nodes sit in the
// public subnets; with target-type ip it connects to the pods from there) reaches the API's serving port (a stack
// without an ALB admits nothing there: `kubectl port-forward` needs no rule, as the container runtime dials the
// port on the pod's own loopback, containerd internal/cri/server/sandbox_portforward_linux.go, and loopback never
// crosses the pod's veth where the VPC CNI's eBPF policy programs sit), and
// only Prometheus reaches its metrics port; only the API reaches Ollama and Qdrant's REST port (plus pods labelled as
// Qdrant clients, e.g. the snapshot job; nothing speaks Qdrant's gRPC); Qdrant peers reach each other; only Prometheus
// scrapes metrics ports. Kubelet probes come from the node and are always allowed (aws-network-policy-agent allows
// the node's own address). Egress stays open: the policies select no egress. In the monitoring namespace, Alertmanager
// alone has a policy (alertmanagerIngress).
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
 * makeSelectorLabels; grafana chart 10.5.15 templates/_helpers.tpl grafana.selectorLabels.
 */
export const MONITORING_PODS = {
  prometheus: { "app.kubernetes.io/name": "prometheus" },
  alertmanager: { "app.kubernetes.io/name": "alertmanager" },
  grafana: { "app.kubernetes.io/name": "grafana" },
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
 * Alertmanager's ingress in the monitoring namespace, which has no policy of its own otherwise: its API takes no
 * credentials, so any pod of the cluster (Ollama pulling third-party models, say) could silence every alert. Prometheus
 * sends alerts to the web port and scrapes it and the config reloader's (kube-prometheus-stack 81.4.3
 * templates/alertmanager/servicemonitor.yaml: the web port and reloader-web); Grafana reads it as a data source (the
 * chart's sidecar.datasources.alertmanager, on by default); replicas gossip on the mesh port, TCP and UDP
 * (prometheus-operator v0.88.1 pkg/alertmanager/statefulset.go: web 9093, mesh 9094). Kubelet probes are always allowed.
 */
export function alertmanagerIngress(name: string, namespace: pulumi.Input<string>, opts: pulumi.CustomResourceOptions) {
  const [web, reloader, mesh] = [9093, 8080, 9094];
  return ingressPolicy(
    name,
    {
      name: "alertmanager-ingress",
      namespace,
      podSelector: { matchLabels: MONITORING_PODS.alertmanager },
      ingress: [
        { from: [pods(MONITORING_PODS.prometheus)], ports: tcp(web, reloader) },
        { from: [pods(MONITORING_PODS.grafana)], ports: tcp(web) },
        { from: [pods(MONITORING_PODS.alertmanager)], ports: [...tcp(mesh), { protocol: "UDP", port: mesh }] },
      ],
    },
    opts,
  );
}
