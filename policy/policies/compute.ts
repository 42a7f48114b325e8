// EC2 and EKS nodes: instance metadata only through IMDSv2, no public IPs, node groups in private subnets.
import * as aws from "@pulumi/aws";
import {
  validateResourceOfType,
  type PolicyResource,
  type ResourceValidationPolicy,
  type StackValidationPolicy,
} from "@pulumi/policy";
import { ofTypes, referencedBy } from "../lib/validate.ts";
import { asArray, asNumber, asRecord, isTrue } from "../lib/values.ts";

interface ImdsConfig {
  maxHopLimit: number;
}

function checkMetadataOptions(options: any, config: ImdsConfig, report: (m: string) => void) {
  if (options?.httpEndpoint === "disabled") return; // no metadata service at all
  if (options?.httpTokens !== "required") report('IMDSv1 is allowed: set metadataOptions.httpTokens: "required".');
  const hops = asNumber(options?.httpPutResponseHopLimit);
  if (hops !== undefined && hops > config.maxHopLimit) {
    report(
      `metadataOptions.httpPutResponseHopLimit is ${hops}; at most ${config.maxHopLimit} (containers should not reach node credentials).`,
    );
  }
}

export const imdsv2Required: ResourceValidationPolicy = {
  name: "imdsv2-required",
  description:
    "Instances and launch templates require IMDSv2 session tokens with a small hop limit; node groups use a launch template that says so.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      maxHopLimit: {
        type: "integer",
        minimum: 1,
        maximum: 64,
        default: 1,
        description:
          "Largest httpPutResponseHopLimit (1: only host-network processes such as kubelet and aws-node reach IMDS; pods use IRSA).",
      },
    },
  },
  validateResource: [
    validateResourceOfType(aws.ec2.LaunchTemplate, (template, args, report) => {
      checkMetadataOptions(template.metadataOptions, args.getConfig<ImdsConfig>(), report);
    }),
    validateResourceOfType(aws.ec2.Instance, (instance, args, report) => {
      checkMetadataOptions(instance.metadataOptions, args.getConfig<ImdsConfig>(), report);
    }),
    validateResourceOfType(aws.eks.NodeGroup, (group, _args, report) => {
      if (!group.launchTemplate)
        report(
          'node group has no launch template, so IMDS settings are the AMI\'s defaults: use a launch template with httpTokens: "required".',
        );
    }),
  ],
};

export const noPublicIpOnNodes: ResourceValidationPolicy = {
  name: "no-public-ip-on-nodes",
  description:
    "Instances, launch templates and subnets never hand out public IPs (the NAT gateway and load balancers face the internet).",
  enforcementLevel: "mandatory",
  validateResource: [
    validateResourceOfType(aws.ec2.LaunchTemplate, (template, _args, report) => {
      for (const nic of asArray(template.networkInterfaces)) {
        if (isTrue(nic.associatePublicIpAddress))
          report("a network interface associates a public IP: remove associatePublicIpAddress.");
      }
    }),
    validateResourceOfType(aws.ec2.Instance, (instance, _args, report) => {
      if (isTrue(instance.associatePublicIpAddress)) report("instance gets a public IP: set associatePublicIpAddress: false.");
    }),
    validateResourceOfType(aws.ec2.Subnet, (subnet, _args, report) => {
      if (isTrue(subnet.mapPublicIpOnLaunch))
        report("subnet gives every instance launched in it a public IP: set mapPublicIpOnLaunch: false.");
    }),
  ],
};

/** Subnets routed to an internet gateway, or tagged for internet-facing load balancers. */
function publicSubnets(resources: PolicyResource[]): Set<string> {
  const internetRouteTables = new Set(
    ofTypes(resources, ["aws:ec2/routeTable:RouteTable"])
      .filter((rt) => referencedBy(rt, "routes").some((r) => r.type === "aws:ec2/internetGateway:InternetGateway"))
      .map((rt) => rt.urn),
  );
  const result = new Set<string>();
  for (const assoc of ofTypes(resources, ["aws:ec2/routeTableAssociation:RouteTableAssociation"])) {
    if (referencedBy(assoc, "routeTableId").some((rt) => internetRouteTables.has(rt.urn))) {
      for (const subnet of referencedBy(assoc, "subnetId")) result.add(subnet.urn);
    }
  }
  for (const subnet of ofTypes(resources, ["aws:ec2/subnet:Subnet"])) {
    if (asRecord(subnet.props.tags)["kubernetes.io/role/elb"] === "1" || isTrue(subnet.props.mapPublicIpOnLaunch))
      result.add(subnet.urn);
  }
  return result;
}

export const nodeGroupsInPrivateSubnets: StackValidationPolicy = {
  name: "node-groups-in-private-subnets",
  description:
    "EKS node groups run only in private subnets (no route to an internet gateway, not tagged for public load balancers).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const exposed = publicSubnets(args.resources);
    for (const group of ofTypes(args.resources, ["aws:eks/nodeGroup:NodeGroup"])) {
      const bad = referencedBy(group, "subnetIds").filter((s) => exposed.has(s.urn));
      if (bad.length > 0) {
        report(
          `node group ${group.name} uses public subnets ${bad.map((s) => s.name).join(", ")}: use the private subnets.`,
          group.urn,
        );
      }
    }
  },
};

export const computePolicies = [imdsv2Required, noPublicIpOnNodes, nodeGroupsInPrivateSubnets];
