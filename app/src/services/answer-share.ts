import { lookup } from "node:dns/promises";
import { describe } from "../errors.ts";
import type { Logger } from "../log.ts";

/**
 * Ready pods behind `name`, a headless Service: Kubernetes DNS answers one address per ready pod, none when none is
 * (CoreDNS plugin/kubernetes/object/endpoint.go skips an EndpointSlice endpoint that is not Ready, which a pod is until
 * its readiness probe passes and again once it is terminating, unless the Service sets publishNotReadyAddresses).
 */
export type CountPods = (name: string) => Promise<number>;

const NO_ADDRESS = new Set(["ENOTFOUND", "ENODATA"]);

export const countAddresses: CountPods = async (name) => {
  try {
    return new Set((await lookup(name, { all: true })).map((a) => a.address)).size;
  } catch (err) {
    if (NO_ADDRESS.has((err as { code?: string }).code ?? "")) return 0;
    throw err;
  }
};

/** This replica's answers per model: the Ollama pods' slots shared out over the API pods, rounded up. */
export const answerShare = (ollamaPods: number, numParallel: number, apiPods: number): number =>
  Math.max(1, Math.ceil((ollamaPods * numParallel) / Math.max(1, apiPods)));

export interface AnswerShareOptions {
  /** Headless Service of the Ollama pods (OLLAMA_PODS_DNS) and of the API pods (API_PODS_DNS). */
  ollamaDns: string;
  apiDns: string;
  /** OLLAMA_NUM_PARALLEL: answers each Ollama pod generates at once, per model. */
  numParallel: number;
  refreshMs: number;
  /** Called with each new share (answer-slots.ts resize). */
  onShare: (slots: number) => void;
  log: Logger;
  countPods?: CountPods;
}

/**
 * Keeps this replica's share of Ollama's answer slots to the pods there are, counted every `refreshMs`. A share fixed
 * at deploy time (the HPA's minimum of API pods, the day's Ollama replicas) let the pods ask for more than the GPUs
 * have once the HPA added API pods (maxReplicas / minReplicas answers per slot, queued in Ollama without limit) or the
 * off-peak schedule removed Ollama pods. With no Ollama pod ready, or a lookup failing, the share stays as it was.
 * The first count starts at once.
 */
export function watchAnswerShare(opts: AnswerShareOptions) {
  const countPods = opts.countPods ?? countAddresses;
  let current: number | undefined;
  let failing = false;

  async function refresh(): Promise<void> {
    try {
      const [ollamaPods, apiPods] = await Promise.all([countPods(opts.ollamaDns), countPods(opts.apiDns)]);
      failing = false;
      if (ollamaPods === 0) return;
      const share = answerShare(ollamaPods, opts.numParallel, apiPods);
      if (share === current) return;
      current = share;
      opts.log.info({ ollama_pods: ollamaPods, api_pods: apiPods, answer_slots: share }, "answer slots per model");
      opts.onShare(share);
    } catch (err) {
      if (!failing) opts.log.warn({ err: describe(err) }, "could not count pods: the answer slots stay as they are");
      failing = true;
    }
  }

  void refresh();
  const timer = setInterval(refresh, opts.refreshMs);
  timer.unref();
  return { refresh, stop: () => clearInterval(timer) };
}
