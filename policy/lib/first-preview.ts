// A first preview as the engine hands it to the pack (Plan.firstPreview): every props behind the engine's proxy, and
// the stack policies that read resources with no outputs at all (Kubernetes objects whose cluster does not exist).
import { unknownCheckingProxy } from "@pulumi/policy";
import type { BlindPolicy } from "../../infra/plan/types.ts";

/**
 * Props as the engine gives them on a preview, behind the proxy its pack server wraps every props in (a provider's
 * too): reading a value not known yet throws UnknownValueError.
 */
export const engineProps = <T extends object>(props: T): T => unknownCheckingProxy(props) as T;

/**
 * Watches reads of the props of resources without outputs: on a first preview the engine has none for an object of a
 * provider not configured yet (every Kubernetes object: the kubeconfig comes from the cluster), so a stack policy
 * reading one sees an empty bag and passes. The engine says nothing of it; the review does.
 */
export function blindReads() {
  let current: string | undefined;
  const reads = new Map<string, Set<string>>();
  const note = (urn: string) => {
    if (current === undefined) return;
    const urns = reads.get(current) ?? new Set<string>();
    reads.set(current, urns.add(urn));
  };
  return {
    /** `props` of the resource at `urn`, its reads noted against the policy running. */
    watch: <T extends object>(urn: string, props: T): T =>
      new Proxy(props, {
        get(target, key, receiver) {
          note(urn);
          return Reflect.get(target, key, receiver);
        },
        has(target, key) {
          note(urn);
          return Reflect.has(target, key);
        },
        ownKeys(target) {
          note(urn);
          return Reflect.ownKeys(target);
        },
      }),
    /** Runs `validate` as `policy`. */
    during<T>(policy: string, validate: () => T): T {
      current = policy;
      try {
        return validate();
      } finally {
        current = undefined;
      }
    },
    blind: (): BlindPolicy[] => [...reads].map(([policy, urns]) => ({ policy, resources: [...urns].sort() })),
  };
}
