import { execFileSync, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { freePort, managedServer, spawnTracked, stopProcess, waitFor, type ManagedServer } from "./process.ts";

/** PG_BIN, else the newest server Debian installed (bookworm ships 15, trixie 17). */
const bin = (tool: string) => path.join(process.env.PG_BIN ?? newestPostgresBin(), tool);

function newestPostgresBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server under ${root}: run \`npm run test:deps\` (or set PG_BIN)`);
  return path.join(root, versions[0], "bin");
}

export type PostgresServer = ManagedServer;

/** The uid/gid to run as: initdb and postgres refuse root, so root runs them as the `postgres` user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

/** A directory the server's user can reach, under the system's temporary directory. */
async function serverDir(prefix: string, user: { uid: number; gid: number } | undefined): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  if (user) await chown(dir, user.uid, user.gid);
  return dir;
}

/**
 * An initdb'd data directory, made once per machine, server version and user: each cluster starts from a copy of it.
 * A copy takes about a third of initdb's second, and the suite starts some 40 clusters. Made aside and renamed into
 * place, so a test file never copies a half-made one, and two making it at once both end with the one that won.
 */
async function template(user: { uid: number; gid: number } | undefined): Promise<string> {
  const version = path.basename(path.dirname(path.dirname(bin("initdb")))); // /usr/lib/postgresql/<version>/bin
  const made = path.join(tmpdir(), `agent-pg-template-${version}-${user?.uid ?? process.getuid?.() ?? "user"}`);
  if (existsSync(path.join(made, "PG_VERSION"))) return made;
  const staging = await serverDir("agent-pg-staging-", user);
  try {
    const data = path.join(staging, "data");
    const init = spawnSync(bin("initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], {
      ...user,
      encoding: "utf8",
    });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
    await rename(data, made).catch((err: NodeJS.ErrnoException) => {
      if (!existsSync(path.join(made, "PG_VERSION"))) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return made;
}

/**
 * With `tls`, the cluster serves TLS with that certificate and, as RDS with rds.force_ssl does, admits roles other
 * than `postgres` only over TLS and with a SCRAM password (`postgres` keeps trust, to set the test up).
 */
const TLS_HBA = [
  "local all all trust",
  "host all postgres 127.0.0.1/32 trust",
  "hostssl all all 127.0.0.1/32 scram-sha-256",
  "hostnossl all all 127.0.0.1/32 reject",
].join("\n");

/**
 * A throwaway PostgreSQL cluster on a free loopback port (trust auth). Tests run it with fsync, synchronous_commit and
 * full_page_writes off; `durable` keeps Postgres' defaults, as RDS runs it: each commit waits for its WAL flush.
 */
export async function startPostgres(
  opts: { durable?: boolean; tls?: { cert: string; key: string } } = {},
): Promise<PostgresServer> {
  if (!existsSync(bin("postgres"))) throw new Error(`PostgreSQL binaries not found at ${bin("postgres")} (set PG_BIN)`);
  const user = serverUser();
  const dir = await serverDir("agent-pg-", user);
  const data = path.join(dir, "data");
  // -a keeps the owner (the server's user) and the mode (0700) Postgres insists on.
  execFileSync("cp", ["-a", await template(user), data]);
  const tlsArgs: string[] = [];
  if (opts.tls) {
    // The key must be the server user's and 0600, or Postgres refuses to start.
    for (const [file, pem, mode] of [
      ["server.crt", opts.tls.cert, 0o644],
      ["server.key", opts.tls.key, 0o600],
      ["pg_hba.conf", `${TLS_HBA}\n`, 0o600],
    ] as const) {
      await writeFile(path.join(data, file), pem, { mode });
      if (user) await chown(path.join(data, file), user.uid, user.gid);
    }
    tlsArgs.push("-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key");
  }
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawnTracked(
      bin("postgres"),
      [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        ...(opts.durable ? [] : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
        ...tlsArgs,
      ],
      { ...user },
    );
    child.stdout?.resume();
    child.stderr?.resume();
    await waitFor(
      "postgres",
      async () => spawnSync(bin("pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"]).status === 0,
    );
  };
  // SIGINT is Postgres' "fast" shutdown: open connections are cut, as in an outage.
  const halt = async () => {
    if (child) await stopProcess(child, "SIGINT");
    child = undefined;
  };

  return managedServer(url, port, {
    start,
    halt,
    pid: () => child?.pid,
    cleanUp: () => rm(dir, { recursive: true, force: true }),
  });
}

/** Creates an empty database `name` on the server `url` points to, and returns its URL. */
export async function createDatabase(url: string, name: string): Promise<string> {
  const admin = postgres(url, { onnotice: () => {}, max: 1 });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const other = new URL(url);
  other.pathname = `/${name}`;
  return other.toString();
}

/**
 * The ErrorResponse a backend sends as it is terminated (pg_terminate_backend, or every backend at a fast shutdown):
 * FATAL 57P01. Wire format: 'E', an int32 length, then (field code, NUL-terminated text) pairs and a final NUL.
 */
export function terminationNotice(): Buffer {
  const fields = Buffer.from("SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0", "utf8");
  const header = Buffer.alloc(5);
  header.write("E", 0);
  header.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}

/**
 * Backends waiting on a lock, as pg_stat_activity shows them: only those of `database`, of `application` (its
 * application_name; the app's is agent-api) or running a statement LIKE `statement`, each when given.
 */
export async function lockWaiters(
  sql: postgres.Sql,
  only: { database?: string; application?: string; statement?: string } = {},
): Promise<number> {
  const { database = null, application = null, statement = null } = only;
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE wait_event_type = 'Lock'
      AND (${database}::text IS NULL OR datname = ${database}::text)
      AND (${application}::text IS NULL OR application_name = ${application}::text)
      AND (${statement}::text IS NULL OR query LIKE ${statement}::text)`;
  return row!.n;
}
