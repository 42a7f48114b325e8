/**
 * A connection that stopped answering (a network partition, a node gone in a failover that did not reset it) stays
 * open until TCP gives up, which takes minutes, and every call on it waits out its deadline until then. This counts
 * calls in a row that went out and got no answer by their deadline; at `threshold`, and once nothing at all was
 * answered for `quietMs`, it calls `onSilent` (which drops the connections, so the client opens new ones) and starts
 * over. Any answer in time resets the count. `quietMs` tells a busy pool from a silent one: calls queued behind others
 * miss their deadlines in bursts while answers keep coming, and the Postgres pool was dropped 85 times in 3 s under
 * load, cutting the statements it was answering. A drop starts the quiet period over too: the connections it makes
 * the client open get `quietMs` to answer. Dropped again at every third miss, a pool whose startup took a few round
 * trips (200 ms deadlines, 40 ms away) was dropped over a thousand times and never answered after a partition.
 */
export function silentConnectionCheck(threshold: number, onSilent: (missedInARow: number) => void, quietMs = 0) {
  let missedInARow = 0;
  let quietSince = performance.now();
  return {
    answered(): void {
      missedInARow = 0;
      quietSince = performance.now();
    },
    missed(): void {
      if (++missedInARow < threshold || performance.now() - quietSince < quietMs) return;
      const missed = missedInARow;
      missedInARow = 0;
      quietSince = performance.now();
      onSilent(missed);
    },
  };
}

export type SilentConnectionCheck = ReturnType<typeof silentConnectionCheck>;

/**
 * A connection opened while a name led to a node that is read-only now (the old primary after a failover or
 * switchover, reached through a cached DNS answer) answers every write with an error (Redis READONLY, Postgres
 * 25006) for as long as it lives. The caller calls the result on such an answer; it calls `onReadOnly` (which drops
 * the connection, so the client opens a new one through the name) at most once per `minIntervalMs`: a URL that names
 * a replica answers so every time.
 */
export function readOnlyNodeCheck(onReadOnly: () => void, minIntervalMs = 1000) {
  let last = Number.NEGATIVE_INFINITY;
  return (): void => {
    if (performance.now() - last < minIntervalMs) return;
    last = performance.now();
    onReadOnly();
  };
}

/** The byte counts of a connection: a net.Socket's count its TLS traffic too (a TLSSocket over it reads and writes it). */
export interface ByteCounts {
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/**
 * A check, run at each sample of the client's connections, for connections that have read nothing for more than `limitMs` since a
 * sample first saw a write to them that no read has followed: a flow dropped on the way (a conntrack entry lost, a
 * node gone silent in a failover that did not reset it) while the client's other connections answer. A write is
 * counted from the sample that first saw it, after it went out, so `limitMs` past the longest a live server takes to
 * answer (Postgres: its statement_timeout) never reports a live connection. A write in the same period as the answer
 * before it is seen only with the next write to that connection.
 */
export function unansweredConnectionCheck<C extends ByteCounts>(limitMs: number, onUnanswered: (connection: C) => void) {
  /** Per connection: its counts at the sample that last saw it read, and since when a write after them is seen. */
  const seen = new WeakMap<C, { read: number; written: number; waitingSince?: number }>();
  return (connections: Iterable<C>, now = performance.now()): void => {
    for (const c of connections) {
      const last = seen.get(c);
      if (!last || c.bytesRead !== last.read) seen.set(c, { read: c.bytesRead, written: c.bytesWritten });
      else if (c.bytesWritten > last.written) {
        last.waitingSince ??= now;
        if (now - last.waitingSince <= limitMs) continue;
        seen.delete(c);
        onUnanswered(c);
      }
    }
  };
}
