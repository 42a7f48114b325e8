import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

/** When a request is answered 504 (performance.now() ms) and that 504: work for it waits no longer (answer slots, turns). */
export type Deadline = { at: number; passed: () => Error };

/**
 * `promise`, or, once `ms` pass without it settling, a rejection with what `onDeadline` returns. `onDeadline` runs
 * once, at the deadline (a caller counts the miss or cancels its work there); the timer is cleared either way.
 * The deadline is decided on a `setImmediate`, after the I/O that came in meanwhile is read: when a long synchronous
 * task held the event loop past it, the timer ran before the answer already waiting on the socket (Node runs timers
 * before it polls), and a statement Postgres had answered in time was a 503 for another client's request (probe AU).
 */
export function beforeDeadline<T>(promise: Promise<T>, ms: number, onDeadline: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let decide: NodeJS.Immediate | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      decide = setImmediate(() => reject(onDeadline()));
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => {
    clearTimeout(timer);
    clearImmediate(decide);
  });
}

/**
 * `promise`, or, once `signal` aborts first, a rejection with what `onAbort` returns. The listener is removed either
 * way, so one long-lived signal can guard any number of calls.
 */
export function beforeAbort<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  let listener = () => {};
  const aborted = new Promise<never>((_, reject) => {
    listener = () => reject(onAbort());
  });
  if (signal.aborted) listener();
  else signal.addEventListener("abort", listener, { once: true });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener("abort", listener));
}

/**
 * A deadline for one call over undici's `request`, passed as its `signal`: undici takes an EventEmitter as well as an
 * AbortSignal (7.30.2 lib/api/api-request.js; the reason is read from `signal.reason`, here a TimeoutError as
 * AbortSignal.timeout gives). EventTarget is slow in Node and an EventEmitter listener is not: a Qdrant-sized call
 * against a local server took 90 us of CPU this way against 106 us with AbortSignal.timeout (2-core VM, median of 5).
 */
export class RequestDeadline extends EventEmitter {
  aborted = false;
  reason: unknown;
  readonly #timer: NodeJS.Timeout;

  constructor(ms: number) {
    super();
    this.#timer = setTimeout(() => this.abort(new DOMException(`no answer within ${ms} ms`, "TimeoutError")), ms);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    clearTimeout(this.#timer);
    this.emit("abort");
  }

  /** Starts the deadline over (a stream that keeps coming). */
  refresh(): void {
    if (!this.aborted) this.#timer.refresh();
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** Waits between tries of `retryUntil`: the first, then doubling up to the last. */
export const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 2_000;

export interface RetryOptions {
  /** Whether an error is worth another try (default: every one). */
  retryable?: (err: unknown) => boolean;
  /** Hears each error that will be tried again, and the wait before that try. */
  onRetry?: (err: unknown, waitMs: number) => void;
  /** The waits do not hold the process open (a background retry). */
  unref?: boolean;
}

/**
 * Calls `attempt` until it resolves, waiting RETRY_FIRST_MS, doubling to RETRY_MAX_MS, between tries. Rethrows the
 * last error once it is not `retryable` or `giveUpAt` has passed (performance.now() ms, which a stepped wall clock
 * does not move); the last wait is cut to end there.
 */
export async function retryUntil<T>(attempt: () => Promise<T>, giveUpAt: number, opts: RetryOptions = {}): Promise<T> {
  for (let delayMs = RETRY_FIRST_MS; ; delayMs = Math.min(delayMs * 2, RETRY_MAX_MS)) {
    try {
      return await attempt();
    } catch (err) {
      const waitMs = Math.min(delayMs, giveUpAt - performance.now());
      if (waitMs <= 0 || !(opts.retryable?.(err) ?? true)) throw err;
      opts.onRetry?.(err, waitMs);
      await sleep(waitMs, undefined, { ref: !opts.unref });
    }
  }
}
