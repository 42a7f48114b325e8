// Secure by default (issue 14), each rule readable from the plan and mandatory outside the relaxed tiers (dev):
// NetworkPolicies narrower than the VPC (HTTPS and the edge rate limit: edge.ts), metrics never on an Ingress-routed
// port, explicit Pod Security levels (restricted where it says so, and pods there that meet it), CI roles
// without administrator or edit access, every other role under the workload boundary, and a backup vault with its own
// key and a Vault Lock.
import type { PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { ANY_IPV4, cidrContains } from "../lib/cidr.ts";
import { containerLabel, containersOf, metadataOf, outputsKnown, podSpecOf, WORKLOAD_TYPES } from "../lib/k8s.ts";
import { productionStack, TIER_CONFIG_SCHEMA } from "../lib/tier.ts";
import { ofTypes, referencedBy, refersTo } from "../lib/validate.ts";
import { asArray, asRecord, decodeJson, isFalse, isTrue, knownProps, readKnown, UNKNOWN_VALUE } from "../lib/values.ts";

const T = {
  ingress: "kubernetes:networking.k8s.io/v1:Ingress",
  service: "kubernetes:core/v1:Service",
  namespace: "kubernetes:core/v1:Namespace",
  networkPolicy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  serviceMonitor: "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
  vpc: "aws:ec2/vpc:Vpc",
  role: "aws:iam/role:Role",
  policy: "aws:iam/policy:Policy",
  rolePolicyAttachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  accessPolicyAssociation: "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
  vault: "aws:backup/vault:Vault",
  vaultLock: "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
} as const;

export const networkPolicyNarrowerThanVpc: StackValidationPolicy = {
  name: "network-policy-narrower-than-vpc",
  description:
    "Outside relaxed tiers, no NetworkPolicy ipBlock admits the whole VPC range (every pod) or the internet; name the load balancer's subnets instead.",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateStack: productionStack((resources, _tier, report) => {
    const vpcCidrs = ofTypes(resources, [T.vpc]).map((v) => String(v.props.cidrBlock));
    for (const np of ofTypes(resources, [T.networkPolicy])) {
      const rules = asArray<any>(asRecord(np.props.spec).ingress);
      for (const cidr of rules
        .flatMap((r) => asArray<any>(r.from))
        .map((f) => f?.ipBlock?.cidr)
        .filter((c): c is string => typeof c === "string")) {
        const covered = vpcCidrs.filter((vpc) => cidrContains(cidr, vpc));
        if (cidr === ANY_IPV4 || covered.length > 0) {
          report(
            `NetworkPolicy ${np.name} admits ${cidr}${covered.length ? `, the whole VPC ${covered.join(", ")} (every pod)` : ""}: admit the load balancer's subnets and named namespaces only.`,
            np.urn,
          );
        }
      }
    }
  }),
};

export const metricsNotIngressRouted: StackValidationPolicy = {
  name: "metrics-not-ingress-routed",
  description:
    "Outside relaxed tiers, no Ingress routes to a Service port that a ServiceMonitor scrapes (metrics stay off the internet).",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateStack: productionStack((resources, _tier, report) => {
    const services = ofTypes(resources, [T.service]);
    const monitors = ofTypes(resources, [T.serviceMonitor]);
    for (const ingress of ofTypes(resources, [T.ingress])) {
      const spec = asRecord(ingress.props.spec);
      const backends = [
        spec.defaultBackend,
        ...asArray<any>(spec.rules).flatMap((r) => asArray<any>(r?.http?.paths).map((p) => p.backend)),
      ]
        .map((b) => b?.service)
        .filter(Boolean);
      for (const backend of backends) {
        const service = services.find(
          (s) => metadataOf(s).name === backend.name && metadataOf(s).namespace === metadataOf(ingress).namespace,
        );
        if (!service) continue;
        const port = asArray<any>(asRecord(service.props.spec).ports).find(
          (p) => p.name === backend.port?.name || p.port === backend.port?.number,
        );
        if (!port) continue;
        const labels = asRecord(metadataOf(service).labels);
        const scraping = monitors.filter((m) => {
          const selector = asRecord(asRecord(asRecord(m.props.spec).selector).matchLabels);
          const sameService = Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
          return (
            sameService &&
            asArray<any>(asRecord(m.props.spec).endpoints).some((e) => e.port === port.name || e.targetPort === port.port)
          );
        });
        for (const m of scraping) {
          report(
            `Ingress ${ingress.name} routes to port ${port.name ?? port.port} of Service ${backend.name}, which ServiceMonitor ${m.name} scrapes: serve metrics on a separate port the Ingress never routes to.`,
            ingress.urn,
          );
        }
      }
    }
  }),
};

const LEVELS = ["restricted", "baseline", "privileged"];
const ENFORCE = "pod-security.kubernetes.io/enforce";

export const namespacePodSecurity: StackValidationPolicy = {
  name: "namespace-pod-security",
  description:
    "Outside relaxed tiers, every Namespace states its Pod Security level (enforce label); the listed namespaces enforce restricted.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      ...TIER_CONFIG_SCHEMA,
      restrictedNamespaces: {
        type: "array",
        items: { type: "string" },
        default: ["agent"],
        description: "Namespaces that must enforce restricted.",
      },
    },
  },
  validateStack: productionStack((resources, _tier, report, config: { restrictedNamespaces: string[] }) => {
    for (const ns of ofTypes(resources, [T.namespace]).filter(outputsKnown)) {
      const name = metadataOf(ns).name ?? ns.name;
      const level = asRecord(metadataOf(ns).labels)[ENFORCE];
      if (!LEVELS.includes(level)) {
        report(
          `namespace ${name} has no ${ENFORCE} label (one of ${LEVELS.join(", ")}): the cluster default (privileged) applies silently.`,
          ns.urn,
        );
      } else if (config.restrictedNamespaces.includes(name) && level !== "restricted") {
        report(`namespace ${name} enforces ${level}; it must enforce restricted (every pod there can meet it).`, ns.urn);
      }
    }
  }),
};

