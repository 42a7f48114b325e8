import { createHash } from "node:crypto";
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
 * Source lists stored once per distinct list. Cache hits of one answer share its sources array, so its JSON and hash
 * are computed once per array (held weakly), and once a statement carrying a set committed, later statements send
 * only the hash: source_sets rows are immutable and never deleted.
 */
export function createSourceSets() {
  const byArray = new WeakMap<Source[], SourceSet>();
  let known = new Set<string>();

  return {
    of(sources: Source[]): SourceSet {
      let set = byArray.get(sources);
      if (!set) {
        const json = JSON.stringify(storableJson(sources));
        set = { hash: createHash("sha256").update(json).digest("hex"), json };
        byArray.set(sources, set);
      }
      return set;
    },

    /** The sets not yet known to be committed, once each, as a JSON array of {hash, sources} for jsonb_to_recordset. */
    unsent(sets: SourceSet[]): string {
      const seen = new Set<string>();
      const parts: string[] = [];
      for (const { hash, json } of sets) {
        if (known.has(hash) || seen.has(hash)) continue;
        seen.add(hash);
        parts.push(`{"hash":"${hash}","sources":${json}}`);
      }
      return `[${parts.join(",")}]`;
    },

    /** Called once a statement carrying these sets committed. */
    committed(sets: SourceSet[]): void {
      if (known.size > MAX_KNOWN) known = new Set();
      for (const { hash } of sets) known.add(hash);
    },
  };
}

export type SourceSets = ReturnType<typeof createSourceSets>;
