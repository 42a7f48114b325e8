// Exposure: databases and caches stay private, nothing but a load balancer's 80/443 is open to the world, the
// EKS API endpoint is reachable only as configured, S3 buckets block public access.
import * as aws from "@pulumi/aws";
import { validateResourceOfType, type ResourceValidationPolicy, type StackValidationPolicy } from "@pulumi/policy";
import { ANY_IPV4, ANY_IPV6, cidrContains } from "../lib/cidr.ts";
import { isRelaxed, tierOf, TIER_CONFIG_SCHEMA, type TierConfig } from "../lib/tier.ts";
import { ofTypes, referencedBy, validateResourceOfTypes } from "../lib/validate.ts";
import { asArray, asNumber, asRecord, isFalse, isTrue } from "../lib/values.ts";
import { S3_BUCKET_TYPES } from "./encryption.ts";

export const rdsNotPublic: ResourceValidationPolicy = {
  name: "rds-not-public",
  description: "RDS instances are not publicly accessible.",
  enforcementLevel: "mandatory",
  validateResource: validateResourceOfType(aws.rds.Instance, (db, _args, report) => {
    if (isTrue(db.publiclyAccessible)) report("instance is publicly accessible: set publiclyAccessible: false.");
  }),
};

export const elasticachePrivate: ResourceValidationPolicy = {
  name: "elasticache-private",
  description:
    "ElastiCache replication groups sit in our own subnets behind our own security groups (not the default VPC or security group).",
  enforcementLevel: "mandatory",
  validateResource: validateResourceOfType(aws.elasticache.ReplicationGroup, (group, _args, report) => {
    if (!group.subnetGroupName)
      report("no subnetGroupName: the cache would land in the default VPC; use a subnet group of private subnets.");
    if (asArray(group.securityGroupIds).length === 0 && asArray(group.securityGroupNames).length === 0) {
      report("no securityGroupIds: the cache would use the VPC's default security group.");
    }
  }),
};

interface IngressRule {
  protocol: string;
  fromPort?: number;
  toPort?: number;
  cidrs: string[];
}

interface WorldIngressConfig {
  publicPorts: number[];
  loadBalancerPattern: string;
}

function worldOpen(rule: IngressRule): boolean {
  return rule.cidrs.some((c) => c === ANY_IPV4 || c === ANY_IPV6);
}

/** Only TCP on single ports from the list (an ALB's listeners) may face the world. */
function onlyPublicPorts(rule: IngressRule, publicPorts: number[]): boolean {
  const tcp = rule.protocol === "tcp" || rule.protocol === "6";
  return tcp && rule.fromPort !== undefined && rule.fromPort === rule.toPort && publicPorts.includes(rule.fromPort);
}

function describePorts(rule: IngressRule): string {
  if (rule.protocol === "-1" || rule.protocol === "all") return "all traffic";
  return rule.fromPort === rule.toPort ? `${rule.protocol}/${rule.fromPort}` : `${rule.protocol}/${rule.fromPort}-${rule.toPort}`;
}

function checkIngress(rules: IngressRule[], isLoadBalancer: boolean, config: WorldIngressConfig, report: (m: string) => void) {
  for (const rule of rules.filter(worldOpen)) {
    if (isLoadBalancer && onlyPublicPorts(rule, config.publicPorts)) continue;
    const allowed = `only a load balancer's security group may open ${config.publicPorts.join("/")} to the world`;
    report(
      `ingress ${describePorts(rule)} is open to ${rule.cidrs.filter((c) => c === ANY_IPV4 || c === ANY_IPV6).join(", ")}; ${allowed}. Allow a security group or a narrower CIDR instead.`,
    );
  }
}

function fromSecurityGroupEntry(entry: any): IngressRule {
  return {
    protocol: String(entry.protocol ?? ""),
    fromPort: asNumber(entry.fromPort),
    toPort: asNumber(entry.toPort),
    cidrs: [...asArray<string>(entry.cidrBlocks), ...asArray<string>(entry.ipv6CidrBlocks)],
  };
}

function looksLikeLoadBalancer(pattern: string, ...labels: unknown[]): boolean {
  const re = new RegExp(pattern, "i");
  return labels.some((l) => typeof l === "string" && re.test(l));
}

export const noWorldIngress: ResourceValidationPolicy = {
  name: "no-world-ingress",
  description:
    "No security group admits 0.0.0.0/0 or ::/0, except a load balancer's security group on its listener ports (80/443).",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      publicPorts: {
        type: "array",
        items: { type: "integer" },
        default: [80, 443],
        description: "Ports a load balancer may open to the world.",
      },
      loadBalancerPattern: {
        type: "string",
        default: "(^|[^a-z])(alb|nlb|elb|lb|load[- ]?balancer)([^a-z]|$)",
        description:
          "Regular expression (case-insensitive) on the resource name, group name, description or Name tag that marks a load balancer's security group.",
      },
    },
  },
  validateResource: [
    validateResourceOfTypes(
      ["aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"],
      (sg, args, report) => {
        const config = args.getConfig<WorldIngressConfig>();
        const lb = looksLikeLoadBalancer(config.loadBalancerPattern, args.name, sg.name, sg.description, asRecord(sg.tags).Name);
        checkIngress(asArray(sg.ingress).map(fromSecurityGroupEntry), lb, config, report);
      },
    ),
    validateResourceOfType(aws.ec2.SecurityGroupRule, (rule, args, report) => {
      if (rule.type !== "ingress") return;
      const config = args.getConfig<WorldIngressConfig>();
      checkIngress(
        [fromSecurityGroupEntry(rule)],
        looksLikeLoadBalancer(config.loadBalancerPattern, args.name, rule.description),
        config,
        report,
      );
    }),
    validateResourceOfType(aws.vpc.SecurityGroupIngressRule, (rule, args, report) => {
      const config = args.getConfig<WorldIngressConfig>();
      const entry: IngressRule = {
        protocol: String(rule.ipProtocol),
        fromPort: asNumber(rule.fromPort),
        toPort: asNumber(rule.toPort),
        cidrs: [rule.cidrIpv4, rule.cidrIpv6].filter((c): c is string => typeof c === "string"),
      };
      const lb = looksLikeLoadBalancer(config.loadBalancerPattern, args.name, rule.description, asRecord(rule.tags).Name);
      checkIngress([entry], lb, config, report);
    }),
  ],
};

