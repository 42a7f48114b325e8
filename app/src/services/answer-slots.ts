import type { Deadline } from "../deadline.ts";
import { dependencyUnavailable } from "../errors.ts";
import { Counts } from "../counts.ts";

/**
 * `release` frees the slot (idempotent); `unused` frees it without a model call, so its time does not count in the
 * average hold time; `waited`: the question queued for it, so others may have moved on meanwhile.
 */
export type Slot = { release(): void; unused(): void; waited: boolean };

/** Weight of the newest hold time in the running average: about the last ten answers. */
const HOLD_WEIGHT = 0.2;

/** An Error (Hono's error handler takes only those; the request's abort reason is a string), named as an abort. */
const clientLeft = () => new DOMException("the client left while waiting for an answer slot", "AbortError");

const busyError = (model: string, reason: string) =>
  dependencyUnavailable("ollama", `every answer slot of ${model} is busy (${reason})`);

type Waiter = { owner: string; admit: (slot: Slot) => void };

/**
 * One model's slots: at most `limit.slots` answers at once (a limit that may change), the others waiting. A free slot
 * goes to the waiting question whose key holds the fewest slots, the earliest among those: first come first served
 * was one key's. Within its rate limit one key kept every slot with long answers, and the other keys' questions waited
 * behind its own to a 503: 0 of 34 answered (probe AP). With one key, the order is first come first served.
 */
function createLane(model: string, limit: { slots: number }, maxWaitMs: number) {
  /** Average time a slot is held, in ms; 0 until an answer ended. */
  let holdMs = 0;
  const waiting: Waiter[] = [];
  /** Slots held per key (owner), and in all. */
  const held = new Counts();
  /** Waiting questions given a slot so far. */
  let served = 0;

  /** Takes a free slot for `owner`. */
  function take(waited: boolean, owner: string): Slot {
    const since = performance.now();
    held.add(owner);
    let holding = true;
    const free = (timed: boolean) => {
      if (!holding) return;
      holding = false;
      const ms = performance.now() - since;
      if (timed) holdMs = holdMs === 0 ? ms : holdMs + HOLD_WEIGHT * (ms - holdMs);
      held.add(owner, -1);
      admitWaiting();
    };
    return { waited, release: () => free(true), unused: () => free(false) };
  }

  /**
   * How many of the waiting questions would be served before a new one of `owner`: its key's own, then of each other
   * key those that reach a slot while they hold no more than its key will by then (L, the ties going to the earlier).
   */
  function servedBefore(owner: string): number {
    const queued = new Map<string, number>();
    for (const w of waiting) queued.set(w.owner, (queued.get(w.owner) ?? 0) + 1);
    const level = held.of(owner) + (queued.get(owner) ?? 0);
    let ahead = queued.get(owner) ?? 0;
    for (const [key, n] of queued) if (key !== owner) ahead += Math.min(n, Math.max(0, level - held.of(key) + 1));
    return ahead;
  }

  /** The waiting question served next: its key holds the fewest slots, and it came first among those. */
  function next(): number {
    let best = 0;
    for (let i = 1; i < waiting.length; i++) if (held.of(waiting[i]!.owner) < held.of(waiting[best]!.owner)) best = i;
    return best;
  }

  /** Gives free slots to the questions waiting. */
  function admitWaiting(): void {
    while (held.total < limit.slots && waiting.length > 0) {
      served++;
      const [waiter] = waiting.splice(next(), 1);
      waiter!.admit(take(true, waiter!.owner));
    }
  }

  function acquire(owner: string, clientSignal?: () => AbortSignal, deadline?: Deadline): Promise<Slot> {
    if (held.total < limit.slots) return Promise.resolve(take(false, owner));
    const waitMs = deadline ? Math.min(maxWaitMs, deadline.at - performance.now()) : maxWaitMs;
    // No wait at all: the request's deadline has passed (its 504), or OLLAMA_SLOT_WAIT_MS is 0 (busy, a 503; it was
    // the 504 too, probe BR).
    if (waitMs <= 0)
      return Promise.reject(maxWaitMs <= 0 ? busyError(model, "none free, and none waited for") : deadline!.passed());
    const ahead = servedBefore(owner);
    const expectedMs = ((ahead + 1) * holdMs) / limit.slots;
    if (expectedMs > waitMs) {
      return Promise.reject(busyError(model, `${ahead} waiting ahead, about ${Math.round(expectedMs)} ms`));
    }
    return new Promise<Slot>((resolve, reject) => {
      const signal = clientSignal?.();
      if (signal?.aborted) return reject(clientLeft());
      const stopWaiting = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", left);
      };
      const leave = (reason: unknown) => {
        stopWaiting();
        waiting.splice(waiting.indexOf(waiter), 1);
        reject(reason);
      };
      const waiter: Waiter = {
        owner,
        admit: (slot) => {
          stopWaiting();
          resolve(slot);
        },
      };
      const left = () => leave(clientLeft());
      const servedAtStart = served;
      const timedOut = () => {
        const toOthers = served - servedAtStart;
        const passedOver =
          toOthers > 0 ? `: the ${toOthers} freed meanwhile went to questions before it, keys holding fewer first` : "";
        return busyError(model, `none free within ${maxWaitMs} ms${passedOver}`);
      };
      const timer = setTimeout(() => leave(waitMs < maxWaitMs ? deadline!.passed() : timedOut()), waitMs);
      signal?.addEventListener("abort", left, { once: true });
      waiting.push(waiter);
    });
  }

  return { acquire, admitWaiting };
}

