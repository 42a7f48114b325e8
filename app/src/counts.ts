/**
 * Amounts held per key (a key's answer slots, session pages or ingest bytes; a pod's calls in flight), and their total.
 * A key holding none has no entry: the map is as large as what is held now, not as every key ever seen.
 */
export class Counts {
  readonly #held = new Map<string, number>();
  #total = 0;

  of(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  get total(): number {
    return this.#total;
  }

  /**
   * Why `n` more for `key` would break a budget of `max` shared by keys (ingests, request bodies), if it would: past
   * `max` in all, "replica" (alone, it always fits); past its first, one key holds at most half ("key"), so the rest
   * stays for other keys. `held`: what the asker already holds (a body partly read), counted in `key`'s and the total.
   */
  overBudget(key: string, n: number, max: number, held = 0): "key" | "replica" | undefined {
    const mine = this.of(key) - held;
    const others = this.#total - held;
    if (mine > 0 && mine + held + n > max / 2) return "key";
    if (others > 0 && others + held + n > max) return "replica";
    return undefined;
  }

  /** Adds `n` (negative to give back) to what `key` holds. */
  add(key: string, n = 1): void {
    const now = this.of(key) + n;
    if (now > 0) this.#held.set(key, now);
    else this.#held.delete(key);
    this.#total += n;
  }
}
