import type { ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { freePort, managedServer, spawnTracked, stopProcess, waitFor, type ManagedServer } from "./process.ts";

/** Redis keeps no data across halt(): it runs without persistence. */
export type RedisServer = ManagedServer;

function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("error", () => resolve(false));
    socket.once("data", (d) => {
      socket.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
    socket.write("PING\r\n");
  });
}

/** A throwaway redis-server on a free loopback port, without persistence. */
export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"];
    if (opts.password) args.push("--requirepass", opts.password);
    child = spawnTracked(process.env.REDIS_SERVER ?? "redis-server", args);
    child.stdout?.resume();
    child.stderr?.resume();
    await waitFor("redis", async () => {
      if (!opts.password) return pong(port);
      return new Promise((resolve) => {
        const s = connect(port, "127.0.0.1");
        s.once("error", () => resolve(false));
        s.once("connect", () => {
          s.destroy();
          resolve(true);
        });
      });
    });
  };
  const halt = async () => {
    if (child) await stopProcess(child, "SIGTERM");
    child = undefined;
  };
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : "";
  return managedServer(`redis://${auth}127.0.0.1:${port}`, port, { start, halt });
}
