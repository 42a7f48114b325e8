/**
 * Which Ollama pod each model call goes to. Through the Service, kube-proxy picks a pod per TCP connection, and a
 * kept-alive connection stays on its pod: a replica whose connections led to one pod sent it every answer while the
 * other had a slot free (probe AK: one pod past its slots 53-56 % of the time with another free, about 12 % of answers
 * lost to waiting and 504s). Each call goes to a pod address instead (the headless Service's, OLLAMA_PODS_DNS), the one
 * with the fewest of this replica's calls of that model in flight, within this replica's slots on it.
 *
 * A replica's slots: every API pod's share (answer-share.ts) is a run of the numbers 0 to pods x OLLAMA_NUM_PARALLEL - 1,
 * in the API pods' address order, and slot s is on Ollama pod s mod pods. Together the replicas then send each pod at
 * most its OLLAMA_NUM_PARALLEL; the fewest in flight alone sent 5 to one pod of 4 with 3 API pods sharing 8 slots.
 * With no addresses (no OLLAMA_PODS_DNS, an empty answer) every call goes to the Service, as before.
 */
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SlotRun } from "./answer-share.ts";
import { Counts } from "../counts.ts";

export interface PodCall {
  /** OLLAMA_URL with the pod's address for its host; OLLAMA_URL itself when no pod is known. */
  url: string;
  /** The pod's address; undefined for the Service. */
  address?: string;
  release(): void;
}

/**
 * How long a connection to a pod may take (DNS aside, pods are addresses). In the cluster one takes a millisecond; a
 * pod deleted since the last count leaves an address that drops the SYN, and undici's default waited 10 s
 * (OLLAMA_TIMEOUT_MS does not run until a connection is made: probe AM2 saw 3 s to EHOSTUNREACH under a 500 ms
 * deadline) before the call went to another pod. 2 s lets one SYN be sent again (Linux waits 1 s, TCP_TIMEOUT_INIT);
 * undici's timer (lib/util/timers.js) fires up to 0.5 s late. The Service (OLLAMA_URL) keeps undici's 10 s.
 */
export const POD_CONNECT_TIMEOUT_MS = 2_000;

export function createPodRouter(serviceUrl: string, log?: Logger) {
  let pods: string[] = [];
  /** Each pod's URL: OLLAMA_URL with the pod's address for its host, built at each count. */
  let urls = new Map<string, string>();
  /** This replica's slots on each pod (none on a pod not in the map); undefined while its place is unknown: no cap. */
  let caps: Map<string, number> | undefined;
  /** Pods that refused a connection since the last count. */
  const refusing = new Set<string>();
  /** `${model} ${address}` -> this replica's calls in flight. */
  const inFlight = new Counts();
  const load = (model: string, address: string) => inFlight.of(`${model} ${address}`);

  const urlOf = (address: string) => {
    const url = new URL(serviceUrl);
    url.hostname = address.includes(":") ? `[${address}]` : address;
    return url.toString().replace(/\/$/, "");
  };

  /** Turns taken among pods with as few calls in flight: by address, every replica's idle calls went to the first. */
  let turn = 0;

  /** The pod with the fewest calls of the model in flight, among those under their cap if any is. */
  function choose(model: string, skip?: ReadonlySet<string>): string | undefined {
    const open = pods.filter((a) => !refusing.has(a) && !skip?.has(a));
    const underCap = open.filter((a) => caps === undefined || load(model, a) < (caps.get(a) ?? 0));
    const candidates = underCap.length > 0 ? underCap : open;
    if (candidates.length === 0) return undefined;
    const fewest = Math.min(...candidates.map((a) => load(model, a)));
    const tied = candidates.filter((a) => load(model, a) === fewest);
    return tied[turn++ % tied.length];
  }

  return {
    /** The ready pods (sorted, as podAddresses answers) and this replica's slots among them, at each count. */
    update(addresses: string[], run?: SlotRun): void {
      pods = addresses;
      urls = new Map(addresses.map((a) => [a, urlOf(a)]));
      refusing.clear();
      caps = undefined;
      if (run === undefined || addresses.length === 0) return;
      // A pod none of this replica's slots is on is used only when every other pod is full or refused.
      const counted = new Map<string, number>();
      for (let s = run.first; s < run.first + run.count; s++) {
        const pod = addresses[s % addresses.length]!;
        counted.set(pod, (counted.get(pod) ?? 0) + 1);
      }
      caps = counted;
    },

    /**
     * A pod for one call of `model`, or the Service once none is left but those in `skip` (the pods this call could not
     * reach). Release it when the call ends.
     */
    take(model: string, skip?: ReadonlySet<string>): PodCall {
      const address = choose(model, skip);
      if (address === undefined) return { url: serviceUrl, release: () => {} };
      const key = `${model} ${address}`;
      inFlight.add(key);
      let held = true;
      return {
        url: urls.get(address)!,
        address,
        release: () => {
          if (!held) return;
          held = false;
          inFlight.add(key, -1);
        },
      };
    },

    /** No connection could be made to the pod (`err`): no call goes there until the next count. */
    refused(address: string, err: unknown): void {
      if (refusing.has(address)) return;
      refusing.add(address);
      log?.warn({ pod: address, err: describe(err) }, "ollama pod unreachable: skipped until the pods are counted again");
    },
  };
}

export type PodRouter = ReturnType<typeof createPodRouter>;
