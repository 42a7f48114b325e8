// The prod stack with config `domain` and `hostedZoneId` set: an ACM certificate validated in the same
// `pulumi up` (Route 53 record + CertificateValidation) on the ALB, HTTPS with HTTP redirected to it, the host
// rule, and apiUrl on the domain. A domain without a zone is refused at config time. The same plan turns the
// web ACL off (network.perIpRequestsPerMinute: null), to see what the Ingress then says, and lists the origins of
// the browser front ends that may call the API (corsOrigins).
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../app/src/config.ts";
import { runPlan } from "../../infra/plan/harness.ts";
import { appEnv, UNUSED_URLS } from "../support/app.ts";
import { configFailure } from "../support/config.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const DOMAIN = "api.acme.test";
const ZONE = "Z0ACMETEST";
const FRONT_ENDS = ["https://app.acme.test", "http://localhost:5173"];
const plan = await runPlan({
  stack: "prod",
  config: {
    "agent-stack:domain": DOMAIN,
    "agent-stack:hostedZoneId": ZONE,
    "agent-stack:overrides": JSON.stringify({ network: { perIpRequestsPerMinute: null } }),
    "agent-stack:corsOrigins": JSON.stringify(FRONT_ENDS),
  },
});
const certificate = one(plan, "aws:acm/certificate:Certificate");
const ingress = inputs(one(plan, "kubernetes:networking.k8s.io/v1:Ingress", "agent-api"));
const annotations = ingress.metadata.annotations;

test("an ACM certificate for the domain, validated through DNS", () => {
  assert.equal(inputs(certificate).domainName, DOMAIN);
  assert.equal(inputs(certificate).validationMethod, "DNS");
});

test("the ALB listens on 80 and 443 with that certificate and redirects HTTP to HTTPS", () => {
  assert.deepEqual(JSON.parse(annotations["alb.ingress.kubernetes.io/listen-ports"]), [{ HTTP: 80 }, { HTTPS: 443 }]);
  assert.equal(annotations["alb.ingress.kubernetes.io/ssl-redirect"], "443");
  assert.equal(
    annotations["alb.ingress.kubernetes.io/certificate-arn"],
    `arn:aws:mock:us-east-1:123456789012:Certificate/${certificate.name}`,
  );
  assert.match(annotations["alb.ingress.kubernetes.io/ssl-policy"], /^ELBSecurityPolicy-TLS13-/);
});

test("the Ingress answers for the domain and keeps the streaming idle timeout", () => {
  assert.equal(ingress.spec.rules[0].host, DOMAIN);
  assert.match(annotations["alb.ingress.kubernetes.io/load-balancer-attributes"], /idle_timeout\.timeout_seconds=300/);
});

test("without a per-IP limit there is no web ACL, and the Ingress says none so the controller detaches any it had", () => {
  assert.deepEqual(ofType(plan, "aws:wafv2/webAcl:WebAcl"), []);
  assert.equal(annotations["alb.ingress.kubernetes.io/wafv2-acl-arn"], "none");
});

test("apiUrl is the https URL of the domain", () => {
  assert.equal(plan.outputs.apiUrl, `https://${DOMAIN}`);
});

test("the certificate is validated in the same up: its record in the hosted zone, then CertificateValidation", () => {
  const record = inputs(one(plan, "aws:route53/record:Record"));
  assert.deepEqual(
    [record.zoneId, record.name, record.type, record.records],
    [ZONE, `_mock.${DOMAIN}.`, "CNAME", ["_mock.acm-validations.aws."]],
  );
  const validation = inputs(one(plan, "aws:acm/certificateValidation:CertificateValidation"));
  assert.equal(validation.certificateArn, `arn:aws:mock:us-east-1:123456789012:Certificate/${certificate.name}`);
  assert.equal(plan.outputs.certificateValidationRecords, undefined, "nothing left to create by hand");
});

test("a domain without its hosted zone is a config error that says what to set", () => {
  const message = configFailure({ "aws:region": "us-east-1", "agent-stack:tier": "medium", "agent-stack:domain": DOMAIN });
  assert.match(message, /agent-stack:domain is set but agent-stack:hostedZoneId is not/);
  assert.match(message, /Route 53 hosted zone of api\.acme\.test/);
});

test("the API is told where clients reach it: the agent card names the domain, not the request's http origin", () => {
  const api = inputs(ofType(plan, "kubernetes:apps/v1:Deployment").find((d) => inputs(d).metadata.name === "agent-api")!);
  const env = api.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
  assert.equal(env.find((e) => e.name === "PUBLIC_URL")?.value, `https://${DOMAIN}`);
});

test("the API is told the origins whose pages may call it (corsOrigins), as a CORS_ORIGINS the app accepts", () => {
  const api = inputs(ofType(plan, "kubernetes:apps/v1:Deployment").find((d) => inputs(d).metadata.name === "agent-api")!);
  const env = api.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
  const value = env.find((e) => e.name === "CORS_ORIGINS")?.value;
  assert.equal(value, FRONT_ENDS.join(","));
  assert.deepEqual(loadConfig({ ...appEnv(UNUSED_URLS), CORS_ORIGINS: value! }).CORS_ORIGINS, FRONT_ENDS);
});
