// Checks against the live AWS account, with the deployer's credentials (AWS SDK v3, read-only calls).
import { DescribeClusterCommand, DescribeAddonVersionsCommand, EKSClient } from "@aws-sdk/client-eks";
import {
  type _InstanceType,
  DescribeAvailabilityZonesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeSubnetsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { IAMClient, ListOpenIDConnectProvidersCommand, ListOpenIDConnectProviderTagsCommand } from "@aws-sdk/client-iam";
import { DescribeDBInstancesCommand, RDSClient } from "@aws-sdk/client-rds";
import { ListHostedZonesCommand, Route53Client } from "@aws-sdk/client-route-53";
import { GetBucketTaggingCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { GetAWSDefaultServiceQuotaCommand, GetServiceQuotaCommand, ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { PROJECT } from "../config.ts";
import { chooseZones, keptZones, nextZone, qualifyingZones } from "../platform/zones.ts";
import { message } from "./artifacts.ts";
import type { StackNeeds } from "./needs.ts";
import { quotaFor, requestCommand } from "./quotas.ts";
import type { CheckResult } from "./report.ts";

const GITHUB_OIDC_HOST = "token.actions.githubusercontent.com";

/** The credentials are missing, expired or refused: nothing else can be checked (exit 2). */
export class CredentialError extends Error {
  override name = "CredentialError";
}

export interface Identity {
  accountId: string;
  arn: string;
}

export async function whoAmI(region: string): Promise<Identity> {
  try {
    const id = await new STSClient({ region }).send(new GetCallerIdentityCommand({}));
    return { accountId: id.Account!, arn: id.Arn! };
  } catch (err) {
    throw new CredentialError(
      `no usable AWS credentials (${message(err)}). Sign in first (aws sso login, or AWS_PROFILE / AWS_ACCESS_KEY_ID), ` +
        "then run the preflight again.",
    );
  }
}

/** vCPUs each quota needs when every node group runs at its max, against the quota's value. */
export async function checkQuotas(needs: StackNeeds): Promise<CheckResult[]> {
  const ec2 = new EC2Client({ region: needs.region });
  const described = await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: needs.instanceTypes as _InstanceType[] }));
  const vcpus = new Map<string, number>(
    (described.InstanceTypes ?? []).map((t) => [t.InstanceType!, t.VCpuInfo?.DefaultVCpus ?? 0]),
  );
  const needed = new Map<string, { name: string; vcpus: number; inUpdate: number; groups: string[] }>();
  const results: CheckResult[] = [];
  for (const g of needs.groups) {
    const quota = quotaFor(g.instanceTypes[0], g.spot);
    if (!quota) {
      results.push({
        check: `quota: ${g.role} nodes`,
        status: "warn",
        detail: `no vCPU quota known for ${g.instanceTypes[0]}`,
        fix: "Check its EC2 quota in the Service Quotas console",
      });
      continue;
    }
    const per = Math.max(...g.instanceTypes.map((t) => vcpus.get(t) ?? 0));
    const entry = needed.get(quota.code) ?? { name: quota.name, vcpus: 0, inUpdate: 0, groups: [] };
    entry.vcpus += per * g.max;
    entry.inUpdate += per * (g.max + g.updateSurge);
    entry.groups.push(`${g.role} ${g.max}x${per}`);
    needed.set(quota.code, entry);
  }
  const sq = new ServiceQuotasClient({ region: needs.region });
  for (const [code, need] of needed) {
    const value = await quotaValue(sq, code);
    const check = `quota: ${need.name.replace(/^Running /, "").replace(/ instances$/, "")} vCPUs (${code})`;
    const detail = `needs ${need.vcpus} at max size (${need.groups.join(", ")}), ${need.inUpdate} while a node update's new nodes start, quota ${value}`;
    const request = `Request an increase: ${requestCommand(code, need.inUpdate, needs.region)}`;
    results.push(
      value >= need.inUpdate
        ? { check, status: "ok", detail: `${detail}; instances already running elsewhere in the account count too` }
        : value >= need.vcpus
          ? {
              check,
              status: "warn",
              detail: `${detail}: a node update (launch template, Kubernetes version) fails with NodeCreationFailure`,
              fix: request,
            }
          : { check, status: "fail", detail, fix: request },
    );
  }
  return results;
}

