import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, managedServer, spawnTracked, stopProcess, waitFor, type ManagedServer } from "./process.ts";

/** Redis keeps no data across halt(): it runs without persistence. */
export type RedisServer = ManagedServer;

/** True once the server answers PING: PONG, or NOAUTH when it wants a password. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("error", () => resolve(false));
    socket.once("data", (d) => {
      socket.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
    socket.write("PING\r\n");
  });
}

/**
 * A throwaway redis-server on a free loopback port, without persistence. It still gets a directory of its own: a
 * replica (REPLICAOF) writes the primary's data there as it syncs.
 */
export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), "agent-redis-"));
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"];
    args.push("--daemonize", "no");
    if (opts.password) args.push("--requirepass", opts.password);
    child = spawnTracked(process.env.REDIS_SERVER ?? "redis-server", args);
    child.stdout?.resume();
    child.stderr?.resume();
    await waitFor("redis", () => answers(port));
  };
  const halt = async () => {
    if (child) await stopProcess(child, "SIGTERM");
    child = undefined;
  };
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : "";
  return managedServer(`redis://${auth}127.0.0.1:${port}`, port, {
    start,
    halt,
    pid: () => child?.pid,
    cleanUp: () => rm(dir, { recursive: true, force: true }),
  });
}
