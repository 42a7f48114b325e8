// The preflight against a mocked AWS account (aws-sdk-client-mock) and a local stand-in for chart repositories
// and registries: what a fresh account lacks (G quota 0, a zone without g5, names taken) fails with what to do.
import assert from "node:assert/strict";
import { after, beforeEach, test } from "node:test";
import { DescribeAddonVersionsCommand, DescribeClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import {
  DescribeAvailabilityZonesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeSubnetsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { IAMClient, ListOpenIDConnectProvidersCommand, ListOpenIDConnectProviderTagsCommand } from "@aws-sdk/client-iam";
import { DescribeCacheEngineVersionsCommand, ElastiCacheClient } from "@aws-sdk/client-elasticache";
import { DescribeDBEngineVersionsCommand, DescribeDBInstancesCommand, RDSClient } from "@aws-sdk/client-rds";
import { ListHostedZonesCommand, Route53Client } from "@aws-sdk/client-route-53";
import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { GetServiceQuotaCommand, ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import { parseStackConfig } from "../../infra/config.ts";
import { mockZones } from "../../infra/plan/mocks.ts";
import { loadStackFile } from "../../infra/plan/stackfile.ts";
import { chartVersions, checkCharts, checkImages } from "../../infra/preflight/artifacts.ts";
import { CredentialError } from "../../infra/preflight/aws.ts";
import { needsOf, type StackNeeds } from "../../infra/preflight/needs.ts";
import { renderTable, type CheckResult } from "../../infra/preflight/report.ts";
import { runPreflight } from "../../infra/preflight/run.ts";
import { parseImageRef } from "../../infra/versions.ts";
import { startUpstream } from "./upstream.ts";

const ACCOUNT = "210987654321";
const upstream = await startUpstream();
after(() => upstream.close());
const http = { rewrite: upstream.rewrite, timeoutMs: 5_000 };

const prodNeeds = (extra: Record<string, string> = {}): StackNeeds => {
  const file = loadStackFile("prod");
  return needsOf(parseStackConfig({ ...file.config, ...extra }, "prod"));
};
/** vCPUs by size, as DescribeInstanceTypes reports them for the c/r/t/g families. */
const vcpusOf = (type: string) => ({ large: 2, xlarge: 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32 })[type.split(".")[1]] ?? 1;
/** vCPUs of a family's groups at their max, and with a node update's extra nodes (`surge`). */
const maxVcpus = (needs: StackNeeds, family: RegExp, surge = false) =>
  needs.groups
    .filter((g) => family.test(g.instanceTypes[0]))
    .reduce((sum, g) => sum + (g.max + (surge ? g.updateSurge : 0)) * Math.max(...g.instanceTypes.map(vcpusOf)), 0);

const sts = mockClient(STSClient);
const ec2 = mockClient(EC2Client);
const quotas = mockClient(ServiceQuotasClient);
const eks = mockClient(EKSClient);
const rds = mockClient(RDSClient);
const s3 = mockClient(S3Client);
const iam = mockClient(IAMClient);
const route53 = mockClient(Route53Client);
const elasticache = mockClient(ElastiCacheClient);
const awsError = (name: string, status = 400) =>
  Object.assign(new Error(`${name} (mock)`), { name, $metadata: { httpStatusCode: status } });

/** A fresh account in us-east-1: standard quota 640, G quota 0, nothing of this stack's names taken. */
function freshAccount(options: { zonesWithoutGpu?: string[] } = {}) {
  for (const m of [sts, ec2, quotas, eks, rds, s3, iam, route53, elasticache]) m.reset();
  sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/deployer/ci` });
  ec2.on(DescribeInstanceTypesCommand).callsFake((input: { InstanceTypes: string[] }) => ({
    InstanceTypes: input.InstanceTypes.map((t) => ({ InstanceType: t, VCpuInfo: { DefaultVCpus: vcpusOf(t) } })),
  }));
  const zones = mockZones("us-east-1");
  ec2
    .on(DescribeAvailabilityZonesCommand)
    .resolves({ AvailabilityZones: zones.map((z) => ({ ZoneName: z.name, ZoneId: z.zoneId, State: "available" })) });
  ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [] });
  ec2.on(DescribeInstanceTypeOfferingsCommand).callsFake((input: { Filters: { Values: string[] }[] }) => ({
    InstanceTypeOfferings: zones.flatMap((z) =>
      input.Filters[0].Values.filter((t) => !(/^g/.test(t) && (options.zonesWithoutGpu ?? ["use1-az6"]).includes(z.zoneId))).map(
        (t) => ({ InstanceType: t, Location: z.zoneId, LocationType: "availability-zone-id" }),
      ),
    ),
  }));
  quotas.on(GetServiceQuotaCommand, { QuotaCode: "L-1216C47A" }).resolves({ Quota: { QuotaCode: "L-1216C47A", Value: 640 } });
  quotas.on(GetServiceQuotaCommand, { QuotaCode: "L-DB2E81BA" }).resolves({ Quota: { QuotaCode: "L-DB2E81BA", Value: 0 } });
  eks.on(DescribeClusterCommand).rejects(awsError("ResourceNotFoundException", 404));
  eks.on(DescribeAddonVersionsCommand).callsFake((input: { addonName: string; kubernetesVersion: string }) => ({
    addons: [
      {
        addonName: input.addonName,
        addonVersions: [
          {
            addonVersion: "v1.0.1-eksbuild.1",
            compatibilities: [{ clusterVersion: input.kubernetesVersion, defaultVersion: false }],
          },
          {
            addonVersion: "v1.0.0-eksbuild.2",
            compatibilities: [{ clusterVersion: input.kubernetesVersion, defaultVersion: true }],
          },
        ],
      },
    ],
  }));
  rds.on(DescribeDBInstancesCommand).rejects(awsError("DBInstanceNotFoundFault", 404));
  rds.on(DescribeDBEngineVersionsCommand).resolves({
    DBEngineVersions: [
      { EngineVersion: "15.15", DBParameterGroupFamily: "postgres15" },
      { EngineVersion: "16.11", DBParameterGroupFamily: "postgres16" },
      { EngineVersion: "17.7", DBParameterGroupFamily: "postgres17" },
    ],
  });
  elasticache.on(DescribeCacheEngineVersionsCommand).resolves({
    CacheEngineVersions: [
      { Engine: "valkey", EngineVersion: "7.2", CacheParameterGroupFamily: "valkey7" },
      { Engine: "valkey", EngineVersion: "8.0", CacheParameterGroupFamily: "valkey8" },
    ],
  });
  s3.on(HeadBucketCommand).rejects(awsError("NotFound", 404));
  iam.on(ListOpenIDConnectProvidersCommand).resolves({ OpenIDConnectProviderList: [] });
  // The public zone of the stack's domain (Pulumi.prod.yaml names agents.example.com) is set up before a first up.
  route53.on(ListHostedZonesCommand).resolves({
    HostedZones: [{ Id: "/hostedzone/Z123", Name: "example.com.", CallerReference: "b", Config: { PrivateZone: false } }],
    IsTruncated: false,
  });
}

function publishAll(needs: StackNeeds) {
  upstream.tags.clear();
  for (const ref of needs.images) {
    const image = parseImageRef(ref);
    const host = image.registry === "docker.io" ? "registry-1.docker.io" : image.registry;
    upstream.tags.set(`${host}/${image.repository}:${image.tag}`, `sha256:${"ab".repeat(32)}`);
  }
}

const byCheck = (results: CheckResult[], prefix: string) => results.filter((r) => r.check.startsWith(prefix));
beforeEach(() => freshAccount());

test("a fresh account: the G-family quota of 0 fails with its code and the request command; the rest passes", async () => {
  const needs = prodNeeds();
  publishAll(needs);
  const results = await runPreflight(needs, http);
  const failed = results.filter((r) => r.status === "fail");
  assert.deepEqual(
    failed.map((r) => r.check),
    ["quota: On-Demand G and VT vCPUs (L-DB2E81BA)"],
    renderTable(results),
  );
  const gpu = maxVcpus(needs, /^g/);
  const gpuInUpdate = maxVcpus(needs, /^g/, true);
  // Pinned, not only read back from needsOf: prod's 3 g5.2xlarge at most, 8 vCPUs each, and a node update's 6 more
  // (the figure README's quota example asks for).
  assert.deepEqual([gpu, gpuInUpdate], [24, 72]);
  assert.match(
    failed[0].detail,
    new RegExp(`needs ${gpu} at max size .*, ${gpuInUpdate} while a node update's new nodes start, quota 0`),
  );
  assert.equal(
    failed[0].fix,
    `Request an increase: aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA --desired-value ${gpuInUpdate} --region us-east-1`,
  );
  const standard = byCheck(results, "quota: On-Demand Standard")[0];
  assert.equal(standard.status, "ok");
  assert.match(standard.detail, new RegExp(`needs ${maxVcpus(needs, /^[acdhimrtz]/)} at max size`));
  assert.equal(results[0].detail.startsWith(`account ${ACCOUNT}`), true);
});

test("a quota that holds the groups at max but not a node update's extra nodes warns, asking for the update's figure", async () => {
  // EKS User Guide, "Understand each phase of node updates": a group's max and desired rise by twice the zones it spans.
  const needs = prodNeeds();
  const gpu = needs.groups.find((g) => g.role === "gpu")!;
  assert.equal(gpu.updateSurge, 2 * needs.azCount, "the GPU group spans every zone");
  assert.equal(needs.groups.find((g) => g.role === "vector")!.updateSurge, 2, "per-zone groups, one zone at a time");
  publishAll(needs);
  const atMax = maxVcpus(needs, /^g/);
  quotas.on(GetServiceQuotaCommand, { QuotaCode: "L-DB2E81BA" }).resolves({ Quota: { QuotaCode: "L-DB2E81BA", Value: atMax } });
  const [check] = byCheck(await runPreflight(needs, http), "quota: On-Demand G");
  assert.equal(check.status, "warn", check.detail);
  assert.match(check.detail, /a node update .* fails with NodeCreationFailure/);
  assert.match(check.fix!, new RegExp(`--desired-value ${maxVcpus(needs, /^g/, true)} `));
});

test("zones: EKS's refused zone and the zone without g5 are skipped; too few left fails naming what is missing", async () => {
  const needs = prodNeeds();
  publishAll(needs);
  const ok = byCheck(await runPreflight(needs, http), "zones:")[0];
  assert.equal(ok.status, "ok");
  assert.doesNotMatch(ok.detail, /use1-az3|use1-az6/);
  freshAccount({ zonesWithoutGpu: ["use1-az1", "use1-az2", "use1-az6"] });
  const short = byCheck(await runPreflight(needs, http), "zones:")[0];
  assert.equal(short.status, "fail");
  assert.match(short.detail, /found 2 .*use1-az1: g5/);
});

test("zones of a deployed stack: its subnets' zones are kept (a subnet cannot move), an added one is the next that qualifies", async () => {
  const needs = prodNeeds();
  publishAll(needs);
  const deployed = (zoneIds: string[]) =>
    ec2.on(DescribeSubnetsCommand).resolves({
      Subnets: zoneIds.map((z, i) => ({
        AvailabilityZoneId: z,
        Tags: [{ Key: "Name", Value: `agent-stack-prod-private-${i}` }],
      })),
    });
  // Deployed under another pick (two zones, say dev's), in an order that is not today's choice (use1-az1, az2, az4).
  deployed(["use1-az5", "use1-az2"]);
  const kept = byCheck(await runPreflight(needs, http), "zones:")[0];
  assert.equal(kept.status, "ok", kept.detail);
  assert.match(
    kept.detail,
    /^use1-az5 \(us-east-1f, the stack's subnets\), use1-az2 \(us-east-1d, the stack's subnets\), use1-az1 \(us-east-1c, added\)$/,
  );
  // A kept zone without the GPU type: the preview would stop on it, so the preflight does.
  deployed(["use1-az6", "use1-az1", "use1-az2"]);
  const lacking = byCheck(await runPreflight(needs, http), "zones:")[0];
  assert.equal(lacking.status, "fail");
  assert.match(lacking.detail, /subnets are in use1-az6, use1-az1, use1-az2 and stay there .*use1-az6: g5/);
});

test("names: a foreign RDS instance, a bucket name taken elsewhere and an untagged GitHub OIDC provider fail; our own cluster passes", async () => {
  const needs = prodNeeds({ "agent-stack:ci": JSON.stringify({ githubRepo: "acme/agents" }) });
  publishAll(needs);
  rds
    .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: "agent-stack-prod" })
    .resolves({ DBInstances: [{ DBInstanceIdentifier: "agent-stack-prod", TagList: [{ Key: "team", Value: "other" }] }] });
  s3.on(HeadBucketCommand, { Bucket: `agent-stack-prod-backups-${ACCOUNT}` }).rejects(awsError("Forbidden", 403));
  eks
    .on(DescribeClusterCommand)
    .resolves({ cluster: { name: "agent-stack-prod", tags: { project: "agent-stack", stack: "prod" } } });
  const oidcArn = `arn:aws:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`;
  iam.on(ListOpenIDConnectProvidersCommand).resolves({ OpenIDConnectProviderList: [{ Arn: oidcArn }] });
  iam.on(ListOpenIDConnectProviderTagsCommand).resolves({ Tags: [] });
  const results = await runPreflight(needs, http);
  const status = (check: string) => results.find((r) => r.check === check)?.status;
  assert.equal(status("name: RDS instance agent-stack-prod"), "fail");
  assert.equal(status(`name: S3 bucket agent-stack-prod-backups-${ACCOUNT}`), "fail");
  assert.equal(status("name: EKS cluster agent-stack-prod"), "ok");
  const oidc = results.find((r) => r.check.startsWith("account: GitHub OIDC"))!;
  assert.equal(oidc.status, "fail");
  assert.equal(
    oidc.fix,
    `Use it instead of creating another: pulumi config set --path agent-stack:ci.oidcProviderArn ${oidcArn}`,
  );
});

