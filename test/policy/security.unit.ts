// The secure-by-default policies (policy/policies/security.ts, edge.ts), each called with a compliant and a violating
// plan, as mandatory outside dev and skipped in dev where the issue says "production tiers".
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  backupVaultProtected,
  ciLeastPrivilege,
  databaseTlsVerified,
  metricsNotIngressRouted,
  namespacePodSecurity,
  networkPolicyNarrowerThanVpc,
  restrictedNamespaceWorkloads,
  workloadRolesBounded,
} from "../../policy/policies/security.ts";
import { productionEdgeRateLimit, productionHttps } from "../../policy/policies/edge.ts";

import { check, checkOnPreview, resource, unknownStringValue } from "./support.ts";
import type { PlannedResource } from "../../infra/plan/types.ts";

const ALB = "alb.ingress.kubernetes.io";
const ingress = (annotations: Record<string, string>, port: Record<string, unknown> = { name: "http" }) =>
  resource("kubernetes:networking.k8s.io/v1:Ingress", "agent-api", {
    metadata: { name: "agent-api", namespace: "agent", annotations: { [`${ALB}/scheme`]: "internet-facing", ...annotations } },
    spec: { rules: [{ http: { paths: [{ path: "/", backend: { service: { name: "agent-api", port } } }] } }] },
  });
const certificate = resource("aws:acm/certificate:Certificate", "cert", {
  domainName: "api.example.com",
  validationMethod: "DNS",
});
// Synthetic plans refer to a resource by its mock id (test/support/plan.ts linkReferences), as a real plan's
// property dependencies would.
const certArn = "cert-id";
const validation = resource("aws:acm/certificateValidation:CertificateValidation", "cert-validation", {
  certificateArn: certArn,
});
const https = {
  [`${ALB}/listen-ports`]: JSON.stringify([{ HTTP: 80 }, { HTTPS: 443 }]),
  [`${ALB}/ssl-redirect`]: "443",
  [`${ALB}/certificate-arn`]: certArn,
  [`${ALB}/ssl-policy`]: "ELBSecurityPolicy-TLS13-1-2-2021-06",
};
const certWithArn = certificate;

test("production-https: plain HTTP in a production tier fails with what to set; dev passes", () => {
  const [v] = check(productionHttps, [ingress({ [`${ALB}/listen-ports`]: JSON.stringify([{ HTTP: 80 }]) })], { tier: "small" });
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /tier small: .*plain HTTP.*agent-stack:domain.*agent-stack:hostedZoneId/);
  assert.deepEqual(check(productionHttps, [ingress({})], { tier: "dev" }), []);
});

test("production-https: HTTPS with a validated certificate, redirect and a TLS 1.2+ policy passes; each gap fails", () => {
  assert.deepEqual(check(productionHttps, [ingress(https), certWithArn, validation]), []);
  const messages = (annotations: Record<string, string>, extra = [certWithArn, validation]) =>
    check(productionHttps, [ingress({ ...https, ...annotations }), ...extra]).map((v) => v.message);
  assert.match(messages({ [`${ALB}/ssl-redirect`]: "" })[0], /without redirecting/);
  assert.match(messages({ [`${ALB}/ssl-policy`]: "ELBSecurityPolicy-2016-08" })[0], /ssl-policy ELBSecurityPolicy-2016-08/);
  assert.match(messages({}, [certWithArn])[0], /certificate cert is not validated in this stack/);

  // A real preview of the update that creates the certificate: its ARN is unknown, and the engine's props throw on
  // reading it (@pulumi/policy proxy.js). Read so, the pack skipped the policy, an ssl-policy of TLS 1.0 unseen.
  const onPreview = (sslPolicy: string) =>
    checkOnPreview(
      productionHttps,
      [ingress({ ...https, [`${ALB}/certificate-arn`]: unknownStringValue, [`${ALB}/ssl-policy`]: sslPolicy })],
      { tier: "medium", relaxedTiers: ["dev"], allowedSslPolicies: [https[`${ALB}/ssl-policy`]] },
    );
  assert.deepEqual(onPreview(https[`${ALB}/ssl-policy`]!), [], "a certificate being created is one named");
  assert.match(onPreview("ELBSecurityPolicy-2016-08")[0] ?? "", /ssl-policy ELBSecurityPolicy-2016-08/);
  assert.deepEqual(onPreview(unknownStringValue), [], "a TLS policy not known yet is no verdict, not a violation");
});

const webAcl = (rules: unknown[]) =>
  resource("aws:wafv2/webAcl:WebAcl", "waf", { scope: "REGIONAL", defaultAction: { allow: {} }, rules });
