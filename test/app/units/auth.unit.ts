// The key lookup (middleware/auth.ts) as Postgres sees it: how often the api_keys table is read, cold, as keys are
// added and revoked, during an outage, and for a key in both configured lists.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createAuthenticator } from "../../../app/src/middleware/auth.ts";
import { sha256 } from "../../../app/src/sha256.ts";

const STORED_KEY = "stored-key-0123456789";
const FRESH_KEY = "fresh-key-0123456789";
const CONFIGURED_KEY = "configured-key-0123456789";

/** An authenticator over a key table a test edits, on a clock it moves; `reads` counts the table's reads. */
function keyTable(apiKeys: string[] = []) {
  const t = {
    rows: [{ id: "1", key_hash: sha256(STORED_KEY), scopes: ["query"] }],
    down: false,
    clock: 0,
    reads: 0,
  };
  const authenticate = createAuthenticator(
    apiKeys,
    [],
    {
      liveApiKeys: async () => {
        t.reads++;
        if (t.down) throw new Error("ECONNREFUSED");
        return t.rows as never;
      },
    },
    () => t.clock,
  );
  return Object.assign(t, { authenticate });
}

test("stored keys are held in memory: made-up keys cost one table read a second, new keys work within a second, revoked ones stop within a minute", async () => {
  const t = keyTable([CONFIGURED_KEY]);
  assert.equal((await t.authenticate(STORED_KEY))?.id, "db:1");
  const madeUp = await Promise.all(Array.from({ length: 1_000 }, (_, i) => t.authenticate(`made-up-key-${i}`)));
  assert.ok(madeUp.every((p) => p === null));
  assert.equal(t.reads, 1, "1,001 keys, one read");
  assert.equal((await t.authenticate(CONFIGURED_KEY))?.id.startsWith("key:"), true, "API_KEYS never need the table");

  t.rows = [...t.rows, { id: "2", key_hash: sha256(FRESH_KEY), scopes: ["query", "admin"] }];
  assert.equal(await t.authenticate(FRESH_KEY), null, "read less than a second ago");
  t.clock += 1_000;
  assert.deepEqual([...(await t.authenticate(FRESH_KEY))!.scopes], ["query", "admin"]);
  assert.equal(t.reads, 2);

  t.rows = t.rows.filter((r) => r.id !== "1");
  t.clock += 59_999;
  assert.equal((await t.authenticate(STORED_KEY))?.id, "db:1", "revoked less than a minute after the last read");
  t.clock += 1;
  assert.equal(await t.authenticate(STORED_KEY), null);

  t.down = true;
  t.clock += 60_000;
  assert.equal((await t.authenticate(FRESH_KEY))?.id, "db:2", "Postgres down: the last copy read is used");
  const cold = createAuthenticator([], [], { liveApiKeys: () => Promise.reject(new Error("ECONNREFUSED")) }, () => t.clock);
  await assert.rejects(cold(FRESH_KEY), /ECONNREFUSED/, "no copy yet: the request fails (503), not 'unknown key'");
  await assert.rejects(cold(FRESH_KEY), /ECONNREFUSED/, "and again on the next request");
});

test("requests arriving before the key table was ever read share one read of it, not one statement each", async () => {
  let reads = 0;
  const answers: Array<() => void> = [];
  const authenticate = createAuthenticator([], [], {
    liveApiKeys: () => {
      reads++;
      return new Promise((resolve) =>
        answers.push(() => resolve([{ id: "1", key_hash: sha256(STORED_KEY), scopes: ["query"] }] as never)),
      );
    },
  });
  // A replica's first seconds under load: every request comes before the first read is answered.
  const waiting = Array.from({ length: 50 }, (_, i) => authenticate(i % 2 ? STORED_KEY : `made-up-key-${i}`));
  await new Promise((r) => setImmediate(r));
  for (const answer of answers) answer();
  const principals = await Promise.all(waiting);
  assert.equal(reads, 1, "50 requests, one read");
  assert.deepEqual(new Set(principals.map((p) => p?.id ?? null)), new Set(["db:1", null]));
});

test("with Postgres down past the table's minute, the last copy is used and read again at most once a second", async () => {
  const t = keyTable();
  assert.equal((await t.authenticate(STORED_KEY))?.id, "db:1");
  t.down = true;
  t.clock += 60_000;
  // Each read of a Postgres that is down waits for its connect timeout: one a request would hold every request.
  for (let i = 0; i < 20; i++) assert.equal((await t.authenticate(STORED_KEY))?.id, "db:1", `request ${i}`);
  assert.equal(t.reads, 2, "one failed read for 20 requests");
  // A key not in the copy may have been added since: its request fails as the read did (a 503), not as unknown (401).
  t.clock += 999;
  await assert.rejects(t.authenticate("made-up-key-0123456789"), /ECONNREFUSED/);
  assert.equal(t.reads, 2, "an unknown key within the second after a failed read reads nothing");
  t.clock += 1;
  await assert.rejects(t.authenticate("made-up-key-0123456789"), /ECONNREFUSED/);
  assert.equal(t.reads, 3);
  t.down = false;
  t.rows = [...t.rows, { id: "2", key_hash: sha256(FRESH_KEY), scopes: ["query"] }];
  t.clock += 1_000;
  assert.equal((await t.authenticate(FRESH_KEY))?.id, "db:2", "added during the outage, and read once it ended");
  assert.equal(await t.authenticate("made-up-key-0123456789"), null, "read again: unknown is unknown");
});

test("a key in both API_KEYS and ADMIN_API_KEYS has both scopes", async () => {
  const key = "both-lists-key-0123456789";
  const authenticate = createAuthenticator([key], [key], { liveApiKeys: async () => [] as never });
  assert.deepEqual([...(await authenticate(key))!.scopes].sort(), ["admin", "query"]);
});