test("EKS add-ons: EKS's default for the cluster version is reported; an add-on with no version fails", async () => {
  const needs = prodNeeds();
  publishAll(needs);
  eks.on(DescribeAddonVersionsCommand, { addonName: "coredns" }).resolves({ addons: [] });
  const results = byCheck(await runPreflight(needs, http), "EKS add-on:");
  assert.equal(results.length, 4);
  assert.equal(results.find((r) => r.check === "EKS add-on: vpc-cni")?.detail, "EKS default v1.0.0-eksbuild.2");
  assert.equal(results.find((r) => r.check === "EKS add-on: coredns")?.status, "fail");
  // Offered, but none marked default: the program's getAddonVersion would fail the preview, so this does.
  eks.on(DescribeAddonVersionsCommand, { addonName: "kube-proxy" }).resolves({
    addons: [{ addonName: "kube-proxy", addonVersions: [{ addonVersion: "v1.35.0-eksbuild.3", compatibilities: [] }] }],
  });
  const noDefault = byCheck(await runPreflight(needs, http), "EKS add-on: kube-proxy")[0]!;
  assert.equal(noDefault.status, "fail");
  assert.match(noDefault.detail, /no default version for Kubernetes 1\.35/);
  assert.match(noDefault.fix!, /v1\.35\.0-eksbuild\.3 is offered/);
});