const rateRule = {
  name: "per-ip-rate-limit",
  priority: 0,
  action: { block: { customResponse: { responseCode: 429 } } },
  statement: { rateBasedStatement: { aggregateKeyType: "IP", limit: 600, evaluationWindowSec: 60 } },
};

test("production-edge-rate-limit: an internet-facing ALB without a web ACL fails in a production tier, with what to set", () => {
  const [v] = check(productionEdgeRateLimit, [ingress(https)], { tier: "small" });
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /tier small: Ingress agent-api has no AWS WAF web ACL.*network\.perIpRequestsPerMinute/);
  assert.equal(check(productionEdgeRateLimit, [ingress({ ...https, [`${ALB}/wafv2-acl-arn`]: "none" })]).length, 1);
  assert.deepEqual(check(productionEdgeRateLimit, [ingress(https)], { tier: "dev" }), []);
  const internal = ingress({ ...https, [`${ALB}/scheme`]: "internal" });
  assert.deepEqual(check(productionEdgeRateLimit, [internal]), [], "an internal ALB faces no internet client");
});

test("production-edge-rate-limit: the stack's web ACL must block by rate; one from outside the stack is taken as named", () => {
  const guarded = ingress({ ...https, [`${ALB}/wafv2-acl-arn`]: "waf-id" });
  assert.deepEqual(check(productionEdgeRateLimit, [webAcl([rateRule]), guarded]), []);
  const [v] = check(productionEdgeRateLimit, [webAcl([]), guarded]);
  assert.match(v.message, /web ACL waf in front of Ingress agent-api has no rate-based rule that blocks/);
  const counting = { ...rateRule, action: { count: {} } };
  assert.equal(check(productionEdgeRateLimit, [webAcl([counting]), guarded]).length, 1, "counting is not limiting");
  const external = ingress({ ...https, [`${ALB}/wafv2-acl-arn`]: "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/x/1" });
  assert.deepEqual(check(productionEdgeRateLimit, [external]), []);
});

const vpc = resource("aws:ec2/vpc:Vpc", "vpc", { cidrBlock: "10.0.0.0/16" });
const netpol = (cidrs: string[]) =>
  resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", "agent-api-ingress", {
    metadata: { name: "agent-api-ingress", namespace: "agent" },
    spec: {
      podSelector: {},
      policyTypes: ["Ingress"],
      ingress: [{ from: cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: [{ port: 8080 }] }],
    },
  });

test("network-policy-narrower-than-vpc: the VPC range (or wider) fails; the public subnets pass", () => {
  const [v] = check(networkPolicyNarrowerThanVpc, [vpc, netpol(["10.0.0.0/16"])]);
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /admits 10\.0\.0\.0\/16, the whole VPC 10\.0\.0\.0\/16 \(every pod\)/);
  assert.equal(check(networkPolicyNarrowerThanVpc, [vpc, netpol(["10.0.0.0/8"])]).length, 1, "wider than the VPC");
  assert.equal(check(networkPolicyNarrowerThanVpc, [vpc, netpol(["0.0.0.0/0"])]).length, 1);
  assert.deepEqual(check(networkPolicyNarrowerThanVpc, [vpc, netpol(["10.0.0.0/20", "10.0.16.0/20"])]), []);
});

const service = resource("kubernetes:core/v1:Service", "agent-api", {
  metadata: { name: "agent-api", namespace: "agent", labels: { "app.kubernetes.io/name": "agent-api" } },
  spec: {
    ports: [
      { name: "http", port: 8080 },
      { name: "metrics", port: 9464 },
    ],
  },
});
const monitor = (port: string) =>
  resource("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "sm", {
    metadata: { name: "agent-api", namespace: "agent" },
    spec: { selector: { matchLabels: { "app.kubernetes.io/name": "agent-api" } }, endpoints: [{ port, path: "/metrics" }] },
  });

test("metrics-not-ingress-routed: scraping the port the Ingress routes fails; a separate metrics port passes", () => {
  const [v] = check(metricsNotIngressRouted, [ingress(https), service, monitor("http")]);
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /routes to port http of Service agent-api, which ServiceMonitor sm scrapes/);
  assert.deepEqual(check(metricsNotIngressRouted, [ingress(https), service, monitor("metrics")]), []);
  assert.equal(
    check(metricsNotIngressRouted, [ingress(https, { number: 8080 }), service, monitor("http")]).length,
    1,
    "by port number too",
  );
});

const namespace = (name: string, labels: Record<string, string>) =>
  resource("kubernetes:core/v1:Namespace", name, { metadata: { name, labels } });
