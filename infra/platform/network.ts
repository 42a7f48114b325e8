// VPC over 2-3 AZs (chosen by zone ID: platform/zones.ts): public subnets for the ALB and NAT, private
// subnets for nodes, RDS and ElastiCache.
// NAT: one gateway per AZ in production (an AZ outage must not cut egress), one gateway ("single") or one NAT
// instance ("instance", nat-instance.ts) where cost matters more than availability.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { serviceTrustPolicy } from "./iam.ts";
import { NatInstance } from "./nat-instance.ts";
import { EKS_UNSUPPORTED_ZONE_IDS, keptZones, nextZone, qualifyingZones } from "./zones.ts";

export interface NetworkArgs {
  clusterName: string;
  region: string;
  /** The stack's account: only its flow logs may use the flow-log role. */
  accountId: pulumi.Input<string>;
  azCount: number;
  /** Every instance type the node groups use: each chosen zone must offer all of them. */
  instanceTypes: string[];
  natGateways: "single" | "perAz" | "instance";
  flowLogs: boolean;
  cidr?: string;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
}

export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly vpcCidr: string;
  readonly publicSubnetIds: pulumi.Output<string>[];
  /** Where internet-facing load balancers live; NetworkPolicies admit the ALB from these. */
  readonly publicSubnetCidrs: pulumi.Output<string>[] = [];
  readonly privateSubnetIds: pulumi.Output<string>[];
  readonly privateRouteTableIds: pulumi.Output<string>[];
  /** The zone IDs the subnets are in (as AWS has them, not as today's choice would put them), in subnet order. */
  readonly zoneIds: pulumi.Output<string[]>;
  /**
   * What an internet-facing load balancer needs (internet gateway, public subnets and their routes). Whatever
   * makes the ALB controller create one depends on these, so `pulumi destroy` removes the ALB first.
   */
  readonly internetEdge: pulumi.Resource[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Network", name, {}, opts);
    const o = { parent: this };
    this.vpcCidr = args.cidr ?? "10.0.0.0/16";
    const [a, b] = this.vpcCidr.split(".");
    const clusterTag = { [`kubernetes.io/cluster/${args.clusterName}`]: "shared" };

    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      {
        cidrBlock: this.vpcCidr,
        enableDnsHostnames: true,
        enableDnsSupport: true,
        tags: { Name: `${args.clusterName}-vpc` },
      },
      o,
    );
    this.vpcId = vpc.id;
    // Lock down the default security group: nothing should ever use it.
    new aws.ec2.DefaultSecurityGroup(`${name}-default-sg`, { vpcId: vpc.id, ingress: [], egress: [] }, o);

    const available = aws.getAvailabilityZonesOutput(
      {
        state: "available",
        excludeZoneIds: EKS_UNSUPPORTED_ZONE_IDS,
        filters: [{ name: "zone-type", values: ["availability-zone"] }], // no Local or Wavelength Zones
      },
      o,
    );
    const offerings = aws.ec2.getInstanceTypeOfferingsOutput(
      {
        locationType: "availability-zone-id",
        filters: [{ name: "instance-type", values: args.instanceTypes }],
      },
      o,
    );
    const qualifying = pulumi
      .all([available, offerings])
      .apply(([az, off]) =>
        qualifyingZones(
          { names: az.names, zoneIds: az.zoneIds, offerings: off },
          args.instanceTypes,
          args.azCount,
          args.region,
        ).map((z) => z.zoneId),
      );
    // A subnet's zone is ForceNew (terraform-provider-aws internal/service/ec2/vpc_subnet.go: availability_zone_id) and
    // its CIDR block is fixed by its index: a subnet "moved" to another zone would be a new subnet created beside the old
    // one with the same CIDR block (EC2: InvalidSubnet.Conflict), and would take the NAT gateway, the node groups and the
    // database's and cache's subnet groups with it. The choice above moves with the tier's instance types and with AWS's
    // offerings, so each subnet ignores a new one and keeps its zone; the next pair takes the first qualifying zone no
    // earlier subnet is in (`taken`: where they are, from their outputs).
    const keepZone: pulumi.CustomResourceOptions = { ...o, ignoreChanges: ["availabilityZoneId"] };
    let taken: pulumi.Output<string[]> = pulumi.output([]);
    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id }, o);
    const publicRt = new aws.ec2.RouteTable(
      `${name}-public-rt`,
      {
        vpcId: vpc.id,
        routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }],
      },
      o,
    );

    const publicSubnets: aws.ec2.Subnet[] = [];
    const publicAssociations: aws.ec2.RouteTableAssociation[] = [];
    const natIds: pulumi.Output<string>[] = [];
    this.privateSubnetIds = [];
    this.privateRouteTableIds = [];
    for (let i = 0; i < args.azCount; i++) {
      const az = pulumi.all([qualifying, taken]).apply(([q, t]) => nextZone(q, t, args.region));
      // /20 public subnets at the bottom, /18 private subnets above them (room for many pod IPs).
      const pub = new aws.ec2.Subnet(
        `${name}-public-${i}`,
        {
          vpcId: vpc.id,
          availabilityZoneId: az,
          cidrBlock: `${a}.${b}.${i * 16}.0/20`,
          mapPublicIpOnLaunch: false,
          tags: { ...clusterTag, "kubernetes.io/role/elb": "1", Name: `${args.clusterName}-public-${i}` },
        },
        keepZone,
      );
      const pubAssoc = new aws.ec2.RouteTableAssociation(
        `${name}-public-${i}`,
        { subnetId: pub.id, routeTableId: publicRt.id },
        o,
      );
      publicSubnets.push(pub);
      publicAssociations.push(pubAssoc);
      this.publicSubnetCidrs.push(pub.cidrBlock.apply((c) => c!));
      if (args.natGateways === "instance" && i === 0) {
        const nat = new NatInstance(
          `${name}-nat`,
          { vpcId: vpc.id, vpcCidr: this.vpcCidr, subnetId: pub.id },
          { ...o, dependsOn: [igw] },
        );
        natIds.push(nat.networkInterfaceId);
      } else if (args.natGateways !== "instance" && (args.natGateways === "perAz" || i === 0)) {
        const eip = new aws.ec2.Eip(`${name}-nat-${i}`, { domain: "vpc" }, o);
        const nat = new aws.ec2.NatGateway(
          `${name}-nat-${i}`,
          { allocationId: eip.id, subnetId: pub.id },
          { ...o, dependsOn: [igw] },
        );
        natIds.push(nat.id);
      }
      const priv = new aws.ec2.Subnet(
        `${name}-private-${i}`,
        {
          vpcId: vpc.id,
          availabilityZoneId: az,
          cidrBlock: `${a}.${b}.${64 * (i + 1)}.0/18`,
          mapPublicIpOnLaunch: false,
          tags: { ...clusterTag, "kubernetes.io/role/internal-elb": "1", Name: `${args.clusterName}-private-${i}` },
        },
        keepZone,
      );
      const zone = priv.availabilityZoneId;
      taken = pulumi.all([taken, zone]).apply(([t, z]) => [...t, z]);
      const rt = new aws.ec2.RouteTable(
        `${name}-private-rt-${i}`,
        {
          vpcId: vpc.id,
          routes: [
            {
              cidrBlock: "0.0.0.0/0",
              ...(args.natGateways === "instance"
                ? { networkInterfaceId: natIds[0] }
                : { natGatewayId: natIds[Math.min(i, natIds.length - 1)] }),
            },
          ],
        },
        o,
      );
      new aws.ec2.RouteTableAssociation(`${name}-private-${i}`, { subnetId: priv.id, routeTableId: rt.id }, o);
      this.privateSubnetIds.push(priv.id);
      this.privateRouteTableIds.push(rt.id);
    }
    // A kept zone that lacks a type the node groups now use (a new tier or override) would leave its groups without
    // nodes: said by the preview, before `pulumi up` changes anything, rather than by EKS after the update.
    this.zoneIds = pulumi
      .all([taken, offerings])
      .apply(([zoneIds, off]) => keptZones(zoneIds, off, args.instanceTypes, args.region));
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.internetEdge = [vpc, igw, publicRt, ...publicSubnets, ...publicAssociations];

    // Image layers, backups and Loki chunks go to S3 without paying NAT data processing.
    new aws.ec2.VpcEndpoint(
      `${name}-s3`,
      {
        vpcId: vpc.id,
        serviceName: `com.amazonaws.${args.region}.s3`,
        vpcEndpointType: "Gateway",
        routeTableIds: this.privateRouteTableIds,
      },
      o,
    );

    if (args.flowLogs) this.addFlowLogs(name, vpc, args, o);
    this.registerOutputs({
      vpcId: this.vpcId,
      privateSubnetIds: this.privateSubnetIds,
      publicSubnetIds: this.publicSubnetIds,
      zoneIds: this.zoneIds,
    });
  }

  private addFlowLogs(name: string, vpc: aws.ec2.Vpc, args: NetworkArgs, o: pulumi.CustomResourceOptions) {
    const logs = new aws.cloudwatch.LogGroup(`${name}-flow-logs`, { retentionInDays: 30 }, o);
    const role = new aws.iam.Role(
      `${name}-flow-logs`,
      {
        // The VPC guide's "IAM role for publishing flow logs to CloudWatch Logs": source account and the flow log's ARN,
        // its ID a wildcard where the flow log is made after the role (as here: it takes the role's ARN).
        assumeRolePolicy: serviceTrustPolicy("vpc-flow-logs.amazonaws.com", {
          account: args.accountId,
          arn: pulumi.interpolate`arn:aws:ec2:${args.region}:${args.accountId}:vpc-flow-log/*`,
        }),
        permissionsBoundary: args.permissionsBoundary,
      },
      o,
    );
    new aws.iam.RolePolicy(
      `${name}-flow-logs`,
      {
        role: role.id,
        policy: logs.arn.apply((arn) =>
          JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              {
                Effect: "Allow",
                Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                Resource: [arn, `${arn}:*`],
              },
              // Also in the VPC guide's "IAM role for publishing flow logs to CloudWatch Logs"; it takes no log group.
              { Effect: "Allow", Action: ["logs:DescribeLogGroups"], Resource: "*" },
            ],
          }),
        ),
      },
      o,
    );
    new aws.ec2.FlowLog(
      `${name}-flow-logs`,
      {
        vpcId: vpc.id,
        trafficType: "REJECT",
        logDestinationType: "cloud-watch-logs",
        logDestination: logs.arn,
        iamRoleArn: role.arn,
      },
      o,
    );
  }
}
