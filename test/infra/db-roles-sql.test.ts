// The DB-roles bootstrap (infra/workloads/db-roles.sql) against a real PostgreSQL, run twice as a non-superuser
// master the way the Job runs it on RDS: least privilege for the runtime and exporter roles, DDL for the owner.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { startPostgres, type PostgresServer } from "../support/postgres.ts";

const SQL_FILE = fileURLToPath(new URL("../../infra/workloads/db-roles.sql", import.meta.url));
const ROLES = { OWNER_USER: "agent_owner", APP_USER: "agent_app", MONITOR_USER: "agent_monitor" };
let pg: PostgresServer;

function psql(user: string, sql: string, extra: string[] = [], env: Record<string, string> = {}) {
  const run = spawnSync("psql", ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", ...extra, ...(sql ? ["-c", sql] : [])], {
    encoding: "utf8",
    env: {
      ...process.env,
      PGHOST: "127.0.0.1",
      PGPORT: String(pg.port),
      PGUSER: user,
      PGDATABASE: user === "postgres" ? "postgres" : "agent",
      ...env,
    },
  });
  return { ok: run.status === 0, out: run.stdout.trim(), err: run.stderr.trim() };
}

function bootstrap(passwordSuffix: string) {
  const env = {
    ...ROLES,
    OWNER_PASSWORD: `owner-${passwordSuffix}`,
    APP_PASSWORD: `app-${passwordSuffix}`,
    MONITOR_PASSWORD: `monitor-${passwordSuffix}`,
  };
  const run = psql("agent", "", ["-f", SQL_FILE], env);
  assert.ok(run.ok, run.err);
}

before(async () => {
  pg = await startPostgres();
  // An RDS-like master: not a superuser, may create roles, holds pg_monitor with ADMIN (as rds_superuser does).
  for (const sql of [
    "CREATE ROLE agent LOGIN CREATEROLE",
    "GRANT pg_monitor TO agent WITH ADMIN OPTION",
    "CREATE DATABASE agent OWNER agent",
  ])
    assert.ok(psql("postgres", sql).ok);
  // A stack whose migrations ran as the master before the roles existed.
  assert.ok(psql("agent", "CREATE TABLE sessions (id bigserial PRIMARY KEY, body text)").ok);
});
after(() => pg?.stop());

test("runs twice without error and resets passwords on the second run", () => {
  bootstrap("one");
  const first = psql("postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'agent_app'").out;
  bootstrap("two");
  const second = psql("postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'agent_app'").out;
  assert.ok(first && second && first !== second, "password changed with the Secret");
  assert.equal(psql("postgres", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'agent\\_%'").out, "3");
});

test("the master's old tables move to the owner; the runtime role gets DML on them and on the owner's new ones", () => {
  assert.equal(
    psql("postgres", "SELECT tableowner FROM pg_tables WHERE tablename = 'sessions'", ["-d", "agent"]).out,
    "agent_owner",
  );
  const owner = (sql: string) => psql("agent_owner", sql);
  assert.ok(owner("CREATE TABLE turns (id bigserial PRIMARY KEY, n int)").ok, "owner runs migrations");
  const app = (sql: string) => psql("agent_app", sql);
  for (const table of ["sessions", "turns"]) {
    const col = table === "sessions" ? "body" : "n";
    const value = table === "sessions" ? "'x'" : "1";
    assert.ok(app(`INSERT INTO ${table} (${col}) VALUES (${value})`).ok, `app inserts into ${table}`);
    assert.ok(app(`UPDATE ${table} SET ${col} = ${value}`).ok);
    assert.ok(app(`DELETE FROM ${table}`).ok);
  }
  assert.match(app("CREATE TABLE evil (x int)").err, /permission denied for schema public/);
  assert.match(app("DROP TABLE sessions").err, /must be owner/);
  assert.match(app("TRUNCATE sessions").err, /permission denied/);
});

test("the exporter's role reads statistics, not the app's data", () => {
  const monitor = (sql: string) => psql("agent_monitor", sql);
  assert.match(monitor("SELECT * FROM sessions").err, /permission denied/);
  assert.ok(monitor("SELECT count(*) FROM pg_stat_activity WHERE query IS NOT NULL").ok);
  assert.equal(psql("postgres", "SELECT pg_has_role('agent_monitor', 'pg_monitor', 'USAGE')").out, "t");
});
