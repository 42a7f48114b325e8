import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect as connectTls } from "node:tls";
import { freePort, managedServer, spawnTracked, stopProcess, waitFor, type ManagedServer } from "./process.ts";

/** Redis keeps no data across halt(): it runs without persistence. */
export type RedisServer = ManagedServer;

/** True once the server answers PING: PONG, or NOAUTH when it wants a password (over TLS, its certificate unchecked). */
function answers(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: Socket = tls ? connectTls({ port, host: "127.0.0.1", rejectUnauthorized: false }) : connect(port, "127.0.0.1");
    socket.once("error", () => resolve(false));
    socket.once("data", (d) => {
      socket.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
    socket.write("PING\r\n");
  });
}

/** redis-server's arguments to listen on `port`: plain, or with `tls` TLS only, its files written to `dir`. */
async function listenArgs(port: number, dir: string, tls?: { cert: string; key: string }): Promise<string[]> {
  if (!tls) return ["--port", String(port), "--bind", "127.0.0.1"];
  const [cert, key] = [path.join(dir, "cert.pem"), path.join(dir, "key.pem")];
  await Promise.all([writeFile(cert, tls.cert), writeFile(key, tls.key, { mode: 0o600 })]);
  // Clients authenticate with the password (ElastiCache's AUTH token), not certificates. The URL names localhost, the
  // certificate's name, which may resolve to ::1: `-::1` is skipped where IPv6 is off.
  const files = ["--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no"];
  return ["--port", "0", "--tls-port", String(port), ...files, "--bind", "127.0.0.1", "-::1"];
}

/**
 * A throwaway redis-server on a free loopback port, without persistence. It still gets a directory of its own: a
 * replica (REPLICAOF) writes the primary's data there as it syncs. With `tls` it serves TLS only, with that
 * certificate (for `localhost`, its URL's host), as ElastiCache with in-transit encryption does.
 */
export async function startRedis(opts: { password?: string; tls?: { cert: string; key: string } } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), "agent-redis-"));
  const listen = await listenArgs(port, dir, opts.tls);
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = [...listen, "--dir", dir, "--save", "", "--appendonly", "no"];
    args.push("--daemonize", "no");
    if (opts.password) args.push("--requirepass", opts.password);
    child = spawnTracked(process.env.REDIS_SERVER ?? "redis-server", args);
    child.stdout?.resume();
    child.stderr?.resume();
    await waitFor("redis", () => answers(port, opts.tls !== undefined));
  };
  const halt = async () => {
    if (child) await stopProcess(child, "SIGTERM");
    child = undefined;
  };
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : "";
  const url = opts.tls ? `rediss://${auth}localhost:${port}` : `redis://${auth}127.0.0.1:${port}`;
  return managedServer(url, port, {
    start,
    halt,
    pid: () => child?.pid,
    cleanUp: () => rm(dir, { recursive: true, force: true }),
  });
}
