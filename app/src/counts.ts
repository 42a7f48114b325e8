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

  /** Adds `n` (negative to give back) to what `key` holds. */
  add(key: string, n = 1): void {
    const now = this.of(key) + n;
    if (now > 0) this.#held.set(key, now);
    else this.#held.delete(key);
    this.#total += n;
  }
}
