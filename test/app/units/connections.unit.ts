import assert from "node:assert/strict";
import { test } from "node:test";
import { noAnswer } from "../../../app/src/errors.ts";
import { redisReconnectDelay } from "../../../app/src/services/cache.ts";
import { isUnavailable } from "../../../app/src/services/db.ts";
import {
  readOnlyNodeCheck,
  silentConnectionCheck,
  unansweredConnectionCheck,
} from "../../../app/src/services/connection-health.ts";

test("silentConnectionCheck: only misses in a row count, and the count starts over after it fires", () => {
  const fired: number[] = [];
  const check = silentConnectionCheck(3, (missed) => fired.push(missed));
  check.missed();
  check.missed();
  check.answered();
  check.missed();
  check.missed();
  assert.deepEqual(fired, [], "an answer in between resets the count");
  check.missed();
  assert.deepEqual(fired, [3]);
  check.missed();
  check.missed();
  assert.deepEqual(fired, [3], "counting starts over after it fired");
  check.missed();
  assert.deepEqual(fired, [3, 3]);
});

test("silentConnectionCheck with quietMs: misses while answers still come are a busy pool, not a silent one", async () => {
  const fired: number[] = [];
  const check = silentConnectionCheck(3, (missed) => fired.push(missed), 100);
  check.answered();
  for (let i = 0; i < 5; i++) check.missed();
  assert.deepEqual(fired, [], "answered just now: the misses waited behind others");
  await new Promise((resolve) => setTimeout(resolve, 120));
  check.missed();
  assert.deepEqual(fired, [6], "nothing answered for quietMs: silent");
  for (let i = 0; i < 6; i++) check.missed();
  assert.deepEqual(fired, [6], "the connections it just had opened get quietMs to answer before the next drop");
  await new Promise((resolve) => setTimeout(resolve, 120));
  check.missed();
  assert.deepEqual(fired, [6, 7], "still nothing answered: dropped again");
  await new Promise((resolve) => setTimeout(resolve, 120));
  check.answered();
  for (let i = 0; i < 5; i++) check.missed();
  assert.deepEqual(fired, [6, 7], "an answer just now, long after the last drop: still a busy pool");
});

test("unansweredConnectionCheck: a write no read follows for longer than the limit is reported; a slow answer, an idle connection, a write after a long idle are not", () => {
  const reported: string[] = [];
  const check = unansweredConnectionCheck<{ name: string; bytesRead: number; bytesWritten: number }>(10_000, (c) =>
    reported.push(c.name),
  );
  const [silent, slow, idle] = ["silent", "slow", "idle"].map((name) => ({ name, bytesRead: 100, bytesWritten: 50 }));
  const all = [silent!, slow!, idle!];
  check(all, 0);
  check(all, 30_000); // idle for 30 s: then each gets a statement
  silent!.bytesWritten += 20; // no answer ever comes
  slow!.bytesWritten += 20; // answered 9.5 s after the sample that first saw it
  check(all, 31_000);
  check(all, 40_000);
  slow!.bytesRead += 30;
  check(all, 40_500);
  check(all, 41_000);
  assert.deepEqual(reported, [], "counted from the sample that first saw the write (31 s): 10 s, not past the limit");
  check(all, 41_001);
  assert.deepEqual(reported, ["silent"]);
  // The slow one writes again and is answered within the limit each time; the idle one reads and sends nothing.
  for (let at = 42_000; at < 90_000; at += 1_000) {
    if (at % 8_000 === 0) slow!.bytesWritten += 20;
    if (at % 8_000 === 4_000) slow!.bytesRead += 30;
    check(all, at);
  }
  assert.deepEqual(reported, ["silent"], "reported once; a connection answering within the limit, or sending nothing, never");
});

test("readOnlyNodeCheck: a connection on a read-only node is dropped at once, then at most once per interval", async () => {
  let dropped = 0;
  const readOnly = readOnlyNodeCheck(() => dropped++, 100);
  readOnly();
  readOnly();
  readOnly();
  assert.equal(dropped, 1, "every write after the first on the same node fails too: one reconnect, not one each");
  await new Promise((resolve) => setTimeout(resolve, 120));
  readOnly();
  assert.equal(dropped, 2, "still read-only after the interval (a URL naming a replica): dropped again");
});

test("isUnavailable: a refused or ended connection and a server out of resources are 503s; a bad statement is not", () => {
  const pgError = (code: string, severity = "ERROR") => Object.assign(new Error(code), { code, severity });
  for (const err of [
    pgError("53300", "FATAL"), // max_connections or the role's limit reached
    pgError("28P01", "FATAL"), // the password was rotated under the app
    pgError("3D000", "FATAL"), // no such database
    pgError("57P01", "FATAL"), // terminated by a shutdown or failover
    pgError("53100"), // disk full
    pgError("57014"), // cancelled
    pgError("25006"), // read-only: a standby answered
    pgError("55P03"), // a lock not granted within lock_timeout
    pgError("40P01"), // a deadlock: asked again, it goes through
    pgError("08006"),
    Object.assign(new Error("refused"), { code: "ECONNREFUSED" }),
    Object.assign(new Error("timeout"), { code: "CONNECT_TIMEOUT" }),
  ])
    assert.equal(isUnavailable(err), true, err.message);
  for (const err of [pgError("23505"), pgError("22P02"), pgError("250060"), new Error("plain"), undefined, null, "53300"])
    assert.equal(isUnavailable(err), false, String(err));
});

test("a call that reached nothing (refused, no route, no connection within the connect timeout) is a 503, not a 502", () => {
  const connectError = (code: string) => new TypeError("fetch failed", { cause: Object.assign(new Error(code), { code }) });
  for (const code of ["ECONNREFUSED", "EHOSTUNREACH", "UND_ERR_CONNECT_TIMEOUT"])
    assert.equal(noAnswer("ollama", connectError(code)).status, 503, code);
  assert.equal(noAnswer("ollama", connectError("ECONNRESET")).status, 502, "reset once connected: it may have been answering");
});

test("redisReconnectDelay: doubles to 2 s, spread by up to 200 ms so replicas cut off together come back apart", () => {
  const delays = (retries: number) => Array.from({ length: 200 }, () => redisReconnectDelay(retries));
  for (const [retries, base] of [
    [0, 100],
    [3, 800],
    [10, 2000],
  ] as const) {
    const seen = delays(retries);
    assert.ok(
      seen.every((d) => Number.isInteger(d) && d >= base && d < base + 200),
      `${retries}: ${seen.slice(0, 5)}`,
    );
    // 200 draws of 200 values give about 126 distinct ones (50 is 17 standard deviations below); without jitter, 1.
    assert.ok(new Set(seen).size > 50, `${retries}: ${new Set(seen).size} distinct delays`);
  }
});
