import { lookup } from "node:dns/promises";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";
import { runPeriodically } from "./periodic.ts";

/**
 * Addresses of the ready pods behind `name`, a headless Service, sorted: Kubernetes DNS answers one address per ready
 * pod, none when none is (CoreDNS plugin/kubernetes/object/endpoint.go skips an EndpointSlice endpoint that is not
 * Ready, which a pod is until its readiness probe passes and again once it is terminating, unless the Service sets
 * publishNotReadyAddresses).
 */
export type ListPods = (name: string) => Promise<string[]>;

const NO_ADDRESS = new Set(["ENOTFOUND", "ENODATA"]);

export const podAddresses: ListPods = async (name) => {
  try {
    return [...new Set((await lookup(name, { all: true })).map((a) => a.address))].sort();
  } catch (err) {
    if (NO_ADDRESS.has((err as { code?: string }).code ?? "")) return [];
    throw err;
  }
};

/**
 * A replica's answers per model: `slots` shared out over `apiPods`, the whole part to each and the rest one each to
 * the first pods by address (`place`, this pod's), so that together they ask for the slots there are; rounded up, 6
 * pods asked for 12 of 8, queued in Ollama past its slots (probe AK). At least 1. Its place unknown (no POD_IP), a pod
 * takes the whole part alone.
 */
export const answerShare = (slots: number, apiPods: number, place?: number): number =>
  Math.max(1, Math.floor(slots / apiPods) + (place !== undefined && place < slots % apiPods ? 1 : 0));

/**
 * A replica's share as a run of the slot numbers 0 to slots - 1, the shares laid end to end in `place` order; with more
 * API pods than slots (a share of 1 each), they go round the slots again.
 */
export type SlotRun = { first: number; count: number };

export const slotRun = (slots: number, apiPods: number, place: number): SlotRun => ({
  first: apiPods > slots ? place % slots : place * Math.floor(slots / apiPods) + Math.min(place, slots % apiPods),
  count: answerShare(slots, apiPods, place),
});

export interface AnswerShareOptions {
  /** Headless Service of the Ollama pods (OLLAMA_PODS_DNS) and of the API pods (API_PODS_DNS). */
  ollamaDns: string;
  apiDns: string;
  /** OLLAMA_NUM_PARALLEL: answers each Ollama pod generates at once, per model. */
  numParallel: number;
  /** This pod's address (POD_IP), as the API pods' Service answers it once the pod is ready. */
  podIp?: string | undefined;
  refreshMs: number;
  /** Called with each new share (answer-slots.ts resize). */
  onShare: (slots: number) => void;
  /**
   * Called at each count with the ready Ollama pods (none: use the Service) and this replica's run of slots among
   * them, unknown while its place is (ollama-pods.ts update).
   */
  onOllamaPods?: (addresses: string[], run?: SlotRun) => void;
  log: Logger;
  listPods?: ListPods;
}

/**
 * Keeps this replica's share of Ollama's answer slots to the pods there are, counted every `refreshMs`. A share fixed
 * at deploy time (the HPA's minimum of API pods, the day's Ollama replicas) let the pods ask for more than the GPUs
 * have once the HPA added API pods or the off-peak schedule removed Ollama pods.
 * - A pod not in the API pods' answer asks for one slot: it is starting (the ready pods share every slot out) or in
 *   its preStop, still sent requests while the others take its slots; counted as missing, it took a ready pod's share,
 *   4 of 8 beside two pods taking 4 each.
 * - With no Ollama pod or no API pod in the answers (a renamed Service, a DNS glitch: each replica took every slot),
 *   or a lookup failing, the share stays as it was, OLLAMA_MAX_ANSWERS until the first count. That starts at once.
 */
export function watchAnswerShare(opts: AnswerShareOptions) {
  const listPods = opts.listPods ?? podAddresses;
  let current: number | undefined;
  let failing = false;

  async function refresh(): Promise<void> {
    try {
      const [ollamaPods, apiPods] = await Promise.all([listPods(opts.ollamaDns), listPods(opts.apiDns)]);
      failing = false;
      const slots = ollamaPods.length * opts.numParallel;
      const place = opts.podIp === undefined ? undefined : apiPods.indexOf(opts.podIp);
      const known = place !== undefined && place !== -1 && slots > 0;
      opts.onOllamaPods?.(ollamaPods, known ? slotRun(slots, apiPods.length, place) : undefined);
      if (ollamaPods.length === 0 || apiPods.length === 0) return;
      const share = place === -1 ? 1 : answerShare(slots, apiPods.length, place);
      if (share === current) return;
      current = share;
      opts.log.info(
        { ollama_pods: ollamaPods.length, api_pods: apiPods.length, counted: place !== -1, answer_slots: share },
        "answer slots per model",
      );
      opts.onShare(share);
    } catch (err) {
      if (!failing) opts.log.warn({ err: describe(err) }, "could not count pods: the answer slots stay as they are");
      failing = true;
    }
  }

  // One count at a time: a lookup slower than refreshMs (a resolver that does not answer) would pile them up, and an
  // older count could land after a newer one.
  return { refresh, ...runPeriodically(refresh, 0, opts.refreshMs) };
}