/** What Pod Security "restricted" rejects in a pod spec (v1.25+ profile), in words. */
function restrictedGaps(pod: Record<string, any>): string[] {
  const gaps: string[] = [];
  for (const host of ["hostNetwork", "hostPID", "hostIPC"]) if (isTrue(pod[host])) gaps.push(`${host}: true`);
  for (const v of asArray<any>(pod.volumes)) if (v?.hostPath) gaps.push(`hostPath volume ${v.name}`);
  const podCtx = asRecord(pod.securityContext);
  for (const c of containersOf(pod)) {
    const ctx = asRecord(c.securityContext);
    const label = containerLabel(c);
    if (!isTrue(ctx.runAsNonRoot ?? podCtx.runAsNonRoot) || isFalse(ctx.runAsNonRoot))
      gaps.push(`${label}: runAsNonRoot not true`);
    if (!isFalse(ctx.allowPrivilegeEscalation)) gaps.push(`${label}: allowPrivilegeEscalation not false`);
    if (!asArray<string>(asRecord(ctx.capabilities).drop).includes("ALL")) gaps.push(`${label}: capabilities do not drop ALL`);
    const added = asArray<string>(asRecord(ctx.capabilities).add).filter((cap) => cap !== "NET_BIND_SERVICE");
    if (added.length > 0) gaps.push(`${label}: adds ${added.join(", ")}`);
    if (isTrue(ctx.privileged)) gaps.push(`${label}: privileged`);
    const seccomp = asRecord(ctx.seccompProfile).type ?? asRecord(podCtx.seccompProfile).type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") gaps.push(`${label}: no RuntimeDefault seccomp profile`);
  }
  return gaps;
}

export const restrictedNamespaceWorkloads: StackValidationPolicy = {
  name: "restricted-namespace-workloads",
  description:
    "Every workload in a namespace that enforces Pod Security restricted meets restricted (else the API server rejects its pods at deploy time).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const restricted = new Set(
      ofTypes(args.resources, [T.namespace])
        .filter((n) => asRecord(metadataOf(n).labels)[ENFORCE] === "restricted")
        .map((n) => metadataOf(n).name),
    );
    for (const w of args.resources.filter((r) => WORKLOAD_TYPES.includes(r.type))) {
      if (!restricted.has(metadataOf(w).namespace)) continue;
      const pod = podSpecOf(w.type, w.props);
      const gaps = pod ? restrictedGaps(pod) : [];
      if (gaps.length > 0) report(`${w.name} in namespace ${metadataOf(w).namespace} (restricted): ${gaps.join("; ")}.`, w.urn);
    }
  },
};

const ADMIN_POLICIES = [
  "arn:aws:iam::aws:policy/AdministratorAccess",
  "arn:aws:iam::aws:policy/IAMFullAccess",
  "arn:aws:iam::aws:policy/PowerUserAccess",
];
const EDIT_ACCESS = /\/(AmazonEKSEditPolicy|AmazonEKSAdminPolicy)$/;

