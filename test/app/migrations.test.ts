import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { MIGRATION_LOCK_ID, migrate } from "../../app/src/services/migrations.ts";
import { MIGRATIONS_DIR } from "../../app/src/start.ts";
import { appEnv, startApp } from "../support/app.ts";
import { capturedLog } from "../support/log.ts";
import { waitFor } from "../support/process.ts";
import { createDatabase, type PostgresServer, startPostgres } from "../support/postgres.ts";
import { startRedis } from "../support/redis.ts";

test("replicas starting at once apply each migration exactly once (advisory lock)", { timeout: 60_000 }, async () => {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const env = appEnv({
    databaseUrl: pg.url,
    redisUrl: redis.url,
    ollamaUrl: "http://127.0.0.1:1",
    qdrantUrl: "http://127.0.0.1:1",
  });
  const started = await Promise.allSettled([startApp(env), startApp(env), startApp(env), startApp(env)]);
  const apps = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  try {
    for (const s of started) if (s.status === "rejected") throw s.reason;
    for (const app of apps) assert.equal((await fetch(`${app.url}/health/ready`)).status, 200);
    const sql = postgres(pg.url, { onnotice: () => {} });
    const applied = await sql`SELECT name FROM schema_migrations`;
    assert.deepEqual(
      applied.map((r) => r.name),
      [
        "001_init.sql",
        "002_corpus_version.sql",
        "003_source_sets.sql",
        "004_lz4_toast.sql",
        "005_document_leases.sql",
        "006_turn_truncated.sql",
        "007_turns_sources_hash_index.sql",
        "008_source_set_bytes.sql",
        "009_document_lease_index.sql",
        "010_feedback_model.sql",
        "011_feedback_model_statistics.sql",
        "012_prune_turns_function.sql",
        "013_feedback_one_per_answer.sql",
        "014_take_back_turns_function.sql",
        "015_turn_retention_sweeps.sql",
        "016_drop_unused_locks_only_the_unused.sql",
        "017_turn_json_bytes.sql",
        "018_documents_all_or_none.sql",
      ],
    );
    const tables = await sql`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
    assert.deepEqual(
      tables.map((t) => t.tablename),
      [
        "api_keys",
        "corpus_version",
        "documents",
        "feedback",
        "schema_migrations",
        "sessions",
        "source_sets",
        "turn_retention_sweeps",
        "turns",
      ],
    );
    const indexes = await sql`SELECT indexname FROM pg_indexes WHERE tablename = 'turns'`;
    assert.ok(indexes.some((i) => i.indexname === "turns_session_created_idx"));
    assert.ok(indexes.some((i) => i.indexname === "turns_sources_hash_idx"));
    // A commit's large values are compressed with lz4 ('l'), not pglz: pglz spends its time even on text it then stores raw.
    const compression = await sql`
      SELECT attrelid::regclass::text AS rel, attname, attcompression::text AS method FROM pg_attribute
      WHERE (attrelid, attname) IN (('source_sets'::regclass, 'sources'), ('turns'::regclass, 'answer')) ORDER BY 1`;
    assert.deepEqual(
      compression.map((c) => `${c.rel}.${c.attname}:${c.method}`),
      ["source_sets.sources:l", "turns.answer:l"],
    );
    await sql.end();
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
    await Promise.all([pg.stop(), redis.stop()]);
  }
});

test("DATABASE_MIGRATE_URL runs migrations as the owner role; DATABASE_URL's role needs DML only", {
  timeout: 60_000,
}, async () => {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const admin = postgres(pg.url, { onnotice: () => {} });
  const roleUrl = (role: string) => pg.url.replace("postgres@", `${role}@`);
  try {
    await admin.unsafe(`
      CREATE ROLE app_owner LOGIN;
      CREATE ROLE app_runtime LOGIN;
      REVOKE CREATE ON SCHEMA public FROM PUBLIC;
      GRANT CREATE, USAGE ON SCHEMA public TO app_owner;
      GRANT USAGE ON SCHEMA public TO app_runtime;
      ALTER DEFAULT PRIVILEGES FOR ROLE app_owner GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_runtime;
      ALTER DEFAULT PRIVILEGES FOR ROLE app_owner GRANT USAGE ON SEQUENCES TO app_runtime;`);
    const urls = {
      databaseUrl: roleUrl("app_runtime"),
      redisUrl: redis.url,
      ollamaUrl: "http://127.0.0.1:1",
      qdrantUrl: "http://127.0.0.1:1",
    };

    await assert.rejects(
      startApp(appEnv(urls)),
      /migrating as DATABASE_URL: permission denied for schema public/,
      "the runtime role cannot run DDL, and the error says which URL's role tried",
    );
    const dir = await mkdtemp(path.join(tmpdir(), "migrations-"));
    await writeFile(path.join(dir, "001_ok.sql"), "CREATE TABLE probe_ok (id int);");
    await writeFile(path.join(dir, "002_typo.sql"), "CREATE TABEL probe_typo (id int);");
    await assert.rejects(migrate(admin, dir), (err: Error & { code?: string }) => {
      assert.match(err.message, /^migration 002_typo\.sql: syntax error at or near "TABEL"/);
      assert.equal(err.code, "42601", "the error keeps its SQLSTATE, which decides whether start-up retries");
      return true;
    });
    const kept = await admin`SELECT name FROM schema_migrations`;
    assert.deepEqual(
      kept.map((r) => r.name),
      ["001_ok.sql"],
      "each migration commits alone: the one before the typo stays",
    );
    await admin`DROP TABLE schema_migrations, probe_ok`;
    await rm(dir, { recursive: true });
    const app = await startApp(appEnv(urls, { DATABASE_MIGRATE_URL: roleUrl("app_owner") }));
    try {
      const owners = await admin`SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'`;
      assert.deepEqual(
        owners.map((o) => o.tableowner),
        ["app_owner"],
      );
      assert.equal((await fetch(`${app.url}/health/ready`)).status, 200, "the runtime role reads and writes");
    } finally {
      await app.stop();
    }
  } finally {
    await admin.end();
    await Promise.all([pg.stop(), redis.stop()]);
  }
});