const enforce = (level: string) => ({ "pod-security.kubernetes.io/enforce": level });

test("namespace-pod-security: every namespace states its level; agent enforces restricted", () => {
  assert.match(
    check(namespacePodSecurity, [namespace("monitoring", {})])[0].message,
    /no pod-security\.kubernetes\.io\/enforce label/,
  );
  const [baseline] = check(namespacePodSecurity, [namespace("agent", enforce("baseline"))]);
  assert.equal(baseline.level, "mandatory");
  assert.match(baseline.message, /namespace agent enforces baseline; it must enforce restricted/);
  assert.deepEqual(
    check(namespacePodSecurity, [namespace("agent", enforce("restricted")), namespace("monitoring-host", enforce("privileged"))]),
    [],
  );
  assert.deepEqual(check(namespacePodSecurity, [namespace("monitoring", {})], { tier: "dev" }), []);
  // A real first preview of a new cluster: the engine gives every Kubernetes object empty outputs. Not a namespace
  // without a label (three mandatory violations failed prod's first preview); checked again at the end of `up`.
  const unseen = resource("kubernetes:core/v1:Namespace", "agent", {});
  assert.deepEqual(check(namespacePodSecurity, [unseen]), []);
});

const deployment = (name: string, ns: string, pod: Record<string, unknown>) =>
  resource("kubernetes:apps/v1:Deployment", name, { metadata: { name, namespace: ns }, spec: { template: { spec: pod } } });
const hardened = {
  securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
  containers: [{ name: "app", securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } }],
};

test("restricted-namespace-workloads: a pod the restricted level would reject fails the plan, before the API server does", () => {
  const agent = namespace("agent", enforce("restricted"));
  assert.deepEqual(check(restrictedNamespaceWorkloads, [agent, deployment("api", "agent", hardened)]), []);
  const exporter = {
    ...hardened,
    hostNetwork: true,
    volumes: [{ name: "root", hostPath: { path: "/" } }],
    containers: [{ name: "x" }],
  };
  const [v] = check(restrictedNamespaceWorkloads, [agent, deployment("node-exporter", "agent", exporter)]);
  assert.match(
    v.message,
    /hostNetwork: true; hostPath volume root; container "x": allowPrivilegeEscalation not false; container "x": capabilities do not drop ALL/,
  );
  assert.deepEqual(
    check(restrictedNamespaceWorkloads, [
      namespace("monitoring-host", enforce("privileged")),
      deployment("node-exporter", "monitoring-host", exporter),
    ]),
    [],
  );
});

const attach = (policyArn: string) =>
  resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "ci-deploy", { role: "r", policyArn });
const access = (policy: string) =>
  resource("aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "ci-preview", {
    policyArn: `arn:aws:eks::aws:cluster-access-policy/${policy}`,
  });
const githubRole = (permissionsBoundary?: string) =>
  resource("aws:iam/role:Role", "ci-deploy", {
    assumeRolePolicy: JSON.stringify({
      Statement: [{ Condition: { StringEquals: { "token.actions.githubusercontent.com:sub": "repo:a/b:environment:prod" } } }],
    }),
    ...(permissionsBoundary ? { permissionsBoundary } : {}),
  });

test("ci-least-privilege: AdministratorAccess, EKS Edit for previews and an unbounded deploy role each fail", () => {
  const [admin] = check(ciLeastPrivilege, [attach("arn:aws:iam::aws:policy/AdministratorAccess")]);
  assert.equal(admin.level, "mandatory");
  assert.match(admin.message, /attaches arn:aws:iam::aws:policy\/AdministratorAccess/);
  assert.match(check(ciLeastPrivilege, [access("AmazonEKSEditPolicy")])[0].message, /AmazonEKSEditPolicy, which reads Secrets/);
  assert.match(check(ciLeastPrivilege, [githubRole()])[0].message, /no permissions boundary/);
  assert.deepEqual(
    check(ciLeastPrivilege, [
      access("AmazonEKSViewPolicy"),
      access("AmazonEKSClusterAdminPolicy"),
      githubRole("arn:aws:iam::1:policy/b"),
    ]),
    [],
  );

  // A real preview: an IRSA role's trust names its cluster's OIDC provider, unknown until the cluster exists, and the
  // engine's props throw on reading it (@pulumi/policy proxy.js). Read so, the pack skipped the whole policy.
  const irsa = resource("aws:iam/role:Role", "loki", { assumeRolePolicy: unknownStringValue });
  const reports = checkOnPreview(ciLeastPrivilege, [irsa, githubRole()], { tier: "medium", relaxedTiers: ["dev"] });
  assert.deepEqual(reports, ["GitHub deploy role ci-deploy has no permissions boundary: set permissionsBoundary."]);
});

