// Pulumi mocks for the offline plan and the tests: every resource gets `{...inputs, arn, id}` plus the few
// computed outputs the program reads (endpoints, OIDC issuer, node group ASG names); invokes answer the
// data sources the program uses. An invoke we do not know fails loudly rather than returning nothing.
import type * as pulumi from "@pulumi/pulumi";

export const MOCK_ACCOUNT_ID = "123456789012";

/** The ARN the mocks give a resource: what another resource (or a test) reads as its `arn` output. */
export const mockArn = (region: string, type: string, name: string): string =>
  `arn:aws:mock:${region}:${MOCK_ACCOUNT_ID}:${type.split(":").pop()}/${name}`;
export const MOCK_SECRET_PREFIX = "mock-secret-";

export interface RecordedRegistration {
  type: string;
  name: string;
  custom: boolean;
  inputs: Record<string, unknown>;
  /** In a first preview (PlanMocks `unknown`): the outputs answered, as the engine holds them for this preview. */
  outputs?: Record<string, unknown>;
}

type Outputs = (args: pulumi.runtime.MockResourceArgs, region: string) => Record<string, unknown>;

// Computed outputs per type token, beyond `{...inputs, arn, id}`.
const COMPUTED: Record<string, Outputs> = {
  "aws:eks/cluster:Cluster": ({ name: logical, inputs }, region) => {
    const name = String(inputs.name ?? logical);
    return {
      endpoint: `https://${name}.gr7.${region}.eks.amazonaws.com`,
      certificateAuthority: { data: Buffer.from("mock-ca").toString("base64") },
      identities: [{ oidcs: [{ issuer: `https://oidc.eks.${region}.amazonaws.com/id/MOCK${name.toUpperCase()}` }] }],
      vpcConfig: { ...(inputs.vpcConfig as object), clusterSecurityGroupId: `sg-${name}-cluster` },
    };
  },
  "aws:eks/nodeGroup:NodeGroup": ({ name }) => ({
    resources: [{ autoscalingGroups: [{ name: `eks-${name}-asg` }], remoteAccessSecurityGroupId: "" }],
  }),
  "aws:rds/instance:Instance": ({ name }, region) => ({
    address: `${name}.mock.${region}.rds.amazonaws.com`,
    endpoint: `${name}.mock.${region}.rds.amazonaws.com:5432`,
    port: 5432,
  }),
  "aws:elasticache/replicationGroup:ReplicationGroup": ({ name }, region) => ({
    primaryEndpointAddress: `master.${name}.mock.${region}.cache.amazonaws.com`,
    readerEndpointAddress: `replica.${name}.mock.${region}.cache.amazonaws.com`,
    port: 6379,
  }),
  "aws:ecr/repository:Repository": ({ name, inputs }, region) => ({
    repositoryUrl: `${MOCK_ACCOUNT_ID}.dkr.ecr.${region}.amazonaws.com/${inputs.name ?? name}`,
  }),
  "aws:kms/key:Key": ({ name }) => ({ keyId: `key-${name}` }),
  "aws:acm/certificate:Certificate": ({ inputs }) => ({
    domainValidationOptions: [
      {
        domainName: inputs.domainName,
        resourceRecordName: `_mock.${inputs.domainName}.`,
        resourceRecordType: "CNAME",
        resourceRecordValue: "_mock.acm-validations.aws.",
      },
    ],
  }),
  // Known values so tests can prove a generated secret never reaches a resource input in plain text.
  "random:index/randomPassword:RandomPassword": ({ name }) => ({ result: `${MOCK_SECRET_PREFIX}${name}` }),
  "aws:s3/bucketV2:BucketV2": ({ name, inputs }) => ({ bucket: inputs.bucket ?? name }),
  "aws:s3/bucket:Bucket": ({ name, inputs }) => ({ bucket: inputs.bucket ?? name }),
  "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ({ inputs }) => ({ url: inputs.url }),
  // The API server's version of the object: db-roles.ts names the Secret's in its Job's pod template.
  "kubernetes:core/v1:Secret": ({ inputs }) => ({ metadata: { ...inputs.metadata, resourceVersion: "1" } }),
  "docker:index/image:Image": ({ inputs }) => ({
    repoDigest: `${String(inputs.imageName).split(":")[0]}@sha256:${"0".repeat(64)}`,
  }),
  "docker-build:index:Image": ({ inputs }) => ({
    digest: `sha256:${"0".repeat(64)}`,
    ref: `${String((inputs.tags as string[] | undefined)?.[0] ?? "image").split(":")[0]}@sha256:${"0".repeat(64)}`,
  }),
};