async function quotaValue(sq: ServiceQuotasClient, code: string): Promise<number> {
  try {
    return (await sq.send(new GetServiceQuotaCommand({ ServiceCode: "ec2", QuotaCode: code }))).Quota?.Value ?? 0;
  } catch (err) {
    if ((err as Error).name !== "NoSuchResourceException") throw err;
    return (await sq.send(new GetAWSDefaultServiceQuotaCommand({ ServiceCode: "ec2", QuotaCode: code }))).Quota?.Value ?? 0;
  }
}

/**
 * The stack's zones exist in this account and offer its instance types, by the program's rule (platform/zones.ts): a
 * new stack's are chosen; an existing stack's subnets stay in their zones (found by the stack's tags), and an added
 * zone is the first qualifying one they are not in.
 */
export async function checkZones(needs: StackNeeds): Promise<CheckResult> {
  const ec2 = new EC2Client({ region: needs.region });
  const check = `zones: ${needs.azCount} offering ${needs.instanceTypes.join(", ")}`;
  const zones = await ec2.send(
    new DescribeAvailabilityZonesCommand({
      Filters: [
        { Name: "zone-type", Values: ["availability-zone"] },
        { Name: "state", Values: ["available"] },
      ],
    }),
  );
  const offerings = { instanceTypes: [] as string[], locations: [] as string[] };
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeInstanceTypeOfferingsCommand({
        LocationType: "availability-zone-id",
        Filters: [{ Name: "instance-type", Values: needs.instanceTypes }],
        NextToken: token,
      }),
    );
    for (const o of page.InstanceTypeOfferings ?? []) {
      offerings.instanceTypes.push(o.InstanceType!);
      offerings.locations.push(o.Location!);
    }
    token = page.NextToken;
  } while (token);
  const list = zones.AvailabilityZones ?? [];
  const facts = { names: list.map((z) => z.ZoneName!), zoneIds: list.map((z) => z.ZoneId!), offerings };
  const nameOf = (zoneId: string) => facts.names[facts.zoneIds.indexOf(zoneId)] ?? "?";
  try {
    const kept = await stackSubnetZones(ec2, needs.stack);
    if (kept.length === 0) {
      const chosen = chooseZones(facts, needs.instanceTypes, needs.azCount, needs.region);
      return { check, status: "ok", detail: chosen.map((z) => `${z.zoneId} (${z.name})`).join(", ") };
    }
    const zoneIds = [...keptZones(kept, offerings, needs.instanceTypes, needs.region)];
    if (zoneIds.length < needs.azCount) {
      const qualifying = qualifyingZones(facts, needs.instanceTypes, needs.azCount, needs.region).map((z) => z.zoneId);
      while (zoneIds.length < needs.azCount) zoneIds.push(nextZone(qualifying, zoneIds, needs.region));
    }
    const label = (z: string) => `${z} (${nameOf(z)}${kept.includes(z) ? ", the stack's subnets" : ", added"})`;
    return { check, status: "ok", detail: zoneIds.map(label).join(", ") };
  } catch (err) {
    return { check, status: "fail", detail: message(err) };
  }
}

/** Zone IDs of the stack's private subnets (tagged project and stack by the provider's default tags), in index order. */
async function stackSubnetZones(ec2: EC2Client, stack: string): Promise<string[]> {
  const found = await ec2.send(
    new DescribeSubnetsCommand({
      Filters: [
        { Name: "tag:project", Values: [PROJECT] },
        { Name: "tag:stack", Values: [stack] },
        { Name: "tag:kubernetes.io/role/internal-elb", Values: ["1"] },
      ],
    }),
  );
  const subnets = (found?.Subnets ?? []).map((s) => ({
    zoneId: s.AvailabilityZoneId!,
    name: s.Tags?.find((t) => t.Key === "Name")?.Value ?? "",
  }));
  const index = (name: string) => Number(/-(\d+)$/.exec(name)?.[1] ?? 0);
  return [...new Set(subnets.sort((a, b) => index(a.name) - index(b.name)).map((s) => s.zoneId))];
}

