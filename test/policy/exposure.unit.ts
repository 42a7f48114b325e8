// Exposure policies, each called with a compliant and a violating resource.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  eksEndpointAccess,
  eksEndpointNotWorldOpen,
  elasticachePrivate,
  noWorldIngress,
  rdsNotPublic,
  s3PublicAccessBlocked,
} from "../../policy/policies/exposure.ts";
import { check, messagesFor, resource } from "./support.ts";

test("rds-not-public: publiclyAccessible must not be true", () => {
  const db = (publiclyAccessible: unknown) =>
    resource("aws:rds/instance:Instance", "db", { engine: "postgres", publiclyAccessible });
  assert.deepEqual(check(rdsNotPublic, [db(false)]), []);
  assert.deepEqual(check(rdsNotPublic, [db(undefined)]), []);
  assert.match(check(rdsNotPublic, [db(true)])[0].message, /publicly accessible/);
});

test("elasticache-private: needs its own subnet group and security groups", () => {
  const cache = (inputs: Record<string, unknown>) => resource("aws:elasticache/replicationGroup:ReplicationGroup", "c", inputs);
  assert.deepEqual(check(elasticachePrivate, [cache({ subnetGroupName: "private", securityGroupIds: ["sg-1"] })]), []);
  const messages = check(elasticachePrivate, [cache({})]).map((v) => v.message);
  assert.equal(messages.length, 2);
  assert.match(messages[0], /default VPC/);
  assert.match(messages[1], /default security group/);
});

const sg = (name: string, ingress: unknown[], extra: Record<string, unknown> = {}) =>
  resource("aws:ec2/securityGroup:SecurityGroup", name, { vpcId: "vpc-1", ingress, egress: [], ...extra });
const https = { protocol: "tcp", fromPort: 443, toPort: 443, cidrBlocks: ["0.0.0.0/0"] };

test("no-world-ingress: security-group references and private CIDRs are fine; 0.0.0.0/0 and ::/0 are not", () => {
  assert.deepEqual(
    check(noWorldIngress, [sg("db-sg", [{ protocol: "tcp", fromPort: 5432, toPort: 5432, securityGroups: ["sg-nodes"] }])]),
    [],
  );
  assert.deepEqual(
    check(noWorldIngress, [sg("db-sg", [{ protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: ["10.0.0.0/16"] }])]),
    [],
  );
  const [v] = check(noWorldIngress, [
    sg("db-sg", [{ protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: ["0.0.0.0/0"] }]),
  ]);
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /tcp\/5432 is open to 0\.0\.0\.0\/0/);
  assert.match(
    check(noWorldIngress, [sg("x", [{ protocol: "-1", fromPort: 0, toPort: 0, ipv6CidrBlocks: ["::/0"] }])])[0].message,
    /all traffic is open to ::\/0/,
  );
});

test("no-world-ingress: only a load balancer's group may open 80/443, and nothing else", () => {
  assert.deepEqual(check(noWorldIngress, [sg("api-alb-sg", [https, { ...https, fromPort: 80, toPort: 80 }])]), []);
  assert.deepEqual(check(noWorldIngress, [sg("web", [https], { description: "Internet-facing load balancer" })]), []);
  assert.equal(check(noWorldIngress, [sg("api-nodes", [https])]).length, 1, "not a load balancer");
  assert.equal(check(noWorldIngress, [sg("api-alb-sg", [{ ...https, fromPort: 22, toPort: 22 }])]).length, 1, "ssh on the ALB");
  assert.equal(check(noWorldIngress, [sg("api-alb-sg", [{ ...https, fromPort: 80, toPort: 443 }])]).length, 1, "a port range");
  assert.deepEqual(
    check(noWorldIngress, [sg("api-alb-sg", [{ ...https, fromPort: 8443, toPort: 8443 }])], { config: { publicPorts: [8443] } }),
    [],
  );
});

