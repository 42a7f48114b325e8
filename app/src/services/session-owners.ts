import { LRUCache } from "lru-cache";
import type { Store } from "./store.ts";
import { sessionForbidden } from "./turns.ts";

/** Sessions held as known to belong to a key: at most this many, each for at most this long. */
const KNOWN_ENTRIES = 10_000;
const KNOWN_TTL_MS = 10 * 60_000;

/**
 * Refuses a question naming another key's session before it costs an embedding or a model call, or streams a byte.
 * Refused only by the turn's write, such a question was answered first: streamed, the whole answer went out and the
 * stream ended with an error event.
 * The write stays the authority (two keys creating one new session at once; a session deleted by retention and
 * created again by another key); this check only refuses early. A session found to be the caller's is held, so a
 * conversation's later questions cost no statement. Any other answer is read again each time: a session not found
 * yet may be created by any key, and a refusal is never served from a copy that may be stale.
 */
export function createSessionOwners(store: Pick<Store, "sessionOwner">) {
  const known = new LRUCache<string, string>({ max: KNOWN_ENTRIES, ttl: KNOWN_TTL_MS });
  return {
    async check(sessionId: string, owner: string): Promise<void> {
      if (known.get(sessionId) === owner) return;
      const found = await store.sessionOwner(sessionId);
      if (found === undefined) return; // a new session: the turn's write creates it for this key
      if (found !== owner) throw sessionForbidden();
      known.set(sessionId, owner);
    },
  };
}
