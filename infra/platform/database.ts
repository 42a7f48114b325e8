// RDS PostgreSQL 16 in private subnets: tuned parameter group (guide 000 scaled to the instance), encrypted
// gp3, Multi-AZ and read replicas per tier, master password generated and kept in Secrets Manager.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { utcWindow } from "../time.ts";
import { MANAGED_ENGINES } from "../versions.ts";
import * as random from "@pulumi/random";
import type { Tier } from "../tiers.ts";
import { DB_MAINTENANCE } from "../tier-schema.ts";
import { postgresTuning, replicaWorkerProcesses } from "../postgres-tuning.ts";
import { storedSecret } from "./secrets.ts";

export interface DatabaseArgs {
  identifier: string;
  vpcId: pulumi.Input<string>;
  subnetIds: pulumi.Input<string>[];
  /** Only this security group (the EKS nodes') may connect. */
  clientSecurityGroupId: pulumi.Input<string>;
  kmsKeyArn: pulumi.Input<string>;
  sizes: Tier["database"];
  /** Dev: no final snapshot, no deletion protection, no `protect`. */
  disposable: boolean;
  /** Create the database from this snapshot (restore path). */
  snapshotIdentifier?: string;
  /** RDS automated backup window, UTC ("hh:mm-hh:mm"), when the instance is running. */
  backupWindow: string;
  /** The stack's IANA time zone: maintenance runs early on Sunday there. */
  timeZone: string;
  /** Tags that put the instance into an AWS Backup selection. */
  backupTags: Record<string, string>;
}

export const DB_NAME = "agent";
export const DB_USER = "agent";
export const DB_PORT = 5432;

export class Database extends pulumi.ComponentResource {
  readonly address: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly endpoint: pulumi.Output<string>;
  readonly replicaAddresses: pulumi.Output<string>[];
  readonly secretArn: pulumi.Output<string>;
  /** Secret output: the generated master password, for the app's connection string. */
  readonly password: pulumi.Output<string>;
  readonly instance: aws.rds.Instance;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Database", name, {}, opts);
    const o = { parent: this };
    const s = args.sizes;

    // RDS rejects '/', '@', '"' and spaces in master passwords.
    const password = new random.RandomPassword(`${name}-master`, { length: 32, special: true, overrideSpecial: "!#%^*-_=+" }, o);
    this.password = password.result;

