import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import postgres from "postgres";
import { createClient } from "redis";
import { migrate } from "../../app/src/services/db.ts";
import { createTurnWriter, type Turn } from "../../app/src/services/turns.ts";
import { MIGRATIONS_DIR } from "../../app/src/start.ts";
import { startStack, USER_KEY, type Stack } from "../support/app.ts";
import { api } from "../support/http.ts";

let stack: Stack;

before(async () => {
  stack = await startStack({ RATE_LIMIT_PER_MINUTE: "100000" });
});
after(() => stack.stop());

const turn = (session_id: string, i: number): Turn => ({
  request_id: randomUUID(),
  session_id,
  question: `question ${i}`,
  answer: `answer ${i} \u0000`,
  sources: [{ id: "d", score: 0.5, title: null, text: "chunk \ud800" }],
  model: "m",
  prompt_tokens: 0,
  completion_tokens: 0,
  latency_ms: 1,
  cached: true,
});

test("group commit: concurrent turns share statements, each resolves only once committed, a foreign session fails alone", async () => {
  const turnInserts: string[] = [];
  const sql = postgres(stack.pg.url, {
    onnotice: () => {},
    max: 4,
    debug: (_conn, query) => {
      if (/INSERT INTO turns/.test(query)) turnInserts.push(query);
    },
  });
  try {
    await migrate(sql, MIGRATIONS_DIR);
    const writer = createTurnWriter(sql, 5_000);
    await writer.record("owner-b", turn("owned-by-b", -1));

    const turns = Array.from({ length: 60 }, (_, i) => turn(`s-${i % 7}`, i));
    const results = await Promise.allSettled([
      ...turns.map((t) => writer.record("owner-a", t)),
      writer.record("owner-a", turn("owned-by-b", 99)),
    ]);
    assert.ok(
      results.slice(0, 60).every((r) => r.status === "fulfilled"),
      JSON.stringify(results.filter((r) => r.status === "rejected")),
    );
    const foreign = results[60]!;
    assert.equal(foreign.status, "rejected");
    assert.match(String((foreign as PromiseRejectedResult).reason.message), /belongs to another API key/);

    const stored =
      await sql`SELECT request_id, answer, sources FROM turns WHERE request_id IN ${sql(turns.map((t) => t.request_id))}`;
    assert.equal(stored.length, 60, "every acknowledged turn is in Postgres");
    assert.ok(
      stored.every((r) => !r.answer.includes("\u0000") && !JSON.stringify(r.sources).includes("\\ud800")),
      "unstorable text normalised",
    );
    // 1 for the setup turn, then at most a handful of statements for 61 turns (2 in flight, the rest batched).
    assert.ok(turnInserts.length <= 12, `${turnInserts.length} INSERT statements for 62 turns`);
  } finally {
    await sql.end();
  }
});

test("the rate-limit script is sent once and then run by its SHA1 (EVALSHA)", async () => {
  const redis = createClient({ url: stack.redis.url });
  await redis.connect();
  try {
    await redis.sendCommand(["CONFIG", "RESETSTAT"]);
    const user = api(stack.url, USER_KEY);
    for (let i = 0; i < 20; i++) assert.equal((await user.get("/api/v1/sessions/none")).status, 404);
    const stats = (await redis.sendCommand(["INFO", "commandstats"])) as string;
    const calls = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    assert.equal(calls("evalsha"), 20, stats);
    assert.ok(calls("eval") <= 1, "the script text goes once (on NOSCRIPT), not per request");
  } finally {
    await redis.close();
  }
});