const ownedBy = (tags: { key?: string; value?: string }[], stack: string) =>
  tags.some((t) => t.key === "project" && t.value === PROJECT) && tags.some((t) => t.key === "stack" && t.value === stack);

function clash(check: string, what: string, owned: boolean, fix: string): CheckResult {
  return owned
    ? { check, status: "ok", detail: `${what} exists and carries this stack's tags (project=${PROJECT}, stack=…)` }
    : { check, status: "fail", detail: `${what} already exists and is not this stack's`, fix };
}

/** Names the stack will create that already exist (account-wide, regional or global). */
export async function checkClashes(needs: StackNeeds, identity: Identity): Promise<CheckResult[]> {
  const checks: Promise<CheckResult>[] = [];
  const otherStack = "Pick another stack name, or delete/import the existing one";

  checks.push(
    (async () => {
      const check = `name: EKS cluster ${needs.clusterName}`;
      try {
        const { cluster } = await new EKSClient({ region: needs.region }).send(
          new DescribeClusterCommand({ name: needs.clusterName }),
        );
        return clash(
          check,
          "the cluster",
          ownedBy(
            Object.entries(cluster?.tags ?? {}).map(([key, value]) => ({ key, value })),
            needs.stack,
          ),
          otherStack,
        );
      } catch (err) {
        if ((err as Error).name === "ResourceNotFoundException") return { check, status: "ok", detail: "free" };
        throw err;
      }
    })(),
  );

  for (const id of needs.dbIdentifiers) {
    checks.push(
      (async () => {
        const check = `name: RDS instance ${id}`;
        try {
          const { DBInstances } = await new RDSClient({ region: needs.region }).send(
            new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }),
          );
          const tags = (DBInstances?.[0]?.TagList ?? []).map((t) => ({ key: t.Key, value: t.Value }));
          return clash(check, "the instance", ownedBy(tags, needs.stack), otherStack);
        } catch (err) {
          if ((err as Error).name === "DBInstanceNotFoundFault") return { check, status: "ok", detail: "free" };
          throw err;
        }
      })(),
    );
  }

  const s3 = new S3Client({ region: needs.region });
  for (const bucket of needs.bucketNames(identity.accountId)) {
    checks.push(
      (async () => {
        const check = `name: S3 bucket ${bucket}`;
        try {
          await s3.send(new HeadBucketCommand({ Bucket: bucket }));
        } catch (err) {
          const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
          if (status === 404 || (err as Error).name === "NotFound") return { check, status: "ok", detail: "free" };
          if (status === 403) return { check, status: "fail", detail: "the name is taken by another account", fix: otherStack };
          throw err;
        }
        let tags: { key?: string; value?: string }[] = [];
        try {
          tags = ((await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet ?? []).map((t) => ({
            key: t.Key,
            value: t.Value,
          }));
        } catch {
          // NoSuchTagSet: an untagged bucket is not ours.
        }
        return clash(check, "the bucket", ownedBy(tags, needs.stack), otherStack);
      })(),
    );
  }

  if (needs.githubOidc !== "none") checks.push(checkGithubOidc(needs));
  return Promise.all(
    checks.map((p, i) =>
      p.catch(
        (err): CheckResult => ({
          check: `name check ${i + 1}`,
          status: "fail",
          detail: message(err),
          fix: "Grant the deployer read access (eks:DescribeCluster, rds:DescribeDBInstances, s3:ListBucket, iam:ListOpenIDConnectProviders)",
        }),
      ),
    ),
  );
}

/** Exactly one owner of the account-wide GitHub OIDC provider: a stack that would create it must not find one. */
async function checkGithubOidc(needs: StackNeeds): Promise<CheckResult> {
  const iam = new IAMClient({ region: needs.region });
  const check = `account: GitHub OIDC provider (${GITHUB_OIDC_HOST})`;
  const { OpenIDConnectProviderList } = await iam.send(new ListOpenIDConnectProvidersCommand({}));
  const arn = (OpenIDConnectProviderList ?? []).map((p) => p.Arn!).find((a) => a.endsWith(`/${GITHUB_OIDC_HOST}`));
  if (needs.githubOidc === "existing") {
    return arn
      ? { check, status: "ok", detail: `exists (${arn}); the stack uses it` }
      : {
          check,
          status: "fail",
          detail: "ci.oidcProviderArn is set but the account has no such provider",
          fix: "Unset agent-stack:ci.oidcProviderArn so this stack creates it, or create it first",
        };
  }
  if (!arn) return { check, status: "ok", detail: "none yet; this stack creates it" };
  const { Tags } = await iam.send(new ListOpenIDConnectProviderTagsCommand({ OpenIDConnectProviderArn: arn }));
  return clash(
    check,
    `the provider (${arn})`,
    ownedBy(
      (Tags ?? []).map((t) => ({ key: t.Key, value: t.Value })),
      needs.stack,
    ),
    `Use it instead of creating another: pulumi config set --path agent-stack:ci.oidcProviderArn ${arn}`,
  );
}