test("database engines: the pinned majors pass; a version the region no longer offers or a wrong family fails", async () => {
  const needs = prodNeeds();
  publishAll(needs);
  const first = await runPreflight(needs, http);
  const passing = [...byCheck(first, "RDS engine"), ...byCheck(first, "ElastiCache engine")];
  assert.deepEqual(
    passing.map((r) => [r.check, r.status]),
    [
      ["RDS engine: postgres 16", "ok"],
      ["ElastiCache engine: valkey 8.0", "ok"],
    ],
  );
  rds
    .on(DescribeDBEngineVersionsCommand)
    .resolves({ DBEngineVersions: [{ EngineVersion: "17.7", DBParameterGroupFamily: "postgres17" }] });
  elasticache
    .on(DescribeCacheEngineVersionsCommand)
    .resolves({ CacheEngineVersions: [{ EngineVersion: "8.0", CacheParameterGroupFamily: "valkey9" }] });
  const results = await runPreflight(needs, http);
  const [db] = byCheck(results, "RDS engine");
  const [kv] = byCheck(results, "ElastiCache engine");
  assert.equal(db!.status, "fail");
  assert.match(db!.detail, /postgres 16 is not offered/);
  assert.equal(kv!.status, "fail");
  assert.match(kv!.detail, /family valkey8 does not match \(offered: valkey9\)/);
  assert.match(kv!.fix!, /MANAGED_ENGINES/);
});

