// A NAT instance for dev: one t4g.nano (Graviton, standard CPU credits) forwarding the private subnets' egress,
// instead of a NAT gateway ($0.045/h + $0.045/GB: ~$37/month with its address, against ~$7 here).
// It trades the gateway's availability and bandwidth for cost: one instance in one AZ, no automatic replacement
// (an interruption stops egress: image pulls and model downloads, not traffic already inside the VPC), up to
// 5 Gbit/s bursts, and its OS is ours to patch (AL2023 from the public SSM parameter, replaced on the next `up`
// after a new AMI, delete-first: see the instance). Production tiers keep NAT gateways.
// The address is an Elastic IP on the instance's own network interface (created here, so the private route
// tables can point at it); source/destination checking is off on that interface so it may forward.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { NAT_INSTANCE_TYPE } from "../tiers.ts";

/** Latest Amazon Linux 2023 for arm64 (docs.aws.amazon.com/linux/al2023/ug/ec2.html#launch-from-ssm). */
const AL2023_ARM64_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64";

export interface NatInstanceArgs {
  vpcId: pulumi.Input<string>;
  vpcCidr: string;
  /** A public subnet (routed to the internet gateway). */
  subnetId: pulumi.Input<string>;
}

/** Tries of the package install, 10 s apart: the instance boots before its Elastic IP is associated (below). */
export const NAT_INSTALL_TRIES = 60;

/** Boot script: forward IPv4 and masquerade the VPC's traffic behind the instance's address, kept across reboots. */
export function natUserData(vpcCidr: string): string {
  return [
    "#!/bin/bash",
    "set -euo pipefail",
    // On a first `up` cloud-init may run before its Elastic IP is associated, with no way out to the package
    // repositories yet: one failed install ended the script under `set -e`, and the private subnets had no egress.
    `for try in $(seq ${NAT_INSTALL_TRIES}); do dnf install -y iptables-services && break; [ "$try" -lt ${NAT_INSTALL_TRIES} ] || exit 1; sleep 10; done`,
    "echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-nat.conf",
    "sysctl --system",
    "iface=$(ip -o -4 route show to default | awk '{print $5}')",
    `iptables -t nat -A POSTROUTING -o "$iface" -s ${vpcCidr} -j MASQUERADE`,
    "service iptables save",
    "systemctl enable --now iptables",
    "",
  ].join("\n");
}

export class NatInstance extends pulumi.ComponentResource {
  /** The network interface private route tables send 0.0.0.0/0 to. */
  readonly networkInterfaceId: pulumi.Output<string>;

  constructor(name: string, args: NatInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:NatInstance", name, {}, opts);
    const o = { parent: this };
    const sg = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        vpcId: args.vpcId,
        description: "NAT instance: forwards traffic from inside the VPC, nothing from outside",
        ingress: [
          { protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: [args.vpcCidr], description: "egress of the private subnets" },
        ],
        egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"], description: "to the internet" }],
      },
      o,
    );
    const eni = new aws.ec2.NetworkInterface(
      `${name}-eni`,
      {
        subnetId: args.subnetId,
        securityGroups: [sg.id],
        sourceDestCheck: false,
        description: "NAT instance primary interface",
      },
      o,
    );
    const ami = aws.ssm.getParameterOutput({ name: AL2023_ARM64_AMI_PARAMETER }, o);
    const instance = new aws.ec2.Instance(
      `${name}`,
      {
        ami: ami.value,
        instanceType: NAT_INSTANCE_TYPE,
        primaryNetworkInterface: { networkInterfaceId: eni.id },
        // Standard credits: a busy NAT is throttled to the baseline instead of billing surplus credits.
        creditSpecification: { cpuCredits: "standard" },
        metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
        rootBlockDevice: { volumeSize: 8, volumeType: "gp3", encrypted: true },
        userData: natUserData(args.vpcCidr),
        userDataReplaceOnChange: true,
        tags: { Name: `${name}-nat` },
      },
      {
        ...o,
        // Replaced delete-first: a new AMI (`ami`, ForceNew in terraform-provider-aws
        // internal/service/ec2/ec2_instance.go) or new user data replaces the instance, and the new one boots on the
        // same network interface as its primary (device index 0), which EC2 gives an instance only once the old one
        // has let it go: created first, the new one would fail (EC2: InvalidNetworkInterface.InUse) on the first `up`
        // after every AL2023 release. Egress stops for the swap, a few minutes, as for any replacement of the one NAT
        // instance.
        deleteBeforeReplace: true,
      },
    );
    new aws.ec2.Eip(`${name}-eip`, { domain: "vpc", networkInterface: eni.id }, { ...o, dependsOn: [instance] });
    this.networkInterfaceId = eni.id;
    this.registerOutputs({ networkInterfaceId: this.networkInterfaceId });
  }
}
