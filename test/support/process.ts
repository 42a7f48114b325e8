import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createServer } from "node:net";

/** A free loopback TCP port (the OS picks one; a race with another process is possible but unlikely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms`);
}

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Spawns a server process that is SIGKILLed if the test process exits without stopping it. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Sends `signal` and resolves when the process has exited. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/** A server process a test can take down and bring back (an outage), then stop for good. */
export interface ManagedServer {
  url: string;
  port: number;
  /** Stops the server, keeping its data, so start() can bring it back. */
  halt(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** The server's process while it runs (for Postgres, the postmaster: its backends are its children). */
  pid(): number | undefined;
  /** Stops the server for good and removes what it left on disk. */
  stop(): Promise<void>;
}

/** A ManagedServer from its start and halt steps: started once before it is returned. */
export async function managedServer(
  url: string,
  port: number,
  steps: { start(): Promise<void>; halt(): Promise<void>; pid(): number | undefined; cleanUp?(): Promise<void> },
): Promise<ManagedServer> {
  await steps.start();
  return {
    url,
    port,
    halt: steps.halt,
    start: steps.start,
    pid: steps.pid,
    restart: async () => {
      await steps.halt();
      await steps.start();
    },
    stop: async () => {
      await steps.halt();
      await steps.cleanUp?.();
    },
  };
}