const workloadBoundary = resource("aws:iam/policy:Policy", "workload-boundary", {
  name: "agent-stack-test-workload-boundary",
  policy: "{}",
});
/** A role whose boundary is `value`, and (`fromBoundary`) computed from the workload boundary's ARN output. */
const boundedRole = (name: string, value: unknown, fromBoundary = false) =>
  resource(
    "aws:iam/role:Role",
    name,
    { assumeRolePolicy: "{}", ...(value === undefined ? {} : { permissionsBoundary: value }) },
    fromBoundary ? { propertyDependencies: { permissionsBoundary: [workloadBoundary.urn] } } : {},
  );

test("workload-roles-bounded: a role without the workload boundary fails, in dev too; its ARN or output passes", () => {
  const [none] = check(workloadRolesBounded, [workloadBoundary, boundedRole("node", undefined)], { tier: "dev" });
  assert.equal(none.level, "mandatory");
  assert.match(none.message, /role node has no permissions boundary: give it the workload boundary/);
  assert.match(
    check(workloadRolesBounded, [workloadBoundary, boundedRole("node", "arn:aws:iam::1:policy/other")])[0].message,
    /role node has permissions boundary arn:aws:iam::1:policy\/other, not the workload boundary/,
  );
  assert.deepEqual(
    check(workloadRolesBounded, [
      workloadBoundary,
      boundedRole("by-output", "arn:aws:mock:us-east-1:1:Policy/workload-boundary", true),
      boundedRole("by-arn", "arn:aws:iam::123456789012:policy/agent-stack-test-workload-boundary"),
      githubRole("arn:aws:iam::1:policy/agent-stack-test-ci-deploy-boundary"),
    ]),
    [],
  );
  // Without the boundary's policy in the stack, its name is no workload boundary.
  assert.equal(check(workloadRolesBounded, [boundedRole("by-arn", "arn:aws:iam::1:policy/x-workload-boundary")]).length, 1);

  // A real preview of the first `pulumi up`: the boundary's ARN and an IRSA role's trust are unknown, and the engine's
  // props throw on reading them (@pulumi/policy proxy.js); read so, the pack skipped the whole policy. A role with no
  // boundary is still reported; an unknown one is no verdict (the engine's property dependencies, which name the
  // policy it comes from, pass it as `check` above shows).
  const irsa = (name: string, boundary: unknown) => ({
    ...boundedRole(name, boundary),
    inputs: { assumeRolePolicy: unknownStringValue, ...(boundary === undefined ? {} : { permissionsBoundary: boundary }) },
  });
  assert.deepEqual(
    checkOnPreview(workloadRolesBounded, [workloadBoundary, irsa("loki", unknownStringValue), irsa("grafana", undefined)], {}),
    ["role grafana has no permissions boundary: give it the workload boundary (<project>-<stack>-workload-boundary)."],
  );
  // Unknown, but from another policy of the plan: judged on the preview, not once the role exists. A deploy role's
  // own boundary (its trust unknown on the owner stack's first preview) is not this policy's to judge.
  const other = resource("aws:iam/policy:Policy", "other", { name: "agent-stack-test-other", policy: "{}" });
  const deployBoundary = resource("aws:iam/policy:Policy", "deploy-boundary", {
    name: "agent-stack-test-ci-deploy-boundary",
    policy: "{}",
  });
  const fromPolicy = (name: string, policy: PlannedResource) => ({
    ...irsa(name, unknownStringValue),
    propertyDependencies: { permissionsBoundary: [policy.urn] },
  });
  assert.deepEqual(
    checkOnPreview(
      workloadRolesBounded,
      [workloadBoundary, other, deployBoundary, fromPolicy("loki", other), fromPolicy("ci-deploy", deployBoundary)],
      {},
    ),
    ["role loki has permissions boundary from other, not the workload boundary (<project>-<stack>-workload-boundary)."],
  );
});

const dataKey = "arn:aws:kms:us-east-1:123456789012:key/data";
const vaultKey = "arn:aws:kms:us-east-1:123456789012:key/vault";
const vault = (kmsKeyArn: string) => resource("aws:backup/vault:Vault", "vault", { name: "agent-stack-prod", kmsKeyArn });
const lock = resource("aws:backup/vaultLockConfiguration:VaultLockConfiguration", "lock", {
  backupVaultName: "agent-stack-prod",
  minRetentionDays: 7,
});
const rds = resource("aws:rds/instance:Instance", "db", { kmsKeyId: dataKey });