let shared: PostgresServer | undefined;
after(() => shared?.stop());

/** A database of its own on one Postgres the tests below share (a server each took a second or more to start). */
async function freshDatabase(name: string): Promise<string> {
  shared ??= await startPostgres();
  return createDatabase(shared.url, name);
}

type ClientOptions = Pick<postgres.Options<Record<string, never>>, "max" | "connection">;

/**
 * A database of its own, a migrations directory and clients on it (`admin`, the superuser's, and more from `client`),
 * all ended or removed after `run`.
 */
async function withDatabase(
  name: string,
  run: (db: { admin: postgres.Sql; dir: string; client: (options?: ClientOptions) => postgres.Sql }) => Promise<void>,
): Promise<void> {
  const url = await freshDatabase(name);
  const dir = await mkdtemp(path.join(tmpdir(), "migrations-"));
  const clients: postgres.Sql[] = [];
  const client = (options: ClientOptions = {}) => {
    const sql = postgres(url, { onnotice: () => {}, ...options });
    clients.push(sql);
    return sql;
  };
  try {
    await run({ admin: client(), dir, client });
  } finally {
    await Promise.all(clients.map((sql) => sql.end()));
    await rm(dir, { recursive: true, force: true });
  }
}

test("migrations leave a serving replica's writes alone: one transaction each, an index built CONCURRENTLY", {
  timeout: 60_000,
}, async () => {
  await withDatabase("m_serving", async ({ admin, dir, client }) => {
    // A serving replica's connection: its lock_timeout is DB_QUERY_TIMEOUT_MS, past which its request is a 503.
    const serving = client({ connection: { lock_timeout: 300 } });
    await admin.unsafe("CREATE TABLE t (id serial PRIMARY KEY, x int); INSERT INTO t (x) SELECT 1 FROM generate_series(1, 1000)");
    // An ALTER's lock was held until the last migration of the deploy committed: through a slow one after it here.
    await writeFile(path.join(dir, "001_add.sql"), "ALTER TABLE t ADD COLUMN y int;");
    await writeFile(
      path.join(dir, "002_unique.sql"),
      "-- built without\n-- blocking writes\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_x_key ON t (x);",
    );
    await writeFile(path.join(dir, "003_slow.sql"), "SELECT pg_sleep(1.5);");
    const failures: string[] = [];
    let writes = 0;
    let migrating = true;
    const writer = (async () => {
      while (migrating) {
        await serving`INSERT INTO t (x) VALUES (${-1 - writes})`.then(
          () => writes++,
          (err: Error) => failures.push(err.message),
        );
        await sleep(50);
      }
    })();
    // The unique index fails on the duplicates and is left invalid: a retry must build it, not skip it as existing.
    await assert.rejects(migrate(admin, dir), /migration 002_unique\.sql: could not create unique index "t_x_key"/);
    await admin`DELETE FROM t WHERE x = 1`;
    assert.deepEqual(await migrate(admin, dir), ["002_unique.sql", "003_slow.sql"]);
    migrating = false;
    await writer;
    assert.deepEqual(failures, []);
    // No write failed on lock_timeout (300 ms): none queued behind the migrations. The count only shows the writes went
    // on throughout (28-30 here, loaded or not): loose, as a slower Postgres takes longer for each.
    assert.ok(writes > 12, `${writes} writes during the migrations`);
    const [index] = await admin`SELECT indisvalid FROM pg_index WHERE indexrelid = 't_x_key'::regclass`;
    assert.equal(index!.indisvalid, true);
  });
});

