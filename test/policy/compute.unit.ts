// EC2 / node policies, each called with a compliant and a violating resource.
import assert from "node:assert/strict";
import { test } from "node:test";
import { imdsv2Required, nodeGroupsInPrivateSubnets, noPublicIpOnNodes } from "../../policy/policies/compute.ts";
import { check, messagesFor, resource } from "./support.ts";

const template = (inputs: Record<string, unknown>) => resource("aws:ec2/launchTemplate:LaunchTemplate", "lt", inputs);

test("imdsv2-required: tokens required and hop limit 1, so pods cannot reach the node role's credentials", () => {
  assert.deepEqual(
    check(imdsv2Required, [
      template({ metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 } }),
    ]),
    [],
  );
  const [two] = check(imdsv2Required, [
    template({ metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 2 } }),
  ]);
  assert.equal(two.level, "mandatory");
  assert.match(two.message, /httpPutResponseHopLimit is 2; at most 1/);
  assert.match(
    check(imdsv2Required, [template({ metadataOptions: { httpTokens: "optional" } })])[0].message,
    /IMDSv1 is allowed/,
  );
  assert.equal(check(imdsv2Required, [template({})]).length, 1, "unset means optional");
  assert.match(
    check(imdsv2Required, [template({ metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 3 } })])[0].message,
    /hop/i,
  );
  assert.deepEqual(check(imdsv2Required, [template({ metadataOptions: { httpEndpoint: "disabled" } })]), []);
});

test("imdsv2-required: instances and node groups without a launch template", () => {
  assert.equal(check(imdsv2Required, [resource("aws:ec2/instance:Instance", "bastion", { instanceType: "t3.micro" })]).length, 1);
  assert.equal(
    check(imdsv2Required, [resource("aws:eks/nodeGroup:NodeGroup", "ng", { instanceTypes: ["c6i.large"] })]).length,
    1,
  );
  assert.deepEqual(
    check(imdsv2Required, [resource("aws:eks/nodeGroup:NodeGroup", "ng", { launchTemplate: { id: "lt-id", version: "1" } })]),
    [],
  );
});

test("no-public-ip-on-nodes: launch templates, instances and subnets", () => {
  assert.deepEqual(check(noPublicIpOnNodes, [template({ networkInterfaces: [{ associatePublicIpAddress: "false" }] })]), []);
  assert.equal(check(noPublicIpOnNodes, [template({ networkInterfaces: [{ associatePublicIpAddress: "true" }] })]).length, 1);
  assert.equal(
    check(noPublicIpOnNodes, [resource("aws:ec2/instance:Instance", "i", { associatePublicIpAddress: true })]).length,
    1,
  );
  assert.deepEqual(check(noPublicIpOnNodes, [resource("aws:ec2/subnet:Subnet", "s", { mapPublicIpOnLaunch: false })]), []);
  assert.match(
    check(noPublicIpOnNodes, [resource("aws:ec2/subnet:Subnet", "s", { mapPublicIpOnLaunch: true })])[0].message,
    /mapPublicIpOnLaunch/,
  );
});

test("node-groups-in-private-subnets: a group in a subnet routed to the internet gateway fails", () => {
  // Wired by ids the way the offline plan's mocks make them (`<name>-id`).
  const igw = resource("aws:ec2/internetGateway:InternetGateway", "igw", { vpcId: "vpc-id" });
  const publicRt = resource("aws:ec2/routeTable:RouteTable", "public-rt", {
    routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: "igw-id" }],
  });
  const privateRt = resource("aws:ec2/routeTable:RouteTable", "private-rt", {
    routes: [{ cidrBlock: "0.0.0.0/0", natGatewayId: "nat-id" }],
  });
  const pub = resource("aws:ec2/subnet:Subnet", "public-0", { cidrBlock: "10.0.0.0/20" });
  const priv = resource("aws:ec2/subnet:Subnet", "private-0", { cidrBlock: "10.0.64.0/18" });
  const assocs = [
    resource("aws:ec2/routeTableAssociation:RouteTableAssociation", "public-0", {
      subnetId: "public-0-id",
      routeTableId: "public-rt-id",
    }),
    resource("aws:ec2/routeTableAssociation:RouteTableAssociation", "private-0", {
      subnetId: "private-0-id",
      routeTableId: "private-rt-id",
    }),
  ];
  const good = resource("aws:eks/nodeGroup:NodeGroup", "general", { subnetIds: ["private-0-id"] });
  const bad = resource("aws:eks/nodeGroup:NodeGroup", "edge", { subnetIds: ["private-0-id", "public-0-id"] });
  const violations = check(nodeGroupsInPrivateSubnets, [igw, publicRt, privateRt, pub, priv, ...assocs, good, bad]);
  assert.deepEqual(messagesFor(violations, good), []);
  assert.deepEqual(messagesFor(violations, bad), ["node group edge uses public subnets public-0: use the private subnets."]);
});

test("node-groups-in-private-subnets: subnets tagged for internet-facing load balancers count as public", () => {
  const elb = resource("aws:ec2/subnet:Subnet", "lb-0", { tags: { "kubernetes.io/role/elb": "1" } });
  const group = resource("aws:eks/nodeGroup:NodeGroup", "general", { subnetIds: ["lb-0-id"] });
  assert.equal(check(nodeGroupsInPrivateSubnets, [elb, group]).length, 1);
});