type Invoke = (inputs: Record<string, any>, region: string) => Record<string, unknown>;

/**
 * Six zones whose names and IDs do not line up (as in a real account). In us-east-1 the fifth name is
 * use1-az3, which EKS refuses, and the second (use1-az6) offers no g5/g6: the first three names are a wrong pick.
 */
export function mockZones(region: string): { name: string; zoneId: string }[] {
  const prefix = { "us-east-1": "use1", "us-west-2": "usw2", "eu-west-1": "euw1" }[region] ?? region.replace(/-/g, "");
  return [4, 6, 1, 2, 3, 5].map((n, i) => ({ name: `${region}${"abcdef"[i]}`, zoneId: `${prefix}-az${n}` }));
}
export const MOCK_ZONE_WITHOUT_GPUS = 1;
const MOCK_GPU_TYPE = /^g[56]\./;

const INVOKES: Record<string, Invoke> = {
  "aws:index/getAvailabilityZones:getAvailabilityZones": (inputs, region) => {
    const zones = mockZones(region).filter((z) => !(inputs.excludeZoneIds ?? []).includes(z.zoneId));
    return { names: zones.map((z) => z.name), zoneIds: zones.map((z) => z.zoneId), id: region };
  },
  // Like the EC2 API: one (type, zone ID) pair per offering of a requested type; GPU types miss one zone.
  "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": (inputs, region) => {
    const types: string[] = inputs.filters?.find((f: { name: string }) => f.name === "instance-type")?.values ?? [];
    const pairs = mockZones(region).flatMap((z) =>
      types
        .filter((t) => !(MOCK_GPU_TYPE.test(t) && z.zoneId === mockZones(region)[MOCK_ZONE_WITHOUT_GPUS].zoneId))
        .map((t) => ({ t, zoneId: z.zoneId })),
    );
    return {
      instanceTypes: pairs.map((p) => p.t),
      locations: pairs.map((p) => p.zoneId),
      locationTypes: pairs.map(() => "availability-zone-id"),
      id: region,
    };
  },
  "aws:index/getCallerIdentity:getCallerIdentity": () => ({
    accountId: MOCK_ACCOUNT_ID,
    arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:user/mock`,
    userId: "AIDAMOCK",
    id: MOCK_ACCOUNT_ID,
  }),
  "aws:index/getRegion:getRegion": (_, region) => ({ name: region, region, id: region }),
  "aws:index/getPartition:getPartition": () => ({ partition: "aws", dnsSuffix: "amazonaws.com", id: "aws" }),
  "aws:ssm/getParameter:getParameter": (inputs) => ({
    name: inputs.name,
    value: "ami-0mock0000000000000",
    type: "String",
    id: inputs.name,
  }),
  "aws:ecr/getAuthorizationToken:getAuthorizationToken": (_, region) => ({
    userName: "AWS",
    password: "mock-ecr-password",
    authorizationToken: Buffer.from("AWS:mock-ecr-password").toString("base64"),
    proxyEndpoint: `https://${MOCK_ACCOUNT_ID}.dkr.ecr.${region}.amazonaws.com`,
    expiresAt: "2099-01-01T00:00:00Z",
    region,
    id: region,
  }),
  "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": (inputs) => {
    const host = String(inputs.url ?? "").replace(/^https:\/\//, "");
    return {
      arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:oidc-provider/${host}`,
      url: host,
      clientIdLists: ["sts.amazonaws.com"],
      id: host,
    };
  },
  // EKS's default version of an add-on for a Kubernetes version. Made up, per version, in the shape of a real one
  // (v<major.minor.patch>-eksbuild.<n>), and never sent to AWS: the real answer is the version DescribeAddonVersions
  // marks default (terraform-provider-aws internal/service/eks/addon_version_data_source.go, findAddonVersionByTwoPartKey).
  "aws:eks/getAddonVersion:getAddonVersion": (inputs) => ({
    addonName: inputs.addonName,
    kubernetesVersion: inputs.kubernetesVersion,
    version: `v${inputs.kubernetesVersion}.0-eksbuild.1`,
    id: inputs.addonName,
  }),
  "aws:iam/getPolicyDocument:getPolicyDocument": (inputs) => ({ json: JSON.stringify(inputs), id: "policy" }),
  "tls:index/getCertificate:getCertificate": () => ({
    certificates: [{ sha1Fingerprint: "9e99a48a9960b14926bb7f3b02e22da2b0ab7280" }],
    id: "cert",
  }),
};

/** The data sources the program reads (what a preview calls in AWS): a role that previews must be allowed each. */
export const INVOKE_TOKENS = Object.keys(INVOKES);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The computed outputs a preview cannot know: those the program did not give. A value it gave (an RDS port, a bucket's
 * name, the EKS cluster's vpcConfig subnets) a provider's preview keeps as given, and other resources read it known.
 */
function unknownWhereNotGiven(
  given: Record<string, unknown>,
  computed: Record<string, unknown>,
  unknown: unknown,
): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(computed).map(([key, value]) => {
      const input = given[key];
      if (input === undefined) return [key, unknown];
      return [key, isRecord(value) && isRecord(input) ? { ...input, ...unknownWhereNotGiven(input, value, unknown) } : input];
    }),
  );
}

/**
 * Records every registration and answers like the cloud would, with made-up identifiers; or, given `unknown` (the
 * SDK's unknown value), as a first `pulumi preview` of a new stack does: nothing exists yet, so every value the cloud
 * computes and the program did not give is unknown (ids, ARNs, endpoints, generated passwords), and a Kubernetes
 * object, whose provider cannot be configured before its cluster exists, has no outputs at all (see newResource).
 * Inputs stay known.
 */
export class PlanMocks implements pulumi.runtime.Mocks {
  readonly registrations: RecordedRegistration[] = [];

  constructor(
    private readonly region: string,
    private readonly unknown?: unknown,
  ) {}

  newResource(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, any> } {
    const registration: RecordedRegistration = {
      type: args.type,
      name: args.name,
      custom: args.custom ?? true,
      inputs: args.inputs,
    };
    this.registrations.push(registration);
    const computed = COMPUTED[args.type]?.(args, this.region) ?? {};
    const name = args.inputs.name ?? args.name;
    if (this.unknown !== undefined) {
      // A provider whose config is not fully known (the kubeconfig comes from the cluster) is not configured, and on a
      // preview the engine answers its Create with an empty property map, which the SDK reads as every output unknown
      // (pulumi/pulumi sdk/go/common/resource/plugin/provider_plugin.go, Create; the stack policies get that empty
      // map). An id left empty is unknown to the SDK during a preview; so is every output missing from the state.
      const unknowns = unknownWhereNotGiven(args.inputs, { arn: null, id: null, ...computed }, this.unknown);
      const outputs = args.type.startsWith("kubernetes:") ? {} : { ...args.inputs, name, ...unknowns };
      registration.outputs = outputs;
      return { id: undefined, state: outputs };
    }
    const id = `${args.name}-id`;
    const arn = mockArn(this.region, args.type, args.name);
    return { id, state: { ...args.inputs, arn, id, name, ...computed } };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
    const invoke = INVOKES[args.token];
    if (!invoke) throw new Error(`offline plan: no mock answer for invoke ${args.token}; add one in infra/plan/mocks.ts`);
    return invoke(args.inputs, this.region);
  }
}
