// The API's public entry: an internet-facing ALB (through the AWS Load Balancer Controller) sending
// traffic straight to the API pods. With a domain: an ACM certificate validated in the same `pulumi up`
// (its DNS records in the domain's Route 53 zone, then aws.acm.CertificateValidation, which the listener
// waits for), HTTPS only on a TLS 1.3/1.2 policy, and HTTP redirected to HTTPS. Annotation names: the
// controller's docs/guide/ingress/annotations.md (v2.14). The idle timeout: ALB_IDLE_TIMEOUT_SECONDS (names.ts).
// With a per-IP limit (tier network.perIpRequestsPerMinute), an AWS WAF web ACL (api-firewall.ts) answers a
// flooding address before it reaches the pods.
import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { apiWebAcl } from "./api-firewall.ts";
import { ALB_IDLE_TIMEOUT_SECONDS, API, API_DEREGISTRATION_SECONDS } from "./names.ts";
import { labelsFor } from "./pod.ts";

/** What apiUrl says while the ALB has no hostname yet (and always under the offline plan's mocks). */
export const PENDING_ALB_URL = "http://pending-alb-hostname.invalid";
/** TLS 1.3 and 1.2 only: AWS's recommended ALB policy (Elastic Load Balancing "Security policies"). */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/** Where clients reach the API with config `domain`: the stack's apiUrl, and the agent card's url. */
export const domainUrl = (domain: { name: string }) => `https://${domain.name}`;

export interface ApiIngressArgs {
  namespace: pulumi.Input<string>;
  service: k8s.core.v1.Service;
  /**
   * Public DNS name (config `domain`) and its Route 53 hosted zone (config `hostedZoneId`); without them the
   * ALB serves plain HTTP on its own hostname (dev only: the policy pack refuses that in production tiers).
   */
  domain?: { name: string; hostedZoneId: string };
  /**
   * What must outlive the Ingress on `pulumi destroy`: the ALB controller (it removes the ALB, its target
   * groups and security groups, then the Ingress's finalizer) and the VPC's public edge (the ALB sits there).
   * The Ingress depends on them itself: children do not inherit their component's dependsOn.
   */
  deleteBefore?: pulumi.Resource[];
  /** Requests per minute per client IP at the AWS WAF web ACL (tier network.perIpRequestsPerMinute); null: no web ACL. */
  perIpRequestsPerMinute: number | null;
  /** Config `corsOrigins`: the web ACL's 429 names the one allowed origin (api-firewall.ts rateLimitedHeaders). */
  corsOrigins: readonly string[];
}

export class ApiIngress extends pulumi.ComponentResource {
  readonly apiUrl: pulumi.Output<string>;

  constructor(name: string, args: ApiIngressArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:ApiIngress", name, {}, opts);
    const o = { parent: this };

    const certificateArn = args.domain ? this.validatedCertificate(name, args.domain) : undefined;

    const tls: Record<string, pulumi.Input<string>> = certificateArn
      ? {
          "alb.ingress.kubernetes.io/listen-ports": JSON.stringify([{ HTTP: 80 }, { HTTPS: 443 }]),
          "alb.ingress.kubernetes.io/ssl-redirect": "443",
          "alb.ingress.kubernetes.io/certificate-arn": certificateArn,
          "alb.ingress.kubernetes.io/ssl-policy": TLS_POLICY,
        }
      : { "alb.ingress.kubernetes.io/listen-ports": JSON.stringify([{ HTTP: 80 }]) };

    // The annotation refers to the web ACL, so the Ingress (and with it the ALB) is deleted first on destroy: AWS
    // refuses to delete a web ACL that is still associated. Without one it says "none": an absent annotation makes
    // the controller keep whatever web ACL the ALB had, so turning the limit off would leave it attached.
    const webAcl =
      args.perIpRequestsPerMinute === null
        ? undefined
        : apiWebAcl(`${name}-waf`, { perIpRequestsPerMinute: args.perIpRequestsPerMinute, corsOrigins: args.corsOrigins }, o);
    const firewall = { "alb.ingress.kubernetes.io/wafv2-acl-arn": webAcl ? webAcl.arn : "none" };

    const ingress = new k8s.networking.v1.Ingress(
      API.name,
      {
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
            "alb.ingress.kubernetes.io/load-balancer-attributes": `idle_timeout.timeout_seconds=${ALB_IDLE_TIMEOUT_SECONDS},routing.http.drop_invalid_header_fields.enabled=true`,
            // A deregistering target keeps its in-flight requests this long, then the ALB drops them: it was 30 s,
            // and a request may run REQUEST_TIMEOUT_MS (60 s), so every rollout, scale-in and off-peak scale-down cut
            // the answers still running (the pod went on and sent them to no one). With no request in flight the ALB
            // ends the deregistration at once (AWS ELB docs, "Deregistration delay"). As long as the pod's stop, then.
            // Least outstanding requests, the guides' nginx `least_conn`: an answer runs from milliseconds (a cache
            // hit) to a minute (a generation), and round robin, the default, kept sending a pod its share while its
            // slots were full of long ones (controller v2.14.0 docs/guide/ingress/annotations.md names this value).
            "alb.ingress.kubernetes.io/target-group-attributes": [
              `deregistration_delay.timeout_seconds=${API_DEREGISTRATION_SECONDS}`,
              "load_balancing.algorithm.type=least_outstanding_requests",
            ].join(","),
            ...tls,
            ...firewall,
          },
        },
        spec: {
          ingressClassName: "alb",
          rules: [
            {
              ...(args.domain ? { host: args.domain.name } : {}),
              http: {
                paths: [
                  {
                    path: "/",
                    pathType: "Prefix",
                    backend: { service: { name: args.service.metadata.name, port: { name: API.portName } } },
                  },
                ],
              },
            },
          ],
        },
      },
      { ...o, dependsOn: args.deleteBefore ?? [] },
    );

    this.apiUrl = args.domain
      ? pulumi.output(domainUrl(args.domain))
      : ingress.status.apply((status) => {
          const hostname = status?.loadBalancer?.ingress?.[0]?.hostname;
          return hostname ? `http://${hostname}` : PENDING_ALB_URL;
        });
    this.registerOutputs({ apiUrl: this.apiUrl });
  }

  /** The certificate's ARN once ACM has issued it: DNS records in the zone, then the validation waits. */
  private validatedCertificate(name: string, domain: { name: string; hostedZoneId: string }): pulumi.Output<string> {
    const o = { parent: this };
    const certificate = new aws.acm.Certificate(name, { domainName: domain.name, validationMethod: "DNS" }, o);
    // One record per domain name on the certificate (only `domain` here, so the count is known before apply).
    const record = new aws.route53.Record(
      `${name}-validation`,
      {
        zoneId: domain.hostedZoneId,
        name: certificate.domainValidationOptions[0].resourceRecordName,
        type: certificate.domainValidationOptions[0].resourceRecordType,
        records: [certificate.domainValidationOptions[0].resourceRecordValue],
        ttl: 300,
        allowOverwrite: true,
      },
      o,
    );
    const validation = new aws.acm.CertificateValidation(
      name,
      {
        certificateArn: certificate.arn,
        validationRecordFqdns: [record.fqdn],
      },
      o,
    );
    return validation.certificateArn;
  }
}
