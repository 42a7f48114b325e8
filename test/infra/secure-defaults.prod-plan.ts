// Issue 14 on the prod stack: no path from a pod to node credentials, a private control plane, explicit Pod
// Security levels, least-privileged database logins over verified TLS, docs off, metrics off the Ingress.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { test } from "node:test";
import { stackPlan, WITH_CI_AND_FLOW_LOGS } from "../support/stack-plan.ts";
import { containersOf } from "../../policy/lib/k8s.ts";
import { inputs, ofType, one } from "../support/plan.ts";
import { workloadView } from "../support/workloads.ts";

const plan = await stackPlan("prod");
const { pod, envOf, api, deployment } = workloadView(plan);
const ROLE_ARN = "eks.amazonaws.com/role-arn";

test("every launch template has IMDS hop limit 1: pods cannot reach the node role's credentials", () => {
  const templates = ofType(plan, "aws:ec2/launchTemplate:LaunchTemplate");
  assert.ok(templates.length >= 4);
  for (const t of templates) assert.equal(inputs(t).metadataOptions.httpPutResponseHopLimit, 1, t.name);
});

test("every add-on and job that calls AWS has its own IRSA role (no node credentials needed)", () => {
  const addon = (name: string) => inputs(ofType(plan, "aws:eks/addon:Addon").find((a) => inputs(a).addonName === name)!);
  assert.equal(addon("aws-ebs-csi-driver").serviceAccountRoleArn, "arn:aws:mock:us-east-1:123456789012:Role/cluster-ebs-csi");
  assert.equal(addon("vpc-cni").serviceAccountRoleArn, "arn:aws:mock:us-east-1:123456789012:Role/cluster-vpc-cni");
  const trust = JSON.parse(inputs(one(plan, "aws:iam/role:Role", "cluster-vpc-cni")).assumeRolePolicy).Statement[0];
  assert.match(JSON.stringify(trust.Condition), /system:serviceaccount:kube-system:aws-node/);
  const release = (name: string) => inputs(one(plan, "kubernetes:helm.sh/v3:Release", name)).values;
  assert.ok(release("workloads-addons-alb-controller").serviceAccount.annotations[ROLE_ARN]);
  assert.ok(release("workloads-addons-alb-controller").region, "region from values, not IMDS");
  assert.ok(release("workloads-addons-cluster-autoscaler").rbac.serviceAccount.annotations[ROLE_ARN]);
  assert.ok(release("observability-stack-loki").serviceAccount.annotations[ROLE_ARN]);
  const snapshotAccount = ofType(plan, "kubernetes:core/v1:ServiceAccount").find(
    (s) => inputs(s).metadata.name === "qdrant-snapshot",
  )!;
  assert.ok(inputs(snapshotAccount).metadata.annotations[ROLE_ARN]);
  // Alloy tails pods through the Kubernetes API and calls no AWS API: no role, no host mounts.
  assert.equal(release("observability-stack-alloy").serviceAccount, undefined);
});

test("the cluster role trusts EKS for this cluster only, the flow-log role VPC Flow Logs for this account's flow logs", async () => {
  // EKS guide, "Cross-service confused deputy prevention in Amazon EKS" (cluster role); VPC guide, "IAM role for
  // publishing flow logs to CloudWatch Logs" (the flow log's ID a wildcard where it is unknown).
  const withFlowLogs = await stackPlan("prod", WITH_CI_AND_FLOW_LOGS);
  const condition = (role: string) =>
    JSON.parse(inputs(one(withFlowLogs, "aws:iam/role:Role", role)).assumeRolePolicy).Statement[0].Condition;
  const cluster = inputs(one(withFlowLogs, "aws:eks/cluster:Cluster")).name;
  assert.deepEqual(condition("cluster-control-plane"), {
    StringEquals: { "aws:SourceAccount": "123456789012" },
    ArnLike: { "aws:SourceArn": `arn:aws:eks:us-east-1:123456789012:cluster/${cluster}` },
  });
  assert.deepEqual(condition("network-flow-logs"), {
    StringEquals: { "aws:SourceAccount": "123456789012" },
    ArnLike: { "aws:SourceArn": "arn:aws:ec2:us-east-1:123456789012:vpc-flow-log/*" },
  });
});

test("every role an AWS service assumes names the source account, but EC2's and AWS Backup's, whose guides document none", async () => {
  // A service that sends no aws:SourceAccount is refused under it: the node role would join no node, the backup role
  // would back nothing up. Their guides ("Amazon EKS node IAM role", AWS Backup "IAM service roles") trust them bare.
  const withFlowLogs = await stackPlan("prod", WITH_CI_AND_FLOW_LOGS);
  const trusts = ofType(withFlowLogs, "aws:iam/role:Role").flatMap((r) => JSON.parse(inputs(r).assumeRolePolicy).Statement);
  const services = trusts.filter((s: any) => s.Principal.Service);
  assert.ok(services.length >= 4, "the cluster, node, flow-log and backup roles");
  const bare = services.filter((s: any) => s.Condition?.StringEquals?.["aws:SourceAccount"] !== "123456789012");
  assert.deepEqual(bare.map((s: any) => s.Principal.Service).sort(), ["backup.amazonaws.com", "ec2.amazonaws.com"]);
});

