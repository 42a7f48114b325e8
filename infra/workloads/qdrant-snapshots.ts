// Qdrant backups (guide 000 "Qdrant Backup (Weekly)": POST /collections/<name>/snapshots, download it):
// a CronJob that snapshots every collection on every Qdrant node and uploads the files to the backup
// bucket (script: qdrant-snapshot.sh). Its IRSA role may only write under qdrant/ in that bucket. The
// backup-freshness alert (monitoring/prometheus/rules/backups.yml) watches this CronJob by name.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import { QDRANT_SNAPSHOT_PREFIX } from "../platform/backups.ts";
import { irsaRole, kmsThroughS3, type OidcProvider } from "../platform/iam.ts";
import { IMAGES } from "../versions.ts";
import { STORAGE_CLASS_OPTIONS } from "./base.ts";
import { NAMESPACES, QDRANT, QDRANT_CLIENT_LABEL } from "./names.ts";
import { claimSpec, cronTiming, labelsFor, lockedDown, nonRootPod, placement, resources, TMP } from "./pod.ts";

export interface QdrantSnapshotsArgs {
  namespace: pulumi.Input<string>;
  /** Five-field cron (tiers.ts backups.qdrantSnapshotCron) and the zone it is read in. */
  cron: string;
  timezone: string;
  /** Qdrant nodes (StatefulSet replicas); each holds its own shards, so each is snapshotted. */
  replicas: number;
  apiKeySecret: { name: pulumi.Input<string>; key: string };
  bucketName: pulumi.Input<string>;
  bucketArn: pulumi.Input<string>;
  /** The bucket's SSE-KMS key: uploads need a data key from it. */
  kmsKeyArn: pulumi.Input<string>;
  region: string;
  oidc: OidcProvider;
  /** The workload boundary's ARN (platform/boundaries.ts): every role this creates carries it. */
  permissionsBoundary: pulumi.Input<string>;
  /** Upper bound of one downloaded snapshot (the node's Qdrant volume size). */
  scratchGb: number;
}

/** Name the backup-freshness alert and the runbook refer to. */
export const QDRANT_SNAPSHOT_JOB = "qdrant-snapshot";
/** aws-cli v2 on Amazon Linux 2023: bash, curl, sha256sum. Pinned; bump deliberately. */
export const AWS_CLI_IMAGE = IMAGES.awsCli;
const SCRIPT = readFileSync(new URL("./qdrant-snapshot.sh", import.meta.url), "utf8");
const UID = 1000;
/** gp3, deleted with its claim: the snapshot job's scratch space. */
export const SCRATCH_STORAGE_CLASS = "gp3-scratch";