/**
 * At most `slots` answers of each model asked of Ollama at once by this replica, the others waiting (the keys holding
 * the fewest first, createLane) for at most `maxWaitMs`. Ollama 0.13 does not bound its own queue once a model is
 * loaded: requests past OLLAMA_NUM_PARALLEL (per model) wait on that model's semaphore (llm/server.go Completion)
 * without limit, since OLLAMA_MAX_QUEUE only counts requests waiting for a model to load (server/sched.go GetRunner).
 * Under a burst past the GPUs' capacity every request then waited until OLLAMA_TIMEOUT_MS and most ended in a 504.
 * Here a question that cannot get a slot in time is a 503 with Retry-After; and once answers have been timed, one
 * whose expected wait (the answers ahead of it, at the average time a slot is held) passes `maxWaitMs` is a 503 at
 * once. `slots` 0: no limit.
 */
export function createAnswerSlots(opts: { slots: number; maxWaitMs: number }) {
  const lanes = new Map<string, ReturnType<typeof createLane>>();
  const limit = { slots: opts.slots };
  return {
    /**
     * A slot of `model` for a question of `owner` (the API key's id). `clientSignal` is read only if the question has
     * to wait: a client that leaves gives up its place, and none waits past its `deadline` (its request's 504). On a
     * kept-alive connection the client's signal does not fire after a 504, and questions told 504 waited on and took
     * the slots (and generations) of the questions behind them.
     */
    acquire(model: string, owner: string, clientSignal?: () => AbortSignal, deadline?: Deadline): Promise<Slot> {
      if (opts.slots === 0) return Promise.resolve({ release() {}, unused() {}, waited: false });
      let lane = lanes.get(model);
      if (!lane) lanes.set(model, (lane = createLane(model, limit, opts.maxWaitMs)));
      return lane.acquire(owner, clientSignal, deadline);
    },

    /**
     * Sets the slots per model (at least 1; no effect when the limit is off): more let waiting questions in at once,
     * fewer take effect as answers end.
     */
    resize(slots: number): void {
      if (opts.slots === 0) return;
      limit.slots = Math.max(1, slots);
      for (const lane of lanes.values()) lane.admitWaiting();
    },
  };
}
