// The API pod's init container script (infra/workloads/wait-for-paths.cjs), run as the pod runs it (`node -e`),
// against loopback ports that answer, refuse, or drop connects as a NetworkPolicy not yet told of a new pod does: a
// listener whose accept queue is full and never drained, so Linux drops the SYNs that follow and the connect times out.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { describe, test } from "node:test";

const SCRIPT = readFileSync(new URL("../../infra/workloads/wait-for-paths.cjs", import.meta.url), "utf8");

/** The script's run; `seconds` counted from `started` (by default, its spawn). */
function waitForPaths(
  args: string[],
  started = performance.now(),
): Promise<{ code: number | null; out: string; seconds: number }> {
  const child = spawn(process.execPath, ["-e", SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  // "close", not "exit": the output may still be in the pipes when the process has exited.
  return new Promise((resolve) =>
    child.once("close", (code) => resolve({ code, out, seconds: (performance.now() - started) / 1000 })),
  );
}

const listen = (port = 0) =>
  new Promise<net.Server>((resolve) => {
    const server = net.createServer((socket) => socket.destroy());
    server.listen({ port, host: "127.0.0.1" }, () => resolve(server));
  });
const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port;

/**
 * A port whose connects time out: a process that listens with a backlog of one and then accepts nothing for
 * `blockMs`, after which the same listener accepts (no moment where the port is closed and a connect is refused).
 */
async function droppingPort(blockMs: number): Promise<{ port: number; child: ChildProcess; fillers: net.Socket[] }> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("net").createServer();
       s.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
         console.log(s.address().port); // synchronous to a pipe on Linux: out before the loop stops
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${blockMs});
       });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d) => resolve(Number(String(d)))));
  // Linux queues backlog + 1 completed connections; these two fill the queue for good.
  const fillers = await Promise.all(
    [1, 2].map(
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
          s.on("error", () => {}); // reset when the listener is killed
        }),
    ),
  );
  return { port, child, fillers };
}

/**
 * The script's run against a path dropped for `blockMs`, with `seconds` to wait, timed from before the drop starts:
 * the script can see the path open no sooner than `blockMs` after that. (Timed from its own spawn, which comes later,
 * a retry landing just after the drop ended measured 2.49 s of a 2.5 s drop under load.)
 */
async function waitThroughDroppedPath(blockMs: number, seconds: string) {
  const started = performance.now();
  const dropping = await droppingPort(blockMs);
  try {
    return await waitForPaths([seconds, `127.0.0.1:${dropping.port}`], started);
  } finally {
    dropping.child.kill("SIGKILL");
    for (const s of dropping.fillers) s.destroy();
  }
}

describe("the API's init container waits for its paths to Qdrant and Ollama", { concurrency: true }, () => {
  test("an answering and a refusing port end the wait at once", async () => {
    const open = await listen();
    const closed = await listen();
    const closedPort = portOf(closed);
    await new Promise((resolve) => closed.close(resolve));
    const openPort = portOf(open);
    const run = await waitForPaths(["30", `localhost:${openPort}`, `127.0.0.1:${closedPort}`]);
    open.close();
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, new RegExp(`localhost:${openPort} 127.0.0.1: open`));
    assert.match(run.out, new RegExp(`127.0.0.1:${closedPort} 127.0.0.1: refused`));
    assert.ok(run.seconds < 5, `${run.seconds} s`);
  });

  test("a dropped path is waited for until it answers", async () => {
    // The path opens 2.5 s after it is first tried.
    const { code, out, seconds } = await waitThroughDroppedPath(2500, "30");
    assert.equal(code, 0, out);
    assert.match(out, /127\.0\.0\.1: open/);
    assert.ok(seconds > 2.5 && seconds < 10, `${seconds} s`);
  });

  test("a path still dropped at the deadline lets the pod start anyway", async () => {
    const { code, out, seconds } = await waitThroughDroppedPath(60_000, "3");
    assert.equal(code, 0, out);
    assert.match(out, /no answer by the deadline; starting anyway/);
    assert.ok(seconds >= 3 && seconds < 8, `${seconds} s`);
  });

  test("a name with no address (a headless Service with no ready pod) ends the wait at once", async () => {
    const { code, out, seconds } = await waitForPaths(["30", "no-ready-pod.invalid:11434"]);
    assert.equal(code, 0, out);
    assert.match(out, /no-ready-pod\.invalid:11434: no address/);
    // Well before the 30 s deadline; the machine's resolver answers the .invalid name (glibc retries a lost reply at 5 s).
    assert.ok(seconds < 15, `${seconds} s`);
  });

  test("arguments it cannot read are refused", async () => {
    for (const args of [[], ["30"], ["0", "qdrant:6333"], ["30", "qdrant"]]) {
      assert.equal((await waitForPaths(args)).code, 2, args.join(" "));
    }
  });
});