export class QdrantSnapshots extends pulumi.ComponentResource {
  constructor(name: string, args: QdrantSnapshotsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:QdrantSnapshots", name, {}, opts);
    const o = { parent: this };
    const labels = labelsFor(QDRANT_SNAPSHOT_JOB);

    const { role } = irsaRole(
      `${name}-role`,
      {
        oidc: args.oidc,
        permissionsBoundary: args.permissionsBoundary,
        namespace: NAMESPACES.agent,
        serviceAccount: QDRANT_SNAPSHOT_JOB,
        inlinePolicy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              // AbortMultipartUpload: `aws s3 cp` gives back the parts of an upload that failed (else kept until the
              // bucket's lifecycle rule removes them).
              Action: ["s3:PutObject", "s3:AbortMultipartUpload"],
              Resource: pulumi.interpolate`${args.bucketArn}/${QDRANT_SNAPSHOT_PREFIX}*`,
            },
            kmsThroughS3(args.kmsKeyArn, args.region),
          ],
        }),
      },
      o,
    );

    const account = new k8s.core.v1.ServiceAccount(
      QDRANT_SNAPSHOT_JOB,
      {
        metadata: {
          name: QDRANT_SNAPSHOT_JOB,
          namespace: args.namespace,
          labels,
          annotations: { "eks.amazonaws.com/role-arn": role.arn },
        },
        automountServiceAccountToken: false, // the job never talks to the Kubernetes API
      },
      o,
    );
    const script = new k8s.core.v1.ConfigMap(
      `${QDRANT_SNAPSHOT_JOB}-script`,
      {
        metadata: { name: `${QDRANT_SNAPSHOT_JOB}-script`, namespace: args.namespace, labels },
        data: { "qdrant-snapshot.sh": SCRIPT },
      },
      o,
    );

    // Scratch volumes must not outlive their job, whatever the stack's default class keeps.
    const scratch = new k8s.storage.v1.StorageClass(
      SCRATCH_STORAGE_CLASS,
      {
        metadata: { name: SCRATCH_STORAGE_CLASS, labels },
        provisioner: "ebs.csi.aws.com",
        parameters: { type: "gp3", encrypted: "true", "csi.storage.k8s.io/fstype": "ext4" },
        volumeBindingMode: "WaitForFirstConsumer",
        reclaimPolicy: "Delete",
      },
      { ...o, ...STORAGE_CLASS_OPTIONS },
    );

    const nodes = Array.from({ length: args.replicas }, (_, i) => `${QDRANT.name}-${i}`);
    const nodeUrls = pulumi
      .output(args.namespace)
      .apply((ns) =>
        nodes.map((n) => `${n}=http://${n}.${QDRANT.headless}.${ns}.svc.cluster.local:${QDRANT.ports.http}`).join(" "),
      );

    new k8s.batch.v1.CronJob(
      QDRANT_SNAPSHOT_JOB,
      {
        metadata: { name: QDRANT_SNAPSHOT_JOB, namespace: args.namespace, labels },
        spec: {
          ...cronTiming(args.cron, args.timezone),
          jobTemplate: {
            spec: {
              backoffLimit: 1,
              activeDeadlineSeconds: 6 * 3600,
              template: {
                metadata: { labels: { ...labels, ...QDRANT_CLIENT_LABEL } },
                spec: {
                  serviceAccountName: account.metadata.name,
                  restartPolicy: "Never",
                  securityContext: nonRootPod(UID),
                  ...placement("general"),
                  containers: [
                    {
                      name: "snapshot",
                      image: AWS_CLI_IMAGE,
                      command: ["/bin/bash", "/scripts/qdrant-snapshot.sh"],
                      env: [
                        { name: "QDRANT_NODES", value: nodeUrls },
                        {
                          name: "QDRANT_API_KEY",
                          valueFrom: { secretKeyRef: { name: args.apiKeySecret.name, key: args.apiKeySecret.key } },
                        },
                        {
                          name: "S3_URI",
                          value: pulumi.interpolate`s3://${args.bucketName}/${QDRANT_SNAPSHOT_PREFIX.replace(/\/$/, "")}`,
                        },
                        { name: "SCRATCH_DIR", value: "/scratch" },
                        { name: "AWS_REGION", value: args.region },
                        { name: "HOME", value: TMP.mount.mountPath },
                      ],
                      resources: resources({ cpuRequest: "100m", memoryRequest: "256Mi", memoryLimit: "512Mi" }),
                      securityContext: lockedDown(),
                      volumeMounts: [
                        { name: "script", mountPath: "/scripts", readOnly: true },
                        { name: "scratch", mountPath: "/scratch" },
                        TMP.mount,
                      ],
                    },
                  ],
                  volumes: [
                    { name: "script", configMap: { name: script.metadata.name, defaultMode: 0o555 } },
                    // One snapshot at a time, deleted right after its upload, on a volume of its own sized to the
                    // data (a node's Qdrant volume): an emptyDir on the node's disk could fill it and evict the
                    // API. Generic ephemeral volume: created with the pod, deleted with it (class reclaims Delete).
                    {
                      name: "scratch",
                      ephemeral: {
                        volumeClaimTemplate: { metadata: { labels }, spec: claimSpec(scratch.metadata.name, args.scratchGb) },
                      },
                    },
                    TMP.volume,
                  ],
                },
              },
            },
          },
        },
      },
      o,
    );
    this.registerOutputs({});
  }
}
