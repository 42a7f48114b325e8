import type { ChatResult } from "./ollama.ts";
import type { Source } from "./source-sets.ts";

type Outcome = { result: ChatResult } | { error: unknown };

/**
 * An answer being generated in this process. Every request that asks the same thing meanwhile follows it instead of
 * calling the model again: it gets the text generated so far at once, then each new token, and the leader's result or
 * error.
 */
export class Generation {
  private readonly tokens: string[] = [];
  private outcome: Outcome | undefined;
  private wake: () => void = () => {};
  private changed = this.nextChange();

  /**
   * Starts `produce` (the model call); `onSettle` runs once it ended, before any follower hears of it. `produce` may
   * narrow the sources to those the model was finally asked with, before its first token.
   */
  constructor(
    private shown: Source[],
    /** The keys it is found under: the question's cache key and its prompt's hash (rag.ts). */
    readonly keys: readonly string[],
    /** Whether `produce` pushes tokens as they come (a streamed model call) or only settles with the whole answer. */
    readonly streamed: boolean,
    produce: (push: (token: string) => void, narrow: (sources: Source[]) => void) => Promise<ChatResult>,
    private readonly onSettle: () => void,
  ) {
    produce(
      (token) => this.push(token),
      (sources) => {
        this.shown = sources;
      },
    ).then(
      (result) => this.settle({ result }),
      (error: unknown) => this.settle({ error }),
    );
  }

  /** The sources in the prompt the answer comes from: final once a token came or the generation settled. */
  get sources(): Source[] {
    return this.shown;
  }

  private nextChange(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.changed = this.nextChange();
    wake();
  }

  private push(token: string): void {
    this.tokens.push(token);
    this.notify();
  }

  /** An answer that was not streamed becomes its one token. */
  private settle(outcome: Outcome): void {
    if ("result" in outcome && this.tokens.length === 0 && outcome.result.content) this.tokens.push(outcome.result.content);
    this.outcome = outcome;
    this.onSettle();
    this.notify();
  }

  /** The text so far in one piece, then each token as it comes; returns the leader's result or throws its error. */
  async *follow(): AsyncGenerator<string, ChatResult> {
    let read = 0;
    for (;;) {
      if (read < this.tokens.length) {
        const backlog = this.tokens.slice(read).join("");
        read = this.tokens.length;
        yield backlog;
      } else if (this.outcome) {
        if ("error" in this.outcome) throw this.outcome.error;
        return this.outcome.result;
      } else {
        await this.changed;
      }
    }
  }
}

interface Watcher {
  streamed: boolean;
  onStart: (generation: Generation) => void;
}

/** A streamed question follows only a streamed generation; a JSON one, either. */
const canFollow = (streamed: boolean, generation: Generation): boolean => generation.streamed || !streamed;

/**
 * The generations running in this process, each found under the keys it was started with (the question's cache key
 * and its prompt's hash) until it settles. Under a burst of one question (guide 000 runs Ollama with
 * OLLAMA_NUM_PARALLEL=4: a fifth identical question waited for a whole generation before its own began) this is one
 * model call instead of one per request.
 *
 * A streamed request follows only a streamed generation (`canFollow`). One that followed a JSON request's got no token
 * until the end, and failed with it at OLLAMA_TIMEOUT_MS, the deadline of a whole unstreamed answer, where its own
 * stream, whose deadline restarts with each token, would have gone on. A question waiting for an answer slot follows
 * one that starts (`watch`): that is its answer, where it might have waited on to a 503. So a generation started while
 * a stream waits under its keys is streamed (`streamWaiting`, rag.ts): a JSON request given the slot first started an
 * unstreamed one, and the stream waiting on got no token, then that answer's 504 (probe CH).
 */
export function createGenerations() {
  const running = new Map<string, Generation>();
  const watchers = new Map<string, Set<Watcher>>();

  return {
    find(key: string, streamed: boolean): Generation | undefined {
      const generation = running.get(key);
      return generation && canFollow(streamed, generation) ? generation : undefined;
    },

    /**
     * Calls `onStart` with each generation it can follow (`streamed`: the waiting question's) started under one of
     * `keys` from now on, until the returned function is called: a question waiting for an answer slot follows the
     * same question's answer once it starts.
     */
    watch(keys: string[], streamed: boolean, onStart: (generation: Generation) => void): () => void {
      const watcher = { streamed, onStart };
      for (const key of keys) {
        let set = watchers.get(key);
        if (!set) watchers.set(key, (set = new Set()));
        set.add(watcher);
      }
      return () => {
        for (const key of keys) {
          const set = watchers.get(key);
          set?.delete(watcher);
          if (set?.size === 0) watchers.delete(key);
        }
      };
    },

    /** Whether a streamed question waits for an answer slot under one of `keys`: a generation for them streams. */
    streamWaiting(keys: string[]): boolean {
      for (const key of keys) for (const watcher of watchers.get(key) ?? []) if (watcher.streamed) return true;
      return false;
    },

    /**
     * Starts `produce` (the model call), found under `keys` until it settles with its result or error. It runs at
     * its own pace, apart from every client following it, the one that started it included: a client that stops
     * reading holds up no one.
     */
    start(
      sources: Source[],
      keys: string[],
      streamed: boolean,
      produce: ConstructorParameters<typeof Generation>[3],
    ): Generation {
      const generation: Generation = new Generation(sources, keys, streamed, produce, () => {
        for (const key of keys) if (running.get(key) === generation) running.delete(key);
      });
      for (const key of keys) running.set(key, generation);
      // Each once, though it watches several of the keys.
      const told = new Set(keys.flatMap((key) => [...(watchers.get(key) ?? [])]));
      for (const watcher of told) if (canFollow(watcher.streamed, generation)) watcher.onStart(generation);
      return generation;
    },

    get size(): number {
      return running.size;
    },
  };
}

export type Generations = ReturnType<typeof createGenerations>;