export const ciLeastPrivilege: StackValidationPolicy = {
  name: "ci-least-privilege",
  description:
    "Outside relaxed tiers: no role has AdministratorAccess (or IAM/PowerUser full access); no EKS Edit/Admin access entry (a pull-request role would read Secrets and exec into pods); GitHub deploy roles have a permissions boundary.",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateStack: productionStack((resources, _tier, report) => {
    // Each resource read around what a real preview cannot know yet (an IRSA role's trust names its cluster's OIDC
    // provider): reading one threw, and the pack skipped the policy, a deploy role without a boundary unseen.
    for (const a of ofTypes(resources, [T.rolePolicyAttachment])) {
      const { policyArn } = knownProps(a);
      if (ADMIN_POLICIES.includes(policyArn))
        report(`${a.name} attaches ${policyArn}: give the role a scoped policy instead.`, a.urn);
    }
    for (const a of ofTypes(resources, [T.accessPolicyAssociation])) {
      const { policyArn } = knownProps(a);
      if (EDIT_ACCESS.test(String(policyArn))) {
        report(
          `${a.name} grants ${String(policyArn).split("/").pop()}, which reads Secrets and execs into pods: use AmazonEKSViewPolicy for previews.`,
          a.urn,
        );
      }
    }
    for (const role of ofTypes(resources, [T.role])) {
      const props = knownProps(role);
      if (isGithubDeployRole(props) && !props.permissionsBoundary) {
        report(`GitHub deploy role ${role.name} has no permissions boundary: set permissionsBoundary.`, role.urn);
      }
    }
  }),
};

/** Whether a role's trust names GitHub Actions with an `environment:` subject: a deploy role, bounded by its own. */
function isGithubDeployRole(props: Record<string, any>): boolean {
  const trust = String(props.assumeRolePolicy ?? "");
  return trust.includes("token.actions.githubusercontent.com") && trust.includes(":environment:");
}

/** How the program names its workload boundary (infra/platform/boundaries.ts): `<project>-<stack>-workload-boundary`. */
export const WORKLOAD_BOUNDARY_SUFFIX = "-workload-boundary";
/** `<project>-<stack>-ci-deploy-boundary` (infra/platform/ci-roles.ts): the deploy role's own boundary. */
const DEPLOY_BOUNDARY_SUFFIX = "-ci-deploy-boundary";

export const workloadRolesBounded: StackValidationPolicy = {
  name: "workload-roles-bounded",
  description:
    "Every IAM role but a GitHub deploy role has the stack's workload boundary (`<project>-<stack>-workload-boundary`) as permissions boundary: the deploy role may create roles only under it, and a role without it can be given anything, backups' deletion included.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    // Every tier: a dev stack's deploy role escalating in an account it shares with prod reaches prod too.
    // A policy's name alone, not a copy of its whole document (knownProps).
    const policyName = (p: PolicyResource) => String(readKnown(() => p.props.name) ?? "");
    const boundaries = ofTypes(args.resources, [T.policy]).filter((p) => policyName(p).endsWith(WORKLOAD_BOUNDARY_SUFFIX));
    const names = boundaries.map(policyName);
    for (const role of ofTypes(args.resources, [T.role])) {
      // Read around what a real preview cannot know yet: an IRSA role's trust (its cluster's OIDC provider) and, on
      // the first `pulumi up`, the boundary's ARN itself. The engine's property dependencies still name the policy.
      const props = knownProps(role);
      if (isGithubDeployRole(props)) continue;
      const boundary = props.permissionsBoundary;
      if (boundaries.some((b) => refersTo(role, "permissionsBoundary", b))) continue;
      if (typeof boundary === "string" && names.some((n) => boundary.endsWith(`:policy/${n}`))) continue;
      // Not known yet: from another policy of this plan, a boundary that is not the workload one (judged now, not at
      // the end of `up`, once the role exists), unless it is a deploy role's own (its trust, the OIDC provider's ARN,
      // may be unknown too, on the owner stack's first preview); from none of the plan's, no verdict.
      const from = referencedBy(role, "permissionsBoundary").filter((r) => r.type === T.policy);
      if (boundary === UNKNOWN_VALUE && from.every((p) => policyName(p).endsWith(DEPLOY_BOUNDARY_SUFFIX))) continue;
      report(
        boundary
          ? `role ${role.name} has permissions boundary ${boundary === UNKNOWN_VALUE ? `from ${from.map((p) => p.name).join(", ")}` : boundary}, not the workload boundary (<project>-<stack>${WORKLOAD_BOUNDARY_SUFFIX}).`
          : `role ${role.name} has no permissions boundary: give it the workload boundary (<project>-<stack>${WORKLOAD_BOUNDARY_SUFFIX}).`,
        role.urn,
      );
    }
  },
};

/** A property naming an encryption key (kmsKeyId, kmsKeyArn, encryptionConfig's keyArn, ...). */
const KEY_PROPERTY = /kms|key/i;
/** KMS's own resources for a key: they manage it, they do not encrypt with it. */
const KMS_OWN = ["aws:kms/key:Key", "aws:kms/alias:Alias", "aws:kms/grant:Grant", "aws:kms/keyPolicy:KeyPolicy"];

