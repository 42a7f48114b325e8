import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { appEnv, startApp } from "../support/app.ts";
import { startPostgres } from "../support/postgres.ts";
import { startRedis } from "../support/redis.ts";

test("replicas starting at once apply each migration exactly once (advisory lock)", { timeout: 60_000 }, async () => {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const env = appEnv({ databaseUrl: pg.url, redisUrl: redis.url, ollamaUrl: "http://127.0.0.1:1", qdrantUrl: "http://127.0.0.1:1" });
  const started = await Promise.allSettled([startApp(env), startApp(env), startApp(env), startApp(env)]);
  const apps = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  try {
    for (const s of started) if (s.status === "rejected") throw s.reason;
    for (const app of apps) assert.equal((await fetch(`${app.url}/health/ready`)).status, 200);
    const sql = postgres(pg.url, { onnotice: () => {} });
    const applied = await sql`SELECT name FROM schema_migrations`;
    assert.deepEqual(applied.map((r) => r.name), ["001_init.sql"]);
    const tables = await sql`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
    assert.deepEqual(tables.map((t) => t.tablename), ["api_keys", "documents", "feedback", "schema_migrations", "sessions", "turns"]);
    const indexes = await sql`SELECT indexname FROM pg_indexes WHERE tablename = 'turns'`;
    assert.ok(indexes.some((i) => i.indexname === "turns_session_created_idx"));
    await sql.end();
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
    await Promise.all([pg.stop(), redis.stop()]);
  }
});