test("no-world-ingress: standalone ingress rules are checked too", () => {
  const rule = resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "nodes-ssh", {
    securityGroupId: "sg-1",
    ipProtocol: "tcp",
    fromPort: 22,
    toPort: 22,
    cidrIpv4: "0.0.0.0/0",
  });
  assert.equal(check(noWorldIngress, [rule]).length, 1);
  const legacy = resource("aws:ec2/securityGroupRule:SecurityGroupRule", "nodes-egress", {
    type: "egress",
    securityGroupId: "sg-1",
    protocol: "-1",
    fromPort: 0,
    toPort: 0,
    cidrBlocks: ["0.0.0.0/0"],
  });
  assert.deepEqual(check(noWorldIngress, [legacy]), [], "egress is not ingress");
});

const cluster = (vpcConfig: Record<string, unknown>) => resource("aws:eks/cluster:Cluster", "eks", { name: "c", vpcConfig });

test("eks-endpoint-access: private access on, public CIDRs inside the configured allow-list", () => {
  const office = { endpointPrivateAccess: true, endpointPublicAccess: true, publicAccessCidrs: ["203.0.113.0/24"] };
  assert.deepEqual(check(eksEndpointAccess, [cluster(office)]), []);
  assert.deepEqual(check(eksEndpointAccess, [cluster(office)], { config: { allowedPublicAccessCidrs: ["203.0.0.0/16"] } }), []);
  const [outside] = check(eksEndpointAccess, [cluster(office)], { config: { allowedPublicAccessCidrs: ["198.51.100.0/24"] } });
  assert.match(outside.message, /203\.0\.113\.0\/24, outside the allowed 198\.51\.100\.0\/24/);
  // Unset publicAccessCidrs means the whole internet.
  assert.equal(
    check(eksEndpointAccess, [cluster({ endpointPrivateAccess: true })], { config: { allowedPublicAccessCidrs: ["10.0.0.0/8"] } })
      .length,
    1,
  );
  assert.match(
    check(eksEndpointAccess, [cluster({ endpointPrivateAccess: false, endpointPublicAccess: false })])[0].message,
    /endpointPrivateAccess/,
  );
});

test("eks-endpoint-not-world-open: mandatory outside dev; dev and closed endpoints pass", () => {
  const open = cluster({ endpointPrivateAccess: true, endpointPublicAccess: true, publicAccessCidrs: ["0.0.0.0/0"] });
  const [v] = check(eksEndpointNotWorldOpen, [open], { tier: "medium" });
  assert.equal(v.level, "mandatory");
  assert.match(v.message, /endpointPublicAccessCidrs: \[\]/);
  assert.equal(
    check(eksEndpointNotWorldOpen, [cluster({ endpointPrivateAccess: true })], { tier: "small" }).length,
    1,
    "unset CIDRs: world-open",
  );
  assert.deepEqual(
    check(
      eksEndpointNotWorldOpen,
      [cluster({ endpointPrivateAccess: true, endpointPublicAccess: true, publicAccessCidrs: ["203.0.113.0/24"] })],
      { tier: "large" },
    ),
    [],
  );
  assert.match(v.message, /tier medium/);
  assert.deepEqual(check(eksEndpointNotWorldOpen, [open], { tier: "dev" }), []);
  assert.deepEqual(check(eksEndpointNotWorldOpen, [cluster({ endpointPrivateAccess: true, endpointPublicAccess: false })]), []);
  assert.equal(check(eksEndpointNotWorldOpen, [open], { tier: undefined }).length, 1, "an unknown tier is not relaxed");
});

test("s3-public-access-blocked: each bucket needs a block with all four flags, or the account-level block", () => {
  const bucket = resource("aws:s3/bucket:Bucket", "loki", { bucket: "agent-loki" });
  const other = resource("aws:s3/bucketV2:BucketV2", "backups", {});
  const all = { blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true };
  const block = resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "loki-pab", { bucket: "loki-id", ...all });
  const partial = resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "backups-pab", {
    bucket: "backups-id",
    ...all,
    blockPublicPolicy: false,
  });
  const violations = check(s3PublicAccessBlocked, [bucket, other, block, partial]);
  assert.deepEqual(messagesFor(violations, bucket), []);
  assert.match(messagesFor(violations, other)[0], /leaves blockPublicPolicy off/);
  assert.match(messagesFor(check(s3PublicAccessBlocked, [bucket]), bucket)[0], /no public access block/);
  const account = resource("aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock", "account", all);
  assert.deepEqual(check(s3PublicAccessBlocked, [bucket, other, account]), []);
});