export const backupVaultProtected: StackValidationPolicy = {
  name: "backup-vault-protected",
  description:
    "Outside relaxed tiers, every backup vault has a Vault Lock and a KMS key of its own (not the key that encrypts the data it backs up).",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateStack: productionStack((resources, _tier, report) => {
    const locks = ofTypes(resources, [T.vaultLock]);
    // A value by itself where known; where a preview cannot know it yet (a key created in the same update), a key
    // property by the resources it comes from, and anything else as nobody's: a policy document built from the key's
    // ARN grants its use, it does not encrypt with it. Read plainly, the first unknown threw and the pack skipped the
    // whole policy.
    const identity = (r: PolicyResource, prop: string, value: unknown) => {
      if (value !== UNKNOWN_VALUE) return value;
      const sources = referencedBy(r, prop).map((s) => s.urn);
      return KEY_PROPERTY.test(prop) && sources.length > 0 ? `from ${sources.sort().join(" ")}` : Symbol(prop);
    };
    for (const vault of ofTypes(resources, [T.vault])) {
      const props = knownProps(vault);
      const locked = (l: PolicyResource) =>
        refersTo(l, "backupVaultName", vault) || (props.name !== UNKNOWN_VALUE && knownProps(l).backupVaultName === props.name);
      if (!locks.some(locked)) {
        report(
          `backup vault ${vault.name} has no Vault Lock, so whoever can deploy can delete its recovery points: add an aws.backup.VaultLockConfiguration (governance or compliance).`,
          vault.urn,
        );
      }
      if (!props.kmsKeyArn) {
        report(`backup vault ${vault.name} uses the AWS-managed key: give it a customer-managed key of its own.`, vault.urn);
        continue;
      }
      const key = identity(vault, "kmsKeyArn", props.kmsKeyArn);
      const sharers = resources.filter(
        (r) =>
          r !== vault &&
          r.type !== T.vault &&
          !KMS_OWN.includes(r.type) &&
          Object.entries(knownProps(r)).some(([prop, value]) => identity(r, prop, value) === key),
      );
      if (sharers.length > 0) {
        report(
          `backup vault ${vault.name} shares its KMS key with ${sharers.map((s) => s.name).join(", ")}: one key lost or disabled would take the data and its backups; give the vault its own key.`,
          vault.urn,
        );
      }
    }
  }),
};

/** Every `sslmode` key anywhere in a value, with its path. */
function sslModes(value: unknown, path: string[] = []): [string, unknown][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => sslModes(v, [...path, String(i)]));
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k.toLowerCase() === "sslmode" ? [[[...path, k].join("."), v] as [string, unknown]] : sslModes(v, [...path, k]),
  );
}

export const databaseTlsVerified: StackValidationPolicy = {
  name: "database-tls-verified",
  description:
    "Outside relaxed tiers, PostgreSQL clients the plan configures verify the server: every Helm value `sslmode` and container env PGSSLMODE is verify-full.",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateStack: productionStack((resources, _tier, report) => {
    for (const release of resources.filter((r) => r.type.startsWith("kubernetes:helm.sh/"))) {
      // Read around the values a real preview cannot know yet (a VPC id, a role's ARN): reading one threw, and the
      // pack server skipped the whole policy, an sslmode "disable" beside it unseen. One of them unknown is no verdict.
      const { values } = knownProps(release);
      for (const [path, mode] of sslModes(decodeJson(values))) {
        if (mode !== "verify-full" && mode !== UNKNOWN_VALUE)
          report(
            `${release.name}: values.${path} is ${JSON.stringify(mode)}; use verify-full with the RDS CA bundle.`,
            release.urn,
          );
      }
    }
    for (const w of resources.filter((r) => WORKLOAD_TYPES.includes(r.type))) {
      const pod = podSpecOf(w.type, w.props);
      for (const c of pod ? containersOf(pod) : []) {
        const mode = asArray<any>(c.env).find((e) => e?.name === "PGSSLMODE")?.value;
        if (mode !== undefined && mode !== "verify-full")
          report(`${w.name} ${containerLabel(c)}: PGSSLMODE is ${mode}; use verify-full.`, w.urn);
      }
    }
  }),
};

export const securityPolicies = [
  networkPolicyNarrowerThanVpc,
  metricsNotIngressRouted,
  namespacePodSecurity,
  restrictedNamespaceWorkloads,
  ciLeastPrivilege,
  workloadRolesBounded,
  backupVaultProtected,
  databaseTlsVerified,
];