test("a migration waiting behind a long reader gives way to a serving replica's writes, and is applied after it", {
  timeout: 60_000,
}, async () => {
  await withDatabase("m_reader", async ({ admin, dir, client }) => {
    const reader = client({ max: 1 });
    const serving = client({ connection: { lock_timeout: 300 } });
    await admin`CREATE TABLE t (id serial PRIMARY KEY, x int)`;
    await writeFile(path.join(dir, "001_add.sql"), "ALTER TABLE t ADD COLUMN y int;");
    // A report reading t for 1.2 s: an ALTER waiting for it made every write queue behind the ALTER.
    const reading = reader.begin(async (tx) => {
      await tx`SELECT count(*) FROM t`;
      await tx`SELECT pg_sleep(1.2)`;
    });
    await sleep(100);
    const migrating = migrate(admin, dir);
    const failures: string[] = [];
    let writes = 0;
    const until = performance.now() + 1_700;
    while (performance.now() < until) {
      await serving`INSERT INTO t (x) VALUES (1)`.then(
        () => writes++,
        (err: Error) => failures.push(err.message),
      );
      await sleep(50);
    }
    await reading;
    assert.deepEqual(await migrating, ["001_add.sql"]);
    assert.deepEqual(failures, []);
    // As above: no write failed on lock_timeout; the count (19-22 here) shows they went on throughout, loosely.
    assert.ok(writes > 10, `${writes} writes`);
  });
});

test("a migration that keeps meeting readers stops giving way after a few tries, and waits its turn", {
  timeout: 60_000,
}, async () => {
  await withDatabase("m_readers", async ({ admin, dir, client }) => {
    const readers = client({ max: 2 });
    await admin`CREATE TABLE t (id serial PRIMARY KEY, x int)`;
    await writeFile(path.join(dir, "001_add.sql"), "ALTER TABLE t ADD COLUMN y int;");
    // Reports reading t that always overlap: no gap for a migration that only ever waits 200 ms (review N3).
    const until = performance.now() + 4_000;
    let migrated = false;
    const reading = [0, 300].map(async (offset) => {
      await sleep(offset);
      while (!migrated && performance.now() < until)
        await readers.begin(async (tx) => {
          await tx`SELECT count(*) FROM t`;
          await tx`SELECT pg_sleep(0.6)`;
        });
    });
    await sleep(100);
    const outcome = await Promise.race([migrate(admin, dir), sleep(3_500).then(() => "still giving way")]);
    migrated = true;
    await Promise.all(reading);
    assert.deepEqual(outcome, ["001_add.sql"]);
  });
});

test("feedback stored before it had a model gets its model column's statistics, which the summary's plan reads", {
  timeout: 60_000,
}, async () => {
  await withDatabase("m_stats", async ({ admin, dir }) => {
    const files = (await readdir(MIGRATIONS_DIR)).sort();
    const before = files.slice(0, files.indexOf("010_feedback_model.sql"));
    for (const file of before) await writeFile(path.join(dir, file), await readFile(path.join(MIGRATIONS_DIR, file)));
    await migrate(admin, dir);
    await admin`INSERT INTO sessions (id, owner) VALUES ('s', 'o')`;
    await admin`INSERT INTO turns (request_id, session_id, question, answer, model, latency_ms)
      SELECT 'r-' || n, 's', 'q', 'a', 'm', 1 FROM generate_series(1, 1000) n`;
    await admin`INSERT INTO feedback (request_id, quality_score, created_by) SELECT 'r-' || n, 3, 'o' FROM generate_series(1, 1000) n`;
    await admin`ANALYZE feedback`;
    await migrate(admin, MIGRATIONS_DIR);
    const [stats] = await admin`SELECT null_frac FROM pg_stats WHERE tablename = 'feedback' AND attname = 'model'`;
    assert.equal(stats?.null_frac, 1, "every row stored before 010 has no model, as the planner must know");
  });
});

test("an index build waiting for an open snapshot names it, and ends with the process that started it", {
  timeout: 60_000,
}, async () => {
  await withDatabase("m_snapshot", async ({ admin, dir, client }) => {
    const holder = client({ max: 1 });
    const migrating = client({ max: 2 });
    const { log, lines } = capturedLog("info");
    const lockHeld = async () =>
      (await admin`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${MIGRATION_LOCK_ID}`)[0]!.n;
    await admin`CREATE TABLE t (x int)`;
    await admin`CREATE TABLE other (y int)`;
    await writeFile(path.join(dir, "001_index.sql"), "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);");
    // A snapshot held open (pg_dump's, a report's in REPEATABLE READ), on a table the migration never touches.
    const session = await holder.reserve();
    await session`BEGIN ISOLATION LEVEL REPEATABLE READ`;
    await session`SELECT count(*) FROM other`;
    const [{ pid }] = await session`SELECT pg_backend_pid() AS pid`;
    void migrate(migrating, dir, log).catch(() => {});
    await waitFor("the build to name what it waits for", async () => lines.some((l) => l.includes(`"pid":${pid}`)), 10_000);
    assert.equal(await lockHeld(), 1);
    // The pod gave up and exited: its build ends with it, and the next pod can take the lock.
    await migrating.end({ timeout: 0 });
    await waitFor("the migration lock freed", async () => (await lockHeld()) === 0, 5_000);
    await session`ROLLBACK`;
    session.release();
  });
});

