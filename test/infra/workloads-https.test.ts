// The prod stack with config `domain` set: an ACM certificate (DNS validation) on the ALB, HTTPS with
// HTTP redirected to it, the host rule, and apiUrl on the domain.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runPlan } from "../../infra/plan/harness.ts";
import { inputs, one } from "../support/plan.ts";

const DOMAIN = "agents.example.com";
const plan = await runPlan({ stack: "prod", config: { "agent-stack:domain": DOMAIN } });
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
  assert.equal(annotations["alb.ingress.kubernetes.io/certificate-arn"], `arn:aws:mock:us-east-1:123456789012:Certificate/${certificate.name}`);
  assert.match(annotations["alb.ingress.kubernetes.io/ssl-policy"], /^ELBSecurityPolicy-TLS13-/);
});

test("the Ingress answers for the domain and keeps the streaming idle timeout", () => {
  assert.equal(ingress.spec.rules[0].host, DOMAIN);
  assert.match(annotations["alb.ingress.kubernetes.io/load-balancer-attributes"], /idle_timeout\.timeout_seconds=300/);
});

test("apiUrl is the https URL of the domain", () => {
  assert.equal(plan.outputs.apiUrl, `https://${DOMAIN}`);
});

test("the certificate's DNS validation records are a stack output, to create in the domain's zone", () => {
  assert.deepEqual(plan.outputs.certificateValidationRecords, [
    { name: `_mock.${DOMAIN}.`, type: "CNAME", value: "_mock.acm-validations.aws." },
  ]);
});