test("DNS: with a domain, a public hosted zone of a parent name passes; none fails with the command to create one", async () => {
  const needs = prodNeeds({ "agent-stack:domain": "agents.example.com" });
  publishAll(needs);
  route53.on(ListHostedZonesCommand).resolves({ HostedZones: [], IsTruncated: false });
  assert.equal(byCheck(await runPreflight(needs, http), "DNS:")[0].status, "fail");
  route53.on(ListHostedZonesCommand).resolves({
    HostedZones: [
      { Id: "/hostedzone/ZPRIVATE", Name: "agents.example.com.", CallerReference: "a", Config: { PrivateZone: true } },
      { Id: "/hostedzone/Z123", Name: "example.com.", CallerReference: "b", Config: { PrivateZone: false } },
    ],
    IsTruncated: false,
  });
  const dns = byCheck(await runPreflight(needs, http), "DNS:")[0];
  assert.equal(dns.status, "ok");
  assert.equal(dns.detail, "example.com (Z123)");
});

test("no credentials: runPreflight throws CredentialError (the CLI's exit 2), nothing else is asked", async () => {
  sts.on(GetCallerIdentityCommand).rejects(awsError("ExpiredToken"));
  await assert.rejects(
    runPreflight(prodNeeds(), http),
    (err) => err instanceof CredentialError && /no usable AWS credentials \(ExpiredToken/.test(err.message),
  );
  assert.equal(ec2.calls().length, 0);
});

test("charts: every pin of the stack is in its repository's index.yaml; an unreleased version fails naming the newest", async () => {
  const ok = await checkCharts(prodNeeds().charts, http);
  assert.ok(ok.length >= 9);
  for (const r of ok) assert.equal(r.status, "ok", `${r.check}: ${r.detail}`);
  const [bad] = await checkCharts(
    [{ chart: "kube-prometheus-stack", version: "81.4.5", repo: "https://prometheus-community.github.io/helm-charts" }],
    http,
  );
  assert.equal(bad.status, "fail");
  assert.match(bad.detail, /has no 81\.4\.5 \(newest: 81\.6\.9, /);
  const [missing] = await checkCharts(
    [{ chart: "dcgm-exporter", version: "4.8.3", repo: "https://nvidia.github.io/dcgm-exporter/helm-charts" }],
    http,
  );
  assert.match(missing.detail, /has no 4\.8\.3 \(newest: 4\.8\.2/);
});

test("chartVersions reads only the chart's own versions, not its dependencies'", () => {
  const yaml =
    'apiVersion: v1\nentries:\n  a:\n  - appVersion: 1\n    dependencies:\n    - name: b\n      version: 9.9.9\n    version: 1.2.3\n  - version: "1.2.2"\n  b:\n  - version: 5.0.0\ngenerated: x\n';
  assert.deepEqual(chartVersions(yaml, "a"), ["1.2.3", "1.2.2"]);
  assert.deepEqual(chartVersions(yaml, "b"), ["5.0.0"]);
  const indented =
    "entries:\n  a:\n    - name: a\n      dependencies:\n        - version: 9.9.9\n      version: 2.0.0\n    - version: 1.0.0\n";
  assert.deepEqual(chartVersions(indented, "a"), ["2.0.0", "1.0.0"]);
});

test("images: tags resolve to digests through anonymous tokens; a missing tag or a moved digest fails", async () => {
  upstream.tags.clear();
  upstream.tags.set("registry-1.docker.io/ollama/ollama:0.12.10", `sha256:${"1".repeat(64)}`);
  upstream.tags.set("registry.k8s.io/kubectl:v1.35.0", `sha256:${"2".repeat(64)}`);
  const [unpinned, pinned, moved, gone] = await checkImages(
    [
      "ollama/ollama:0.12.10",
      `registry.k8s.io/kubectl:v1.35.0@sha256:${"2".repeat(64)}`,
      `ollama/ollama:0.12.10@sha256:${"3".repeat(64)}`,
      "qdrant/qdrant:v0.0.0",
    ],
    http,
  );
  assert.equal(unpinned.status, "warn");
  assert.equal(unpinned.fix, `Pin it by digest in infra/versions.ts: ollama/ollama:0.12.10@sha256:${"1".repeat(64)}`);
  assert.equal(pinned.status, "ok");
  assert.equal(moved.status, "fail");
  assert.match(moved.detail, /now points to sha256:1{64}, pinned sha256:3{64}/);
  assert.equal(gone.status, "fail");
  assert.match(gone.detail, /tag v0\.0\.0 not found in docker\.io\/qdrant\/qdrant/);
  assert.ok(upstream.requests.includes("GET /auth/token"), "Docker Hub's token endpoint was asked");
});

test("the table shows each check's status and what to do", () => {
  const table = renderTable([
    { check: "quota: x", status: "fail", detail: "needs 48, quota 0", fix: "Request an increase: aws service-quotas ..." },
    { check: "credentials", status: "ok", detail: "account 1" },
  ]);
  assert.match(table, /^check +status +found \/ what to do$/m);
  assert.match(table, /^quota: x +FAIL +needs 48, quota 0\. Request an increase: aws service-quotas \.\.\.$/m);
  assert.match(table, /2 checks: 1 failed, 0 warnings\.$/);
});
