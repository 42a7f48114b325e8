// The app's credentials as Kubernetes Secrets: connection strings built from the RDS and ElastiCache
// outputs, a generated bootstrap API key and a generated Qdrant API key. Pods read them with
// envFrom/secretKeyRef only; nothing secret goes into plain env or ConfigMaps.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { SECRETS } from "./names.ts";
import { labelsFor } from "./pod.ts";

export interface AppSecretsArgs {
  namespace: pulumi.Input<string>;
  /** The runtime role's URL (DML only) and the owner's, for migrations; both secret outputs. */
  databaseUrl: pulumi.Input<string>;
  databaseMigrateUrl: pulumi.Input<string>;
  cache: { address: pulumi.Input<string>; port: pulumi.Input<number>; authToken: pulumi.Input<string> };
}

/**
 * A Secret a pod reads by name, and its resourceVersion, which each write of it changes. Pods read a Secret's values
 * when they start: put in a pod template (`secretVersionAnnotations`), the version rolls the pods onto new values.
 */
export interface SecretRef {
  name: pulumi.Output<string>;
  version: pulumi.Output<string>;
}

/**
 * Pod template annotations naming the versions of the Secrets its containers read at start, keyed by each Secret's
 * name (`secret-version/agent-api-env`). Without them a password,
 * token or endpoint written to a Secret reached no running pod until it happened to restart, and a credential retired
 * meanwhile (a rotated ElastiCache token, a restored database's host) failed every call from the pods still holding
 * the old one. The version, not a hash of the values: secret, a hash would make the whole template secret and the
 * preview would show none of it (db-roles.ts does the same for its Job).
 */
export const secretVersionAnnotations = (secrets: Record<string, SecretRef>): Record<string, pulumi.Output<string>> =>
  Object.fromEntries(Object.entries(secrets).map(([key, s]) => [`secret-version/${key}`, s.version]));

export class AppSecrets extends pulumi.ComponentResource {
  readonly apiSecret: SecretRef;
  readonly qdrantApiKey: SecretRef & { key: string };

  constructor(name: string, args: AppSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:AppSecrets", name, {}, opts);
    const o = { parent: this };

    // The app accepts keys of 16+ characters; letters and digits keep them safe in headers and URLs.
    const bootstrapKey = new random.RandomPassword(`${name}-api-bootstrap-key`, { length: 48, special: false }, o);
    const qdrantKey = new random.RandomPassword(`${name}-qdrant-api-key`, { length: 48, special: false }, o);

    // ElastiCache has in-transit encryption on: rediss://, with the AUTH token as the password.
    const redisUrl = pulumi.interpolate`rediss://:${pulumi.output(args.cache.authToken).apply(encodeURIComponent)}@${args.cache.address}:${args.cache.port}`;

    const apiSecret = new k8s.core.v1.Secret(
      SECRETS.api,
      {
        metadata: { name: SECRETS.api, namespace: args.namespace, labels: labelsFor(SECRETS.api) },
        type: "Opaque",
        stringData: pulumi.secret({
          DATABASE_URL: args.databaseUrl,
          DATABASE_MIGRATE_URL: args.databaseMigrateUrl,
          REDIS_URL: redisUrl,
          API_KEYS: bootstrapKey.result,
        }),
      },
      o,
    );
    const qdrantSecret = new k8s.core.v1.Secret(
      SECRETS.qdrantApiKey.name,
      {
        metadata: { name: SECRETS.qdrantApiKey.name, namespace: args.namespace, labels: labelsFor(SECRETS.qdrantApiKey.name) },
        type: "Opaque",
        stringData: pulumi.secret({ [SECRETS.qdrantApiKey.key]: qdrantKey.result }),
      },
      o,
    );

    this.apiSecret = { name: apiSecret.metadata.name, version: apiSecret.metadata.resourceVersion };
    this.qdrantApiKey = {
      name: qdrantSecret.metadata.name,
      version: qdrantSecret.metadata.resourceVersion,
      key: SECRETS.qdrantApiKey.key,
    };
    this.registerOutputs({ apiSecretName: this.apiSecret.name, qdrantApiKeySecretName: this.qdrantApiKey.name });
  }
}