/** The CIDRs that reach the public endpoint; EKS's default when unset is the whole internet. */
function publicCidrsOf(vpcConfig: any): string[] {
  if (isFalse(vpcConfig?.endpointPublicAccess)) return [];
  const cidrs = asArray<string>(vpcConfig?.publicAccessCidrs);
  return cidrs.length > 0 ? cidrs : [ANY_IPV4];
}

export const eksEndpointAccess: ResourceValidationPolicy = {
  name: "eks-endpoint-access",
  description: "The EKS API endpoint is reachable privately from the VPC, and publicly only from the configured CIDRs.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      allowedPublicAccessCidrs: {
        type: "array",
        items: { type: "string" },
        default: [ANY_IPV4],
        description:
          "CIDRs the public endpoint may admit (each publicAccessCidrs entry must lie inside one). Narrow this to your offices/VPN/runners.",
      },
    },
  },
  validateResource: validateResourceOfType(aws.eks.Cluster, (cluster, args, report) => {
    const { allowedPublicAccessCidrs } = args.getConfig<{ allowedPublicAccessCidrs: string[] }>();
    const vpc = cluster.vpcConfig as any;
    if (!isTrue(vpc?.endpointPrivateAccess)) {
      report(
        "private endpoint access is off, so nodes reach the API over the internet: set vpcConfig.endpointPrivateAccess: true.",
      );
    }
    const outside = publicCidrsOf(vpc).filter((c) => !allowedPublicAccessCidrs.some((allowed) => cidrContains(allowed, c)));
    if (outside.length > 0) {
      report(
        `public endpoint admits ${outside.join(", ")}, outside the allowed ${allowedPublicAccessCidrs.join(", ")}: set agent-stack:endpointPublicAccessCidrs.`,
      );
    }
  }),
};

export const eksEndpointNotWorldOpen: ResourceValidationPolicy = {
  name: "eks-endpoint-not-world-open",
  description:
    "Outside dev, the EKS public endpoint is not open to the whole internet (IAM still authenticates, but the API server is exposed).",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...TIER_CONFIG_SCHEMA } },
  validateResource: validateResourceOfType(aws.eks.Cluster, (cluster, args, report) => {
    const config = args.getConfig<TierConfig>();
    const tier = tierOf(config, args.provider, cluster);
    if (isRelaxed(config, tier)) return;
    if (publicCidrsOf(cluster.vpcConfig).includes(ANY_IPV4)) {
      report(
        `tier ${tier ?? "(unknown)"}: the public API endpoint is open to ${ANY_IPV4}. Turn it off (agent-stack:endpointPublicAccessCidrs: []) ` +
          'or list your runners\' egress ranges there (README "Reaching a private endpoint").',
      );
    }
  }),
};

const PUBLIC_ACCESS_FLAGS = ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"] as const;

function blocksEverything(props: Record<string, any>): boolean {
  return PUBLIC_ACCESS_FLAGS.every((flag) => isTrue(props[flag]));
}

export const s3PublicAccessBlocked: StackValidationPolicy = {
  name: "s3-public-access-blocked",
  description:
    "Every S3 bucket has a public access block with all four settings on (or the account-level block is managed in this stack).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const accountBlock = ofTypes(args.resources, ["aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"]).some((b) =>
      blocksEverything(b.props),
    );
    if (accountBlock) return;
    const blocks = ofTypes(args.resources, ["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]);
    for (const bucket of ofTypes(args.resources, S3_BUCKET_TYPES)) {
      const own = blocks.filter((b) => referencedBy(b, "bucket").some((r) => r.urn === bucket.urn));
      if (own.length === 0) {
        report(
          `bucket ${bucket.name} has no public access block: add an aws.s3.BucketPublicAccessBlock with ${PUBLIC_ACCESS_FLAGS.join(", ")} true.`,
          bucket.urn,
        );
      } else if (!own.some((b) => blocksEverything(b.props))) {
        const off = PUBLIC_ACCESS_FLAGS.filter((f) => !own.some((b) => isTrue(b.props[f])));
        report(`bucket ${bucket.name}'s public access block leaves ${off.join(", ")} off.`, bucket.urn);
      }
    }
  },
};

export const exposurePolicies = [
  rdsNotPublic,
  elasticachePrivate,
  noWorldIngress,
  eksEndpointAccess,
  eksEndpointNotWorldOpen,
  s3PublicAccessBlocked,
];
