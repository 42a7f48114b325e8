// The API's internet edge, each rule readable from the plan and mandatory outside the relaxed tiers (dev): HTTPS on
// a validated certificate (issue 14), and the first rate-limiting layer at the load balancer that guide 000 puts in
// front of the API (its nginx `limit_req ... rate=10r/s`, `limit_req_status 429`; 001's checklist "Rate limiting
// configured", "DDoS protection enabled"): on an ALB, an AWS WAF web ACL with a rate-based rule.
import type { PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { metadataOf } from "../lib/k8s.ts";
import { productionStack, TIER_CONFIG_SCHEMA } from "../lib/tier.ts";
import { ofTypes, referencedBy, refersTo } from "../lib/validate.ts";
import { asArray, asRecord, decodeJson, knownProps, UNKNOWN_VALUE } from "../lib/values.ts";

const T = {
  ingress: "kubernetes:networking.k8s.io/v1:Ingress",
  certificate: "aws:acm/certificate:Certificate",
  certificateValidation: "aws:acm/certificateValidation:CertificateValidation",
  webAcl: "aws:wafv2/webAcl:WebAcl",
} as const;

const ALB = "alb.ingress.kubernetes.io";

/**
 * An Ingress's annotations, each one a real preview cannot know yet (a certificate or web ACL created in the same
 * update) the engine's unknown: read on the engine's props it threw, and the pack skipped the policy (its ssl-policy
 * and redirect checks with it). Known or not, a certificate or web ACL named is one there.
 */
const annotationsOf = (ingress: PolicyResource) => asRecord(metadataOf({ props: knownProps(ingress) }).annotations);

/** Ingresses the AWS Load Balancer Controller turns into an internet-facing ALB (its default scheme is internal). */
const internetFacingAlbIngresses = (resources: PolicyResource[]) =>
  ofTypes(resources, [T.ingress]).filter((i) => annotationsOf(i)[`${ALB}/scheme`] === "internet-facing");

export const productionHttps: StackValidationPolicy = {
  name: "production-https",
  description:
    "Outside relaxed tiers, every internet-facing ALB Ingress serves HTTPS only (a validated ACM certificate, a TLS 1.2+ policy, HTTP redirected).",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      ...TIER_CONFIG_SCHEMA,
      allowedSslPolicies: {
        type: "array",
        items: { type: "string" },
        default: [
          "ELBSecurityPolicy-TLS13-1-2-2021-06",
          "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
          "ELBSecurityPolicy-TLS13-1-3-2021-06",
        ],
        description: "ALB security policies that allow only TLS 1.2 and 1.3.",
      },
    },
  },
  validateStack: productionStack((resources, tier, report, config: { allowedSslPolicies: string[] }) => {
    for (const ingress of internetFacingAlbIngresses(resources)) {
      const a = annotationsOf(ingress);
      // Listeners, redirect or TLS policy not known yet: no verdict on them now (checked again at the end of `up`).
      const unknown = (name: string) => a[`${ALB}/${name}`] === UNKNOWN_VALUE;
      if (unknown("listen-ports")) continue;
      const listen = asArray<Record<string, number>>(decodeJson(a[`${ALB}/listen-ports`] ?? '[{"HTTP":80}]') as any);
      if (!listen.some((l) => "HTTPS" in l) || !a[`${ALB}/certificate-arn`]) {
        report(
          `tier ${tier}: Ingress ${ingress.name} serves the API over plain HTTP on the internet, so API keys travel in clear text. ` +
            "Set agent-stack:domain (the API's DNS name) and agent-stack:hostedZoneId (its Route 53 hosted zone): the program then " +
            "validates an ACM certificate in the same up and serves HTTPS only.",
          ingress.urn,
        );
        continue;
      }
      if (listen.some((l) => "HTTP" in l) && a[`${ALB}/ssl-redirect`] !== "443" && !unknown("ssl-redirect")) {
        report(`Ingress ${ingress.name} listens on HTTP without redirecting it: set ${ALB}/ssl-redirect: "443".`, ingress.urn);
      }
      if (!config.allowedSslPolicies.includes(a[`${ALB}/ssl-policy`]) && !unknown("ssl-policy")) {
        report(
          `Ingress ${ingress.name} has ssl-policy ${a[`${ALB}/ssl-policy`] ?? "(unset: ELBSecurityPolicy-2016-08, TLS 1.0+)"}; allowed: ${config.allowedSslPolicies.join(", ")}.`,
          ingress.urn,
        );
      }
    }
    const validations = ofTypes(resources, [T.certificateValidation]);
    for (const cert of ofTypes(resources, [T.certificate])) {
      if (!validations.some((v) => refersTo(v, "certificateArn", cert))) {
        report(
          `certificate ${cert.name} is not validated in this stack (the ALB cannot use it while PENDING_VALIDATION): add its DNS records and an aws.acm.CertificateValidation.`,
          cert.urn,
        );
      }
    }
  }),
};

/** A rule that blocks a client once it passes a request rate (a rate-based statement with a block action). */
const blocksByRate = (rule: any) => rule?.statement?.rateBasedStatement !== undefined && rule?.action?.block !== undefined;

export const productionEdgeRateLimit: StackValidationPolicy = {
  name: "production-edge-rate-limit",
  description:
    "Outside relaxed tiers, every internet-facing ALB Ingress names an AWS WAF web ACL (wafv2-acl-arn), and a web ACL of this stack it names blocks clients by request rate.",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateStack: productionStack((resources, tier, report) => {
    for (const ingress of internetFacingAlbIngresses(resources)) {
      const arn = annotationsOf(ingress)[`${ALB}/wafv2-acl-arn`];
      if (typeof arn !== "string" || arn === "" || arn === "none") {
        report(
          `tier ${tier}: Ingress ${ingress.name} has no AWS WAF web ACL, so nothing limits a client before the API pods. ` +
            "Set the tier's network.perIpRequestsPerMinute (agent-stack:overrides): the program then puts a web ACL with a per-IP rate-based rule in front of the ALB.",
          ingress.urn,
        );
        continue;
      }
      // A web ACL from outside the stack cannot be read here; one of this stack's is checked.
      for (const acl of referencedBy(ingress, "metadata").filter((r) => r.type === T.webAcl)) {
        if (!asArray<any>(acl.props.rules).some(blocksByRate)) {
          report(`web ACL ${acl.name} in front of Ingress ${ingress.name} has no rate-based rule that blocks: add one.`, acl.urn);
        }
      }
    }
  }),
};

export const edgePolicies = [productionHttps, productionEdgeRateLimit];
