import { sha256 } from "../sha256.ts";
import { storableJson } from "../text.ts";

export interface Source {
  id: string;
  score: number;
  title: string | null;
  text: string;
}

/** A turn's sources as stored (migration 003): their JSON, unstorable text normalised, keyed by its sha256. */
export interface SourceSet {
  hash: string;
  json: string;
}

/** Hashes remembered as committed; past this many the memory starts over (a forgotten set is only sent again). */
const MAX_KNOWN = 10_000;
/**
 * And past this age. Turn retention deletes a set once no turn refers to it, and keeps turns a day at least: a set
 * remembered here has a turn of this replica committed within the hour, so it is still stored.
 */
export const KNOWN_FOR_MS = 3_600_000;

const byArray = new WeakMap<Source[], SourceSet>();

/**
 * A source list's stored form, computed once per array (held weakly): cache hits of one answer share its sources
 * array, so its turns and its responses (rag.ts `resultJson`) reuse one JSON and one hash. A list is never changed
 * once built.
 */
export function sourceSetOf(sources: Source[]): SourceSet {
  let set = byArray.get(sources);
  if (!set) {
    const json = JSON.stringify(storableJson(sources));
    set = { hash: sha256(json), json };
    byArray.set(sources, set);
  }
  return set;
}

/**
 * Source lists stored once per distinct list: once a turn carrying a set committed, later statements send only the
 * hash for up to KNOWN_FOR_MS. A set's row never changes; turn retention deletes it once no turn refers to it.
 */
export function createSourceSets() {
  let known = new Set<string>();
  let knownSince = performance.now();
  const forgetIfStale = () => {
    if (known.size <= MAX_KNOWN && performance.now() - knownSince <= KNOWN_FOR_MS) return;
    known = new Set();
    knownSince = performance.now();
  };

  return {
    /** The sets not yet known to be committed, once each, as a JSON array of {hash, sources} for jsonb_to_recordset. */
    unsent(sets: SourceSet[]): string {
      forgetIfStale();
      const seen = new Set<string>();
      const parts: string[] = [];
      for (const { hash, json } of sets) {
        if (known.has(hash) || seen.has(hash)) continue;
        seen.add(hash);
        parts.push(`{"hash":"${hash}","sources":${json}}`);
      }
      return `[${parts.join(",")}]`;
    },

    /** Called with the sets of the turns a statement inserted, once it committed. */
    committed(sets: SourceSet[]): void {
      forgetIfStale();
      for (const { hash } of sets) known.add(hash);
    },
  };
}

export type SourceSets = ReturnType<typeof createSourceSets>;