/**
 * Each managed add-on has a version for the cluster's Kubernetes version: the pinned one, or else a default, which the
 * program takes (cluster.ts, getAddonVersion: the provider finds the version marked default and fails without one).
 */
export async function checkAddons(needs: StackNeeds): Promise<CheckResult[]> {
  const eks = new EKSClient({ region: needs.region });
  return Promise.all(
    Object.entries(needs.addons).map(async ([name, pinned]): Promise<CheckResult> => {
      const check = `EKS add-on: ${name}${pinned ? ` ${pinned}` : ""}`;
      const { addons } = await eks.send(
        new DescribeAddonVersionsCommand({ addonName: name, kubernetesVersion: needs.kubernetesVersion }),
      );
      const versions = addons?.[0]?.addonVersions ?? [];
      const isDefault = (v: (typeof versions)[number]) =>
        v.compatibilities?.some((c) => c.clusterVersion === needs.kubernetesVersion && c.defaultVersion);
      const byDefault = versions.find(isDefault)?.addonVersion;
      const fallback = byDefault ?? versions[0]?.addonVersion;
      if (!fallback)
        return {
          check,
          status: "fail",
          detail: `no version for Kubernetes ${needs.kubernetesVersion}`,
          fix: "Use a Kubernetes version EKS supports (agent-stack:kubernetesVersion)",
        };
      if (!pinned && !byDefault)
        return {
          check,
          status: "fail",
          detail: `no default version for Kubernetes ${needs.kubernetesVersion}, which the program takes when none is pinned`,
          fix: `Pin one (${fallback} is offered) in infra/versions.ts (EKS_ADDONS)`,
        };
      if (pinned && !versions.some((v) => v.addonVersion === pinned)) {
        return {
          check,
          status: "fail",
          detail: `${pinned} is not offered for Kubernetes ${needs.kubernetesVersion}`,
          fix: `Pin one that is (default: ${fallback}) in infra/versions.ts (EKS_ADDONS)`,
        };
      }
      return { check, status: "ok", detail: pinned ? "offered" : `EKS default ${fallback}` };
    }),
  );
}

/** With a domain: a public hosted zone in this account serves it (or a parent of it). */
export async function checkHostedZone(needs: StackNeeds): Promise<CheckResult | undefined> {
  if (!needs.domain) return undefined;
  const check = `DNS: hosted zone for ${needs.domain}`;
  const route53 = new Route53Client({ region: "us-east-1" });
  const zones: { name: string; id: string }[] = [];
  let marker: string | undefined;
  do {
    const page = await route53.send(new ListHostedZonesCommand({ Marker: marker }));
    for (const z of page.HostedZones ?? [])
      if (!z.Config?.PrivateZone) zones.push({ name: z.Name!.replace(/\.$/, ""), id: z.Id! });
    marker = page.IsTruncated ? page.NextMarker : undefined;
  } while (marker);
  const match = zones
    .filter((z) => needs.domain === z.name || needs.domain!.endsWith(`.${z.name}`))
    .sort((a, b) => b.name.length - a.name.length)[0];
  return match
    ? { check, status: "ok", detail: `${match.name} (${match.id.replace("/hostedzone/", "")})` }
    : {
        check,
        status: "fail",
        detail: "no public hosted zone in this account serves it",
        fix: `Create one (aws route53 create-hosted-zone --name ${needs.domain} --caller-reference $(date +%s)) and delegate it, or unset agent-stack:domain`,
      };
}
