// The API's public entry: an internet-facing ALB (through the AWS Load Balancer Controller) sending
// traffic straight to the API pods. With a domain: an ACM certificate (DNS validation), HTTPS, and HTTP
// redirected to HTTPS. The idle timeout is the guide's proxy_read_timeout 300s, for streamed answers.
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { API } from "./names.ts";
import { labelsFor } from "./pod.ts";

/** What apiUrl says while the ALB has no hostname yet (and always under the offline plan's mocks). */
export const PENDING_ALB_URL = "http://pending-alb-hostname.invalid";
const IDLE_TIMEOUT_SECONDS = 300;

export interface ApiIngressArgs {
  namespace: pulumi.Input<string>;
  service: k8s.core.v1.Service;
  /** Public DNS name (config `domain`); without it the ALB serves plain HTTP on its own hostname. */
  domain?: string;
  /**
   * What must outlive the Ingress on `pulumi destroy`: the ALB controller (it removes the ALB, its target
   * groups and security groups, then the Ingress's finalizer) and the VPC's public edge (the ALB sits there).
   * The Ingress depends on them itself: children do not inherit their component's dependsOn.
   */
  deleteBefore?: pulumi.Resource[];
}

export class ApiIngress extends pulumi.ComponentResource {
  readonly apiUrl: pulumi.Output<string>;
  /** CNAME records to create in the domain's DNS zone so ACM issues the certificate (empty without a domain). */
  readonly certificateValidationRecords: pulumi.Output<{ name: string; type: string; value: string }[]>;

  constructor(name: string, args: ApiIngressArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ApiIngress", name, {}, opts);
    const o = { parent: this };

    const certificate = args.domain
      ? new aws.acm.Certificate(name, { domainName: args.domain, validationMethod: "DNS" }, o)
      : undefined;
    this.certificateValidationRecords = certificate
      ? certificate.domainValidationOptions.apply((opts) =>
        (opts ?? []).map((v) => ({ name: v.resourceRecordName!, type: v.resourceRecordType!, value: v.resourceRecordValue! })))
      : pulumi.output([]);

    const tls: Record<string, pulumi.Input<string>> = certificate
      ? {
        "alb.ingress.kubernetes.io/listen-ports": JSON.stringify([{ HTTP: 80 }, { HTTPS: 443 }]),
        "alb.ingress.kubernetes.io/ssl-redirect": "443",
        "alb.ingress.kubernetes.io/certificate-arn": certificate.arn,
        "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
      }
      : { "alb.ingress.kubernetes.io/listen-ports": JSON.stringify([{ HTTP: 80 }]) };

    const ingress = new k8s.networking.v1.Ingress(API.name, {
      metadata: {
        name: API.name,
        namespace: args.namespace,
        labels: labelsFor(API.name),
        annotations: {
          "alb.ingress.kubernetes.io/scheme": "internet-facing",
          "alb.ingress.kubernetes.io/target-type": "ip",
          "alb.ingress.kubernetes.io/healthcheck-path": "/health",
          "alb.ingress.kubernetes.io/healthcheck-interval-seconds": "15",
          "alb.ingress.kubernetes.io/success-codes": "200",
          "alb.ingress.kubernetes.io/load-balancer-attributes":
            `idle_timeout.timeout_seconds=${IDLE_TIMEOUT_SECONDS},routing.http.drop_invalid_header_fields.enabled=true`,
          "alb.ingress.kubernetes.io/target-group-attributes": "deregistration_delay.timeout_seconds=30",
          ...tls,
        },
      },
      spec: {
        ingressClassName: "alb",
        rules: [{
          ...(args.domain ? { host: args.domain } : {}),
          http: {
            paths: [{
              path: "/",
              pathType: "Prefix",
              backend: { service: { name: args.service.metadata.name, port: { name: API.portName } } },
            }],
          },
        }],
      },
    }, { ...o, dependsOn: args.deleteBefore ?? [] });

    this.apiUrl = args.domain
      ? pulumi.output(`https://${args.domain}`)
      : ingress.status.apply((status) => {
        const hostname = status?.loadBalancer?.ingress?.[0]?.hostname;
        return hostname ? `http://${hostname}` : PENDING_ALB_URL;
      });
    this.registerOutputs({ apiUrl: this.apiUrl });
  }
}
