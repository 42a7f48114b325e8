// ElastiCache (Valkey, Redis-compatible and 20 % cheaper per node than Redis OSS) with in-transit TLS and an
// auth token, at-rest encryption, failover + Multi-AZ from two nodes up, volatile-lru (see the parameter group).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { CACHE_MAINTENANCE, CACHE_SNAPSHOT_START } from "../tier-schema.ts";
import { utcWindow } from "../time.ts";
import { MANAGED_ENGINES } from "../versions.ts";
import * as random from "@pulumi/random";
import type { Tier } from "../tiers.ts";
import { storedSecret } from "./secrets.ts";

export interface CacheArgs {
  replicationGroupId: string;
  vpcId: pulumi.Input<string>;
  subnetIds: pulumi.Input<string>[];
  clientSecurityGroupId: pulumi.Input<string>;
  kmsKeyArn: pulumi.Input<string>;
  sizes: Tier["cache"];
  /** The stack's IANA time zone: snapshots and maintenance run at night there. */
  timeZone: string;
}

export const CACHE_PORT = 6379;

export class Cache extends pulumi.ComponentResource {
  readonly primaryAddress: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly secretArn: pulumi.Output<string>;
  /** Secret output: the generated auth token, for the app's rediss:// URL. */
  readonly authToken: pulumi.Output<string>;

  constructor(name: string, args: CacheArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Cache", name, {}, opts);
    const o = { parent: this };
    const s = args.sizes;
    const replicated = s.nodes >= 2;

    // ElastiCache auth tokens: 16-128 printable characters, no '@', '"' or '/'.
    const token = new random.RandomPassword(`${name}-auth`, { length: 48, special: false }, o);
    this.authToken = token.result;

    const subnets = new aws.elasticache.SubnetGroup(`${name}-subnets`, { subnetIds: args.subnetIds }, o);
    const sg = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        vpcId: args.vpcId,
        description: "Valkey/Redis from the EKS nodes only",
        ingress: [
          {
            protocol: "tcp",
            fromPort: CACHE_PORT,
            toPort: CACHE_PORT,
            securityGroups: [args.clientSecurityGroupId],
            description: "EKS nodes",
          },
        ],
        egress: [],
      },
      o,
    );
    const params = new aws.elasticache.ParameterGroup(
      `${name}-params`,
      {
        family: MANAGED_ENGINES.cache.family,
        description: "agent-stack: evict least-recently-used keys with an expiry when full",
        // Not the guides' allkeys-lru: every cached answer, vector and probe key has an expiry, the rate limit's
        // logs have none (app/src/services/sliding-window.ts), so a full cache evicts answers and never a busy key's
        // log, which let each replica admit the limit again (probe AB: 60 of 30 with 2 replicas).
        parameters: [{ name: "maxmemory-policy", value: "volatile-lru" }],
      },
      o,
    );

    const group = new aws.elasticache.ReplicationGroup(
      `${name}`,
      {
        replicationGroupId: args.replicationGroupId,
        description: "agent-stack response, embedding and rate-limit cache",
        engine: MANAGED_ENGINES.cache.engine,
        engineVersion: MANAGED_ENGINES.cache.version,
        nodeType: s.nodeType,
        numCacheClusters: s.nodes,
        automaticFailoverEnabled: replicated,
        multiAzEnabled: replicated,
        port: CACHE_PORT,
        parameterGroupName: params.name,
        subnetGroupName: subnets.name,
        securityGroupIds: [sg.id],
        atRestEncryptionEnabled: true,
        kmsKeyId: args.kmsKeyArn,
        transitEncryptionEnabled: true,
        authToken: token.result,
        snapshotRetentionLimit: s.snapshotRetentionDays,
        // Off-peak in the stack's zone (AWS reads both in UTC; they must not overlap).
        snapshotWindow: utcWindow(CACHE_SNAPSHOT_START, 60, args.timeZone),
        maintenanceWindow: utcWindow(CACHE_MAINTENANCE.start, 60, args.timeZone, CACHE_MAINTENANCE.day),
        autoMinorVersionUpgrade: true,
        applyImmediately: false,
      },
      o,
    );
    this.primaryAddress = group.primaryEndpointAddress;
    this.port = group.port.apply((p) => p ?? CACHE_PORT);

    this.secretArn = storedSecret(
      `${name}-auth`,
      {
        description: `Valkey auth token for ${args.replicationGroupId}`,
        kmsKeyArn: args.kmsKeyArn,
        value: pulumi.jsonStringify({ host: this.primaryAddress, port: this.port, authToken: token.result, tls: true }),
      },
      o,
    ).arn;
    this.registerOutputs({ primaryAddress: this.primaryAddress, secretArn: this.secretArn });
  }
}