test("backup-vault-protected: a vault without a lock, or on the data's key, fails; its own key and a lock pass", () => {
  const [unlocked] = check(backupVaultProtected, [vault(vaultKey), rds]);
  assert.equal(unlocked.level, "mandatory");
  assert.match(unlocked.message, /has no Vault Lock/);
  assert.match(check(backupVaultProtected, [vault(dataKey), lock, rds])[0].message, /shares its KMS key with db/);
  assert.deepEqual(check(backupVaultProtected, [vault(vaultKey), lock, rds]), []);
  assert.deepEqual(check(backupVaultProtected, [vault(dataKey), rds], { tier: "dev" }), []);
});

test("backup-vault-protected on a first preview: keys not known yet are told apart by the keys they come from", () => {
  // Every ARN is unknown while the keys are created: compared as values, the vault shared a key with everything, and
  // read plainly, the first unknown made the pack skip the policy.
  const key = (name: string) => resource("aws:kms/key:Key", name, {});
  const [vaultKeyResource, dataKeyResource] = [key("vault-key"), key("data-key")];
  const from = (r: PlannedResource, prop: string) => ({ propertyDependencies: { [prop]: [r.urn] } });
  const previewVault = resource(
    "aws:backup/vault:Vault",
    "vault",
    { name: "agent-stack-prod", kmsKeyArn: unknownStringValue },
    from(vaultKeyResource, "kmsKeyArn"),
  );
  const db = (source: PlannedResource) =>
    resource("aws:rds/instance:Instance", "db", { kmsKeyId: unknownStringValue }, from(source, "kmsKeyId"));
  const alias = resource(
    "aws:kms/alias:Alias",
    "vault-key",
    { targetKeyId: unknownStringValue },
    from(vaultKeyResource, "targetKeyId"),
  );
  // A policy granting the key's use is built from its ARN alone, and does not encrypt with it.
  const grant = resource(
    "aws:iam/rolePolicy:RolePolicy",
    "backup-kms",
    { policy: unknownStringValue },
    from(vaultKeyResource, "policy"),
  );
  const config = { tier: "medium", relaxedTiers: ["dev"] };
  const keys = [vaultKeyResource, dataKeyResource, alias, grant];
  assert.deepEqual(checkOnPreview(backupVaultProtected, [...keys, previewVault, lock, db(dataKeyResource)], config), []);
  assert.deepEqual(checkOnPreview(backupVaultProtected, [...keys, previewVault, lock, db(vaultKeyResource)], config), [
    "backup vault vault shares its KMS key with db: one key lost or disabled would take the data and its backups; give the vault its own key.",
  ]);
  assert.match(
    checkOnPreview(backupVaultProtected, [...keys, previewVault, db(dataKeyResource)], config)[0] ?? "",
    /no Vault Lock/,
  );
});

const exporter = (sslmode: string) =>
  resource("kubernetes:helm.sh/v3:Release", "postgres-exporter", { values: { config: { datasource: { host: "db", sslmode } } } });

test("database-tls-verified: sslmode require (encrypted, server unverified) fails; verify-full passes", () => {
  const [v] = check(databaseTlsVerified, [exporter("require")]);
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /values\.config\.datasource\.sslmode is "require"; use verify-full/);
  assert.deepEqual(check(databaseTlsVerified, [exporter("verify-full")]), []);
  const job = (mode: string) =>
    deployment("db-roles", "agent", { containers: [{ name: "psql", env: [{ name: "PGSSLMODE", value: mode }] }] });
  assert.match(check(databaseTlsVerified, [job("prefer")])[0].message, /PGSSLMODE is prefer/);
  assert.deepEqual(check(databaseTlsVerified, [job("verify-full")]), []);
  assert.deepEqual(check(databaseTlsVerified, [exporter("disable")], { tier: "dev" }), []);

  // On a real preview the engine's props throw on each value not known yet (@pulumi/policy proxy.js): an unknown
  // host beside sslmode "disable" made the pack skip the policy; an unknown sslmode itself is no verdict.
  const onPreview = (sslmode: string) =>
    checkOnPreview(
      databaseTlsVerified,
      [
        resource("kubernetes:helm.sh/v3:Release", "postgres-exporter", {
          values: { config: { datasource: { host: unknownStringValue, sslmode } } },
        }),
      ],
      { tier: "medium", relaxedTiers: ["dev"] },
    );
  assert.match(onPreview("disable")[0] ?? "", /values\.config\.datasource\.sslmode is "disable"/);
  assert.deepEqual(onPreview(unknownStringValue), []);
});
