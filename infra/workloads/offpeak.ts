// Off-peak scale-down of the workloads (guide 000 scale_down_during_low_traffic: 00:00-06:00, API 5->2,
// Ollama 3->1): two CronJobs patch the API HPA's minReplicas and Ollama's replica count at the window's
// start and back at its end. Their ServiceAccount may only get and patch that one HPA and that one scale
// subresource. Where they run, Pulumi ignores both fields (api-autoscaler.ts, ollama.ts), so `pulumi up` keeps the
// CronJobs' values, and new peak sizes arrive with the next scale-up. The node groups follow the same window in platform/schedules.ts.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Tier } from "../tiers.ts";
import { offPeakUp } from "../platform/schedules.ts";
import { unixCron, type Window } from "../time.ts";
import { kubectlImage } from "../versions.ts";
import { API } from "./names.ts";
import { cronTiming, labelsFor, lockedDown, nonRootPod, placement, resources, TMP } from "./pod.ts";

export interface OffPeakScalerArgs {
  namespace: pulumi.Input<string>;
  window: Window;
  /** The stack's IANA time zone (CronJob `timeZone`). */
  timeZone: string;
  /** Peak sizes (api.minReplicas, ollama.replicas) and the off-peak ones. */
  peak: { apiMinReplicas: number; ollamaReplicas: number };
  offPeak: Pick<Tier["schedule"]["offPeakSizes"], "apiMinReplicas" | "ollamaReplicas">;
  ollama: { kind: "Deployment" | "StatefulSet"; name: string };
  /** The cluster's minor version ("1.35"): kubectl is pinned to its first release. */
  kubernetesVersion: string;
}

export const OFFPEAK_SCALER = "offpeak-scaler";
const UID = 65532;

export class OffPeakScaler extends pulumi.ComponentResource {
  constructor(name: string, args: OffPeakScalerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:OffPeakScaler", name, {}, opts);
    const o = { parent: this };
    const labels = labelsFor(OFFPEAK_SCALER);
    const ollamaResource = `${args.ollama.kind.toLowerCase()}s`;

    const account = new k8s.core.v1.ServiceAccount(
      OFFPEAK_SCALER,
      {
        metadata: { name: OFFPEAK_SCALER, namespace: args.namespace, labels },
      },
      o,
    );
    const role = new k8s.rbac.v1.Role(
      OFFPEAK_SCALER,
      {
        metadata: { name: OFFPEAK_SCALER, namespace: args.namespace, labels },
        rules: [
          {
            apiGroups: ["autoscaling"],
            resources: ["horizontalpodautoscalers"],
            resourceNames: [API.name],
            verbs: ["get", "patch"],
          },
          {
            apiGroups: ["apps"],
            resources: [`${ollamaResource}/scale`],
            resourceNames: [args.ollama.name],
            verbs: ["get", "patch"],
          },
        ],
      },
      o,
    );
    new k8s.rbac.v1.RoleBinding(
      OFFPEAK_SCALER,
      {
        metadata: { name: OFFPEAK_SCALER, namespace: args.namespace, labels },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: account.metadata.name, namespace: args.namespace }],
      },
      o,
    );

    const patch = (container: string, resource: string, target: string, body: object, subresource?: string) => ({
      name: container,
      image: kubectlImage(args.kubernetesVersion),
      command: ["/bin/kubectl"],
      args: [
        "patch",
        resource,
        target,
        ...(subresource ? [`--subresource=${subresource}`] : []),
        "--namespace",
        args.namespace,
        "--type=merge",
        `--patch=${JSON.stringify(body)}`,
      ],
      env: [{ name: "HOME", value: TMP.mount.mountPath }], // kubectl's discovery cache
      resources: resources({ cpuRequest: "10m", memoryRequest: "32Mi", memoryLimit: "128Mi" }),
      securityContext: lockedDown(),
      volumeMounts: [TMP.mount],
    });
    const cronJob = (jobName: string, schedule: string, sizes: { apiMinReplicas: number; ollamaReplicas: number }) =>
      new k8s.batch.v1.CronJob(
        jobName,
        {
          metadata: { name: jobName, namespace: args.namespace, labels },
          spec: {
            ...cronTiming(schedule, args.timeZone),
            jobTemplate: {
              spec: {
                backoffLimit: 4,
                activeDeadlineSeconds: 600,
                template: {
                  metadata: { labels },
                  spec: {
                    serviceAccountName: account.metadata.name,
                    restartPolicy: "OnFailure",
                    securityContext: nonRootPod(UID),
                    ...placement("general"),
                    // Two containers, one per target: each runs kubectl as the image's entrypoint, no shell between.
                    containers: [
                      patch("api-hpa", "horizontalpodautoscaler", API.name, { spec: { minReplicas: sizes.apiMinReplicas } }),
                      patch("ollama", ollamaResource, args.ollama.name, { spec: { replicas: sizes.ollamaReplicas } }, "scale"),
                    ],
                    volumes: [TMP.volume],
                  },
                },
              },
            },
          },
        },
        o,
      );

    cronJob("offpeak-scale-down", unixCron(args.window.start, args.window.days), args.offPeak);
    const up = offPeakUp(args.window); // with the nodes, so the Ollama pods serve by the window's end
    cronJob("offpeak-scale-up", unixCron(up.hhmm, up.days), args.peak);
    this.registerOutputs({});
  }
}