test("on a pool of one connection, a long index build keeps its session, its lock and its settings to the end", {
  timeout: 60_000,
}, async () => {
  await withDatabase("m_pool_of_one", async ({ admin, dir, client }) => {
    const holder = client({ max: 1 });
    const single = client({ max: 1 }); // DB_POOL_MAX=1 without DATABASE_MIGRATE_URL
    await admin`CREATE TABLE t (x int)`;
    await writeFile(path.join(dir, "001_index.sql"), "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);");
    await writeFile(
      path.join(dir, "002_after.sql"),
      `CREATE TABLE ran_on AS SELECT current_setting('statement_timeout') AS statement_timeout,
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${MIGRATION_LOCK_ID}
           AND pid = pg_backend_pid())::int AS locked;`,
    );
    // The build waits 1.5 s for this snapshot: past the report's first look, which waited for the pool's only
    // connection, so the session sat idle until idle_session_timeout ended it, and 002 ran on a new one without the lock.
    const session = await holder.reserve();
    await session`BEGIN ISOLATION LEVEL REPEATABLE READ`;
    await session`SELECT 1`;
    const ending = sleep(1_500).then(async () => {
      await session`ROLLBACK`;
      session.release();
    });
    assert.deepEqual(await migrate(single, dir), ["001_index.sql", "002_after.sql"]);
    await ending;
    assert.deepEqual([...(await admin`SELECT statement_timeout, locked FROM ran_on`)], [{ statement_timeout: "0", locked: 1 }]);
  });
});

test("an index on a table an earlier migration created is built CONCURRENTLY, so serving replicas go on writing", async () => {
  // A name as SQL may write it: schema-qualified, or after ONLY / IF NOT EXISTS.
  const name = String.raw`(?:(?:ONLY|IF\s+(?:NOT\s+)?EXISTS)\s+)*(?:\w+\.)?(\w+)`;
  const created = new Set<string>();
  const concurrentBuilds: string[] = [];
  for (const file of (await readdir(MIGRATIONS_DIR)).sort()) {
    const text = (await readFile(path.join(MIGRATIONS_DIR, file), "utf8")).replace(/--.*$/gm, "");
    const indexes = new RegExp(
      String.raw`CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(\w*).*?\bON\s+${name}`,
      "gis",
    );
    for (const [, concurrently, index, table] of text.matchAll(indexes)) {
      if (!created.has(table!)) continue;
      assert.ok(concurrently, `${file}: an index on ${table}, which has rows by then`);
      concurrentBuilds.push(index!);
    }
    // A UNIQUE, PRIMARY KEY or EXCLUDE constraint added to such a table, or a column added with one, builds its index
    // under a lock that stops writes, unless it adopts an index built CONCURRENTLY before (USING INDEX <name>; USING
    // INDEX TABLESPACE only places the one it builds).
    const indexingConstraint =
      /ADD\s+(?:CONSTRAINT\s+\w+\s+)?(?:UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b(?!\s+USING\s+INDEX\s+(?!TABLESPACE\b)\w)|ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!(?:CONSTRAINT|UNIQUE|PRIMARY|EXCLUDE|CHECK|FOREIGN)\b)\w+\s[^,;]*\b(?:UNIQUE|PRIMARY\s+KEY)\b/i;
    for (const [, table, actions] of text.matchAll(new RegExp(String.raw`ALTER\s+TABLE\s+${name}\s+([^;]*)`, "gi")))
      if (created.has(table!))
        assert.doesNotMatch(
          actions!,
          indexingConstraint,
          `${file}: a constraint that indexes ${table} while it blocks its writes`,
        );
    for (const [, table] of text.matchAll(new RegExp(String.raw`CREATE\s+TABLE\s+${name}`, "gi"))) created.add(table!);
  }
  assert.ok(created.has("turns"));
  // The scan reads the migrations' indexes at all: the two built on tables with rows are found, and built CONCURRENTLY.
  for (const index of ["turns_sources_hash_idx", "documents_writing_until_idx"])
    assert.ok(concurrentBuilds.includes(index), index);
});