    const subnets = new aws.rds.SubnetGroup(`${name}-subnets`, { subnetIds: args.subnetIds }, o);
    const sg = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        vpcId: args.vpcId,
        description: "PostgreSQL from the EKS nodes only",
        ingress: [
          {
            protocol: "tcp",
            fromPort: DB_PORT,
            toPort: DB_PORT,
            securityGroups: [args.clientSecurityGroupId],
            description: "EKS nodes",
          },
        ],
        egress: [],
      },
      o,
    );

    // Each instance gets the guide's tuning for its own memory size (RDS formulas: postgres-tuning.ts). A replica of
    // another class has a group of its own, for its worker processes.
    const params = this.parameterGroup(`${name}-params`, s.instanceClass, s.maxConnections);
    const replicaParams =
      s.readReplicas > 0 && s.replicaInstanceClass !== s.instanceClass
        ? this.parameterGroup(`${name}-replica-params`, s.replicaInstanceClass, s.maxConnections, {
            // RDS's per-class default gave a replica of fewer vCPUs fewer than its source, which a standby refuses.
            max_worker_processes: replicaWorkerProcesses(s.instanceClass, s.replicaInstanceClass),
          })
        : params;

    const protect = !args.disposable;
    this.instance = new aws.rds.Instance(
      `${name}`,
      {
        identifier: args.identifier,
        engine: MANAGED_ENGINES.postgres.engine,
        engineVersion: MANAGED_ENGINES.postgres.version,
        instanceClass: s.instanceClass,
        allocatedStorage: s.allocatedStorageGb,
        maxAllocatedStorage: s.maxAllocatedStorageGb,
        storageType: "gp3",
        storageEncrypted: true,
        kmsKeyId: args.kmsKeyArn,
        dbName: args.snapshotIdentifier ? undefined : DB_NAME,
        username: args.snapshotIdentifier ? undefined : DB_USER,
        password: password.result,
        snapshotIdentifier: args.snapshotIdentifier,
        port: DB_PORT,
        dbSubnetGroupName: subnets.name,
        vpcSecurityGroupIds: [sg.id],
        parameterGroupName: params.name,
        publiclyAccessible: false,
        multiAz: s.multiAz,
        backupRetentionPeriod: s.backupRetentionDays,
        backupWindow: args.backupWindow,
        maintenanceWindow: utcWindow(DB_MAINTENANCE.start, 60, args.timeZone, DB_MAINTENANCE.day),
        copyTagsToSnapshot: true,
        deletionProtection: s.deletionProtection && protect,
        skipFinalSnapshot: !protect,
        finalSnapshotIdentifier: protect ? `${args.identifier}-final` : undefined,
        // The provider's default (true; @pulumi/aws 7.48 rds/instance.d.ts) drops the point-in-time history with the
        // instance: a replacement (the restore runbook's, a forced one) or a destroy lost its whole retention window.
        // Kept, RDS holds them for the retention period after the delete ("retained automated backups").
        deleteAutomatedBackups: !protect,
        performanceInsightsEnabled: s.performanceInsights,
        performanceInsightsKmsKeyId: s.performanceInsights ? args.kmsKeyArn : undefined,
        enabledCloudwatchLogsExports: ["postgresql"],
        autoMinorVersionUpgrade: true,
        caCertIdentifier: "rds-ca-rsa2048-g1",
        tags: args.backupTags,
      },
      { ...o, protect },
    );
    this.address = this.instance.address;
    this.port = this.instance.port;
    this.endpoint = this.instance.endpoint;

    this.replicaAddresses = [];
    for (let i = 0; i < s.readReplicas; i++) {
      const replica = new aws.rds.Instance(
        `${name}-replica-${i}`,
        {
          identifier: `${args.identifier}-replica-${i}`,
          replicateSourceDb: this.instance.identifier,
          instanceClass: s.replicaInstanceClass,
          storageType: "gp3",
          // A replica's storage autoscaling is its own (CreateDBInstanceReadReplica MaxAllocatedStorage): left unset,
          // it kept the size it was created at while the primary grew past it, until it was full and stopped
          // replicating. It holds the same data, so it may grow as far.
          maxAllocatedStorage: s.maxAllocatedStorageGb,
          // Neither kmsKeyId nor storageEncrypted: a same-region replica is always encrypted with its source's
          // key. The RDS API (CreateDBInstanceReadReplica, KmsKeyId) says not to specify a key in the same
          // region (RDS answers InvalidParameterCombination), and it has no StorageEncrypted parameter at all.
          vpcSecurityGroupIds: [sg.id],
          parameterGroupName: replicaParams.name,
          publiclyAccessible: false,
          skipFinalSnapshot: true,
          performanceInsightsEnabled: s.performanceInsights,
          performanceInsightsKmsKeyId: s.performanceInsights ? args.kmsKeyArn : undefined,
          autoMinorVersionUpgrade: true,
          caCertIdentifier: "rds-ca-rsa2048-g1",
        },
        { ...o, protect },
      );
      this.replicaAddresses.push(replica.address);
    }

    this.secretArn = storedSecret(
      `${name}-credentials`,
      {
        description: `PostgreSQL master credentials for ${args.identifier}`,
        kmsKeyArn: args.kmsKeyArn,
        value: pulumi.jsonStringify({
          engine: "postgres",
          username: DB_USER,
          password: password.result,
          host: this.address,
          port: this.port,
          dbname: DB_NAME,
        }),
      },
      o,
    ).arn;
    this.registerOutputs({ address: this.address, secretArn: this.secretArn });
  }

  private parameterGroup(
    name: string,
    instanceClass: string,
    maxConnections: number,
    standby: Record<string, number> = {},
  ): aws.rds.ParameterGroup {
    return new aws.rds.ParameterGroup(
      name,
      {
        family: MANAGED_ENGINES.postgres.family,
        // A parameter group's description cannot change in place: keep it fixed, or a new class replaces the group.
        description: "agent-stack tuning (guide 000, scaled to the instance)",
        parameters: [
          ...Object.entries({ ...postgresTuning(instanceClass, maxConnections), ...standby }).map(([pname, value]) => ({
            name: pname,
            value: String(value),
            applyMethod: "pending-reboot",
          })),
          { name: "rds.force_ssl", value: "1", applyMethod: "pending-reboot" },
          { name: "log_min_duration_statement", value: "1000", applyMethod: "immediate" },
        ],
      },
      { parent: this },
    );
  }
}