test("every CloudWatch log group expires its events, the flow logs' too (0 or none is never)", async () => {
  const withFlowLogs = await stackPlan("prod", WITH_CI_AND_FLOW_LOGS);
  const groups = ofType(withFlowLogs, "aws:cloudwatch/logGroup:LogGroup");
  assert.ok(
    groups.some((g) => g.name === "network-flow-logs"),
    "the flow logs' group is planned",
  );
  for (const g of groups) assert.ok(inputs(g).retentionInDays > 0, g.name);
});

test("prod's EKS endpoint is private only: private access on, public access off", () => {
  const vpc = inputs(one(plan, "aws:eks/cluster:Cluster")).vpcConfig;
  assert.equal(vpc.endpointPrivateAccess, true);
  assert.equal(vpc.endpointPublicAccess, false);
  assert.equal(vpc.publicAccessCidrs, undefined);
});

test("every namespace states its Pod Security level: agent restricted, monitoring baseline, monitoring-host privileged", () => {
  const levels = Object.fromEntries(
    ofType(plan, "kubernetes:core/v1:Namespace").map((n) => [
      inputs(n).metadata.name,
      inputs(n).metadata.labels["pod-security.kubernetes.io/enforce"],
    ]),
  );
  assert.deepEqual(levels, { agent: "restricted", monitoring: "baseline", "monitoring-host": "privileged" });
});

test("a Job creates the database roles as the master user, over verify-full TLS, before the API starts", () => {
  const job = one(plan, "kubernetes:batch/v1:Job", "db-roles");
  const [psql] = containersOf(pod(job));
  assert.match(psql.image!, /^postgres:16\.\d+-alpine$/);
  const env = Object.fromEntries((psql.env as any[]).map((e) => [e.name, e.value]));
  assert.deepEqual([env.PGSSLMODE, env.PGSSLROOTCERT], ["verify-full", "/etc/rds-ca/rds-ca-bundle.pem"]);
  assert.deepEqual(psql.envFrom, [{ secretRef: { name: "db-roles-env" } }]);
  assert.equal(inputs(one(plan, "kubernetes:core/v1:Secret", "workloads-db-roles-env")).metadata.namespace, "agent");
  const sql = inputs(one(plan, "kubernetes:core/v1:ConfigMap", "workloads-db-roles-sql")).data["db-roles.sql"];
  assert.match(sql, /GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_user"/);
  assert.equal(
    ofType(plan, "random:index/randomPassword:RandomPassword").filter((r) => /db-roles-(owner|app|monitor)$/.test(r.name)).length,
    3,
  );
  // The SQL's checksum and the Secret's resourceVersion (the mocks' API server answers "1") in the pod template: a
  // new SQL, or a Secret written again, replaces the Job, which runs the SQL again.
  assert.deepEqual(inputs(job).spec.template.metadata.annotations, {
    "checksum/sql": createHash("sha256").update(sql).digest("hex"),
    "db-roles/secret-version": "1",
  });
});

test("long-running pods name the version of every Secret they read at start, so a Secret written again rolls them", () => {
  // A rotated token or a restored database's host reached no running pod until it restarted. Jobs and CronJobs start a
  // new pod each run (the roles Job has its own versions, above).
  const workloads = [...ofType(plan, "kubernetes:apps/v1:Deployment"), ...ofType(plan, "kubernetes:apps/v1:StatefulSet")];
  const reading = workloads.filter((w) => {
    const template = inputs(w).spec.template;
    const read = containersOf(template.spec).flatMap((c: any) => [
      ...(c.envFrom ?? []).map((e: any) => e.secretRef?.name),
      ...(c.env ?? []).map((e: any) => e.valueFrom?.secretKeyRef?.name),
    ]);
    const secrets = new Set(read.filter(Boolean));
    const versions = Object.entries(template.metadata.annotations ?? {}).filter(([k]) => k.startsWith("secret-version/"));
    assert.deepEqual(versions.map(([k]) => k.slice("secret-version/".length)).sort(), [...secrets].sort(), w.name);
    // The mocks' API server answers each Secret with resourceVersion "1".
    for (const [key, version] of versions) assert.equal(version, "1", `${w.name} ${key}`);
    return secrets.size > 0;
  });
  assert.deepEqual(reading.map((w) => inputs(w).metadata.name).sort(), ["agent-api", "qdrant"]);
});

test("the API and the exporter mount the RDS CA bundle; it holds the region's RSA2048 G1 root", () => {
  const bundles = ofType(plan, "kubernetes:core/v1:ConfigMap").filter((c) => inputs(c).metadata.name === "rds-ca-bundle");
  assert.deepEqual(bundles.map((b) => inputs(b).metadata.namespace).sort(), ["agent", "monitoring"]);
  const pem: string = inputs(bundles[0]).data["rds-ca-bundle.pem"];
  const subjects = pem.split(/(?=-----BEGIN CERTIFICATE-----)/).map((c) => new X509Certificate(c).subject);
  assert.ok(
    subjects.some((s) => s.includes("Amazon RDS us-east-1 Root CA RSA2048 G1")),
    "rds-ca-rsa2048-g1, the instance's caCertIdentifier",
  );
  assert.equal(envOf(api).DATABASE_CA_FILE.value, "/etc/rds-ca/rds-ca-bundle.pem");
  assert.ok((pod(deployment).volumes as any[]).some((v) => v.configMap?.name === "rds-ca-bundle"));
});

test("the exporter logs in as the read-only monitor role, not the master user", () => {
  const pg = inputs(one(plan, "kubernetes:helm.sh/v3:Release", "observability-stack-postgres-exporter")).values;
  assert.equal(pg.config.datasource.user, "agent_monitor");
});
