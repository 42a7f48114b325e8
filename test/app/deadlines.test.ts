// Deadlines against Node's event loop: a request's 504 (middleware/deadline.ts) and a call's (deadline.ts).
import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { type Context, Hono } from "hono";
import { beforeDeadline } from "../../app/src/deadline.ts";
import { requestDeadline } from "../../app/src/middleware/deadline.ts";
import type { AppEnv } from "../../app/src/types.ts";

test("deadlineAt is never later than the 504: a handler that checks it after the 504 always sees it passed", async () => {
  // Node counts a timer's start in whole milliseconds, so some timers fire up to 1 ms before performance.now() + ms:
  // with a handler that first keeps the loop busy for 0-3 ms, 30 to 49 of these 300 did with a timer armed for `ms`.
  const app = new Hono<AppEnv>();
  let context: Context<AppEnv> | undefined;
  app.use(requestDeadline(2));
  app.get("/", async (c) => {
    context = c;
    const busyUntil = performance.now() + Math.random() * 3;
    while (performance.now() < busyUntil);
    return new Promise<never>(() => {}); // answered by the deadline alone
  });
  const early: number[] = [];
  for (let i = 0; i < 300; i++) {
    const res = await app.request("/");
    const answeredAt = performance.now();
    assert.equal(res.status, 504);
    const deadlineAt = context!.get("deadlineAt");
    if (deadlineAt > answeredAt) early.push(deadlineAt - answeredAt);
  }
  assert.deepEqual(early, [], "504s sent before deadlineAt (ms before)");
});

test("a call's deadline passed while the event loop was held is decided after the answers already in: one in time wins", async () => {
  // A loopback connection: a write is in the peer's receive buffer when the write call returns (libuv writes at once
  // to an idle socket), so the answer is in while this loop is held, with no other process to wait for.
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
  const [peer] = (await Promise.all([once(server, "connection"), once(client, "connect")]))[0] as [Socket];
  try {
    let missed = 0;
    const answer = once(peer, "data").then(([data]) => String(data));
    const result = beforeDeadline(answer, 20, () => {
      missed++;
      return new Error("no answer within 20 ms");
    });
    // Asked and held from a setImmediate: the answer comes in while the loop is held, and Node runs the timers (the
    // deadline's, expired meanwhile) before it next polls the pipe where the answer waits. Decided in the timer, the
    // call was refused (a Postgres statement answered in time was a 503: probe AU).
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        client.write("pong");
        const heldUntil = performance.now() + 150;
        while (performance.now() < heldUntil);
        resolve();
      }),
    );
    assert.equal(await result, "pong");
    assert.equal(missed, 0, "the miss was counted");
  } finally {
    client.destroy();
    peer.destroy();
    server.close();
  }
});
