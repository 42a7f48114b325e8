// The key lookup (middleware/auth.ts) as Postgres sees it: how many times the api_keys table is read, cold, during an
// outage and for a key in both configured lists.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createAuthenticator } from "../../../app/src/middleware/auth.ts";
import { sha256 } from "../../../app/src/sha256.ts";

const STORED_KEY = "stored-key-0123456789";
const rows = [{ id: "1", key_hash: sha256(STORED_KEY), scopes: ["query"] }];

test("requests arriving before the key table was ever read share one read of it, not one statement each", async () => {
  let reads = 0;
  const answers: Array<() => void> = [];
  const authenticate = createAuthenticator([], [], {
    liveApiKeys: () => {
      reads++;
      return new Promise((resolve) => answers.push(() => resolve(rows as never)));
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
  let clock = 0;
  let reads = 0;
  let down = false;
  const authenticate = createAuthenticator(
    [],
    [],
    {
      liveApiKeys: async () => {
        reads++;
        if (down) throw new Error("ECONNREFUSED");
        return rows as never;
      },
    },
    () => clock,
  );
  assert.equal((await authenticate(STORED_KEY))?.id, "db:1");
  down = true;
  clock += 60_000;
  // Each read of a Postgres that is down waits for its connect timeout: one a request would hold every request.
  for (let i = 0; i < 20; i++) assert.equal((await authenticate(STORED_KEY))?.id, "db:1", `request ${i}`);
  assert.equal(reads, 2, "one failed read for 20 requests");
  clock += 999;
  await authenticate("made-up-key-0123456789");
  assert.equal(reads, 2, "an unknown key within the second after a failed read reads nothing");
  clock += 1;
  await authenticate("made-up-key-0123456789");
  assert.equal(reads, 3);
});

test("a key in both API_KEYS and ADMIN_API_KEYS has both scopes", async () => {
  const key = "both-lists-key-0123456789";
  const authenticate = createAuthenticator([key], [key], { liveApiKeys: async () => [] as never });
  assert.deepEqual([...(await authenticate(key))!.scopes].sort(), ["admin", "query"]);
});
