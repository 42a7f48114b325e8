import assert from "node:assert/strict";
import { test } from "node:test";
import { timeOrderedId } from "../../../app/src/ids.ts";
import { uuidV7Time } from "../../support/ids.ts";

test("timeOrderedId makes RFC 9562 UUIDv7s carrying the time they were made", () => {
  const before = Date.now();
  const id = timeOrderedId();
  const made = uuidV7Time(id); // throws unless version 7 and variant 10
  assert.ok(made >= before && made <= Date.now(), `${id}: ${made} outside ${before}..${Date.now()}`);
});

test("ids made in a later millisecond sort after earlier ones, and ids of one millisecond differ", (t) => {
  let now = 0;
  t.mock.method(Date, "now", () => now);
  const at = (ms: number) => {
    now = ms;
    return timeOrderedId();
  };
  assert.equal(uuidV7Time(at(0x0123_4567_89ab)), 0x0123_4567_89ab);
  // Across a hex carry (...68ff to ...6900) and to 2100: their string order is their time order.
  const times = [1_700_000_000_000, 1_700_000_000_001, 0x18b_cfe5_68ff, 0x18b_cfe5_6900, 1_800_000_000_000, 4_102_444_800_000];
  const ids = times.map(at);
  assert.deepEqual([...ids].sort(), ids);
  const sameMs = new Set(Array.from({ length: 1_000 }, () => at(1_700_000_000_000)));
  assert.equal(sameMs.size, 1_000, "74 random bits each");
});
