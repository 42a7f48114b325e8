// Kubernetes workloads (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods): resource requests and
// limits, non-root, unprivileged, images pinned. Helm releases are checked for a pinned chart version only:
// their rendered workloads are not visible to a policy pack.
import type { ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import {
  containerLabel,
  containersOf,
  DIGEST_PATTERN,
  parseImage,
  podSpecOf,
  WORKLOAD_TYPES,
  type Container,
} from "../lib/k8s.ts";
import { validateResourceOfTypes } from "../lib/validate.ts";
import { asArray, asNumber, readKnown, UNKNOWN_VALUE } from "../lib/values.ts";

interface ExemptConfig {
  exemptWorkloads: string[];
}

const EXEMPT_SCHEMA = {
  exemptWorkloads: {
    type: "array" as const,
    items: { type: "string" as const },
    default: [],
    description: "Pulumi resource names of workloads this policy skips (e.g. a node agent DaemonSet that must run as root).",
  },
};

/** Runs `check` on every container of a workload's pod spec. */
function eachContainer(
  check: (c: Container, pod: Record<string, any>, args: ResourceValidationArgs, report: (m: string) => void) => void,
) {
  return validateResourceOfTypes(WORKLOAD_TYPES, (props, args, report) => {
    const pod = podSpecOf(args.type, props);
    if (!pod) return;
    if (asArray(args.getConfig<Partial<ExemptConfig>>().exemptWorkloads).includes(args.name)) return;
    for (const c of containersOf(pod)) check(c, pod, args, report);
  });
}

export const k8sResourcesSet: ResourceValidationPolicy = {
  name: "k8s-resources-set",
  description: "Every container requests CPU and memory and has a memory limit (a CPU limit only when configured).",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      requireCpuLimit: {
        type: "boolean",
        default: false,
        description: "Also require limits.cpu (off: CPU limits throttle latency-sensitive pods).",
      },
    },
  },
  validateResource: eachContainer((c, _pod, args, report) => {
    const { requireCpuLimit } = args.getConfig<{ requireCpuLimit: boolean }>();
    const requests = c.resources?.requests ?? {};
    const limits = c.resources?.limits ?? {};
    const missing = [
      requests.cpu === undefined && "requests.cpu",
      requests.memory === undefined && "requests.memory",
      limits.memory === undefined && "limits.memory",
      requireCpuLimit && limits.cpu === undefined && "limits.cpu",
    ].filter(Boolean);
    if (missing.length > 0) report(`${containerLabel(c)} has no ${missing.join(", ")}.`);
  }),
};

export const k8sRunAsNonRoot: ResourceValidationPolicy = {
  name: "k8s-run-as-non-root",
  description:
    "Every container runs as a non-root user (runAsNonRoot: true or a non-zero runAsUser, on the container or the pod).",
  enforcementLevel: "mandatory",
  configSchema: { properties: { ...EXEMPT_SCHEMA } },
  validateResource: eachContainer((c, pod, _args, report) => {
    const runAsUser = asNumber(c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser);
    const runAsNonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
    if (runAsUser === 0) report(`${containerLabel(c)} runs as root (runAsUser: 0).`);
    else if (runAsNonRoot !== true && !(runAsUser !== undefined && runAsUser > 0)) {
      report(
        `${containerLabel(c)} may run as root: set securityContext.runAsNonRoot: true (and a non-zero runAsUser if the image's user is root).`,
      );
    }
  }),
};

export const k8sNoPrivileged: ResourceValidationPolicy = {
  name: "k8s-no-privileged",
  description: "No container is privileged, escalates privileges or adds host-level capabilities.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      ...EXEMPT_SCHEMA,
      forbiddenCapabilities: {
        type: "array",
        items: { type: "string" },
        default: ["ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"],
        description: "Capabilities no container may add.",
      },
    },
  },
  validateResource: eachContainer((c, _pod, args, report) => {
    const { forbiddenCapabilities } = args.getConfig<{ forbiddenCapabilities: string[] }>();
    const sc = c.securityContext ?? {};
    if (sc.privileged === true) report(`${containerLabel(c)} is privileged.`);
    if (sc.allowPrivilegeEscalation === true) report(`${containerLabel(c)} allows privilege escalation.`);
    const added = asArray<string>(sc.capabilities?.add).filter((cap) => forbiddenCapabilities.includes(cap.replace(/^CAP_/, "")));
    if (added.length > 0) report(`${containerLabel(c)} adds capabilities ${added.join(", ")}.`);
  }),
};

export const k8sImagePinned: ResourceValidationPolicy = {
  name: "k8s-image-pinned",
  description: "Every container image names a fixed version: a digest, or a tag that is not a moving one like latest.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      requireDigest: { type: "boolean", default: false, description: "Require @sha256 digests, not tags." },
      movingTags: {
        type: "array",
        items: { type: "string" },
        default: ["latest", "stable", "main", "master", "edge", "nightly"],
        description: "Tags that do not pin a version.",
      },
    },
  },
  validateResource: eachContainer((c, _pod, args, report) => {
    const { requireDigest, movingTags } = args.getConfig<{ requireDigest: boolean; movingTags: string[] }>();
    // An image an earlier resource of the update gives (the app's build, by its digest) is not known on a preview: no
    // verdict for that container, and `up` judges it. Read plainly, it threw, and the pod's other containers went too.
    const image = readKnown(() => c.image);
    if (image === UNKNOWN_VALUE) return;
    if (typeof image !== "string" || image === "") {
      report(`${containerLabel(c)} has no image.`);
      return;
    }
    const { tag, digest } = parseImage(image);
    if (digest !== undefined) {
      if (!DIGEST_PATTERN.test(digest)) report(`${containerLabel(c)} image ${image} has a malformed digest.`);
      return;
    }
    if (requireDigest) report(`${containerLabel(c)} image ${image} is not pinned by digest (@sha256:...).`);
    else if (tag === undefined)
      report(`${containerLabel(c)} image ${image} has no tag, so it means :latest: pin a version or digest.`);
    else if (movingTags.includes(tag))
      report(`${containerLabel(c)} image ${image} uses the moving tag "${tag}": pin a version or digest.`);
  }),
};

const HELM_TYPES = ["kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"];

export const helmChartVersionPinned: ResourceValidationPolicy = {
  name: "helm-chart-version-pinned",
  description: "Helm releases pin an exact chart version (a range or no version would upgrade on any deploy).",
  enforcementLevel: "advisory",
  validateResource: validateResourceOfTypes(HELM_TYPES, (release, _args, report) => {
    const version = typeof release.version === "string" ? release.version.trim() : "";
    if (version === "") report(`chart ${release.chart ?? "?"} has no version: set version to an exact chart version.`);
    else if (!/^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(version))
      report(`chart ${release.chart ?? "?"} version "${version}" is a range: pin an exact version.`);
  }),
};

export const kubernetesPolicies = [k8sResourcesSet, k8sRunAsNonRoot, k8sNoPrivileged, k8sImagePinned, helmChartVersionPinned];
