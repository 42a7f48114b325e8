// Reading Kubernetes workloads the way the policies need them: the pod spec of each workload kind, its
// containers (init containers included), and container image references.
import { asRecord } from "./values.ts";

/** Workload type tokens and where each keeps its pod spec. */
const POD_SPEC_PATHS: Record<string, string[]> = {
  "kubernetes:apps/v1:Deployment": ["spec", "template", "spec"],
  "kubernetes:apps/v1:StatefulSet": ["spec", "template", "spec"],
  "kubernetes:apps/v1:DaemonSet": ["spec", "template", "spec"],
  "kubernetes:apps/v1:ReplicaSet": ["spec", "template", "spec"],
  "kubernetes:batch/v1:Job": ["spec", "template", "spec"],
  "kubernetes:batch/v1:CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
  "kubernetes:core/v1:Pod": ["spec"],
};

export const WORKLOAD_TYPES = Object.keys(POD_SPEC_PATHS);

/** A Kubernetes object's metadata (name, namespace, labels, annotations). */
export const metadataOf = (r: { props: Record<string, any> }): Record<string, any> => asRecord(r.props.metadata);

/**
 * Whether a stack policy sees a Kubernetes object's outputs yet. On a real preview where the cluster is new (its
 * provider's kubeconfig unknown), the engine gives every Kubernetes object empty outputs: read as an object without
 * labels, each was a violation, and a first preview of prod failed on three (probe of the pack with the engine's
 * unknowns). Such an object is checked when the stack policy runs again at the end of `up`. Counting the keys reads
 * no property, so it cannot meet an unknown value.
 */
export const outputsKnown = (r: { props: Record<string, any> }): boolean => Object.keys(r.props).length > 0;

function objectAt(props: Record<string, any>, path: string[]): Record<string, any> | undefined {
  let v: any = props;
  for (const key of path) v = v?.[key];
  return typeof v === "object" && v !== null ? v : undefined;
}

export function podSpecOf(type: string, props: Record<string, any>): Record<string, any> | undefined {
  const path = POD_SPEC_PATHS[type];
  return path ? objectAt(props, path) : undefined;
}

/** A workload's pod template, its metadata (labels, annotations) and spec; a bare Pod has none. */
export function podTemplateOf(type: string, props: Record<string, any>): Record<string, any> | undefined {
  const path = POD_SPEC_PATHS[type];
  return path && path.length > 1 ? objectAt(props, path.slice(0, -1)) : undefined;
}

export interface Container {
  name?: string;
  image?: string;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  securityContext?: Record<string, any>;
  [key: string]: unknown;
}

export function containersOf(podSpec: Record<string, any>): Container[] {
  return [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];
}

export function containerLabel(c: Container): string {
  return `container "${c.name ?? "?"}"`;
}

export interface ImageReference {
  repository: string;
  tag?: string;
  digest?: string;
}

/** "registry:5000/team/app:1.2@sha256:..." -> repository, tag, digest. */
export function parseImage(image: string): ImageReference {
  const at = image.indexOf("@");
  const name = at >= 0 ? image.slice(0, at) : image;
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  const colon = name.lastIndexOf(":");
  const hasTag = colon > name.lastIndexOf("/");
  return {
    repository: hasTag ? name.slice(0, colon) : name,
    tag: hasTag ? name.slice(colon + 1) : undefined,
    digest,
  };
}

export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;
