import { connect, createServer, type Socket } from "node:net";

/**
 * A loopback TCP proxy a test puts between the app and Postgres or Redis to stage network faults the server process
 * cannot: a blip that keeps the server's data (`cut`), a partition where packets vanish (`blackhole`), a failover
 * whose old node went silent while the new one answers (`silenceOpen`), or a server that drops each new connection as
 * it starts to use it (`cutAtFirstRequest`), or a failover that moved the name to another node (`retarget`).
 */
export interface TcpProxy {
  port: number;
  url: string;
  /** Client connections accepted so far (in any mode). */
  connections(): number;
  /** What clients have sent through it so far, connection after connection (with `record` only). */
  sent(): Buffer;
  /** What each client connection has sent through it so far, in the order they were accepted (with `record` only). */
  sentByConnection(): Buffer[];
  /** Refuses new connections and resets the open ones. */
  cut(): void;
  /** Accepts connections but forwards nothing, and stalls the open ones: calls hang until their own timeouts. */
  blackhole(): void;
  /**
   * Resets the open connections; each new one is forwarded through its opening exchange (the client's first write and
   * the server's answers) and, when the client writes again (its first statement or command), gets `farewell` (what
   * the server says as it drops a connection) and is reset. A database restarting or failing over does this to a pool
   * that is reconnecting.
   */
  cutAtFirstRequest(farewell?: Buffer): void;
  /**
   * The open connections (the `count` opened first, when given) stop forwarding in both directions, and are never
   * reset; new ones are forwarded.
   */
  silenceOpen(count?: number): void;
  /** Client connections still open, silenced ones included. */
  open(): number;
  /** New connections go to `port` from now on, as a name does once a failover moved it; open ones stay where they are. */
  retarget(port: number): void;
  /** Forwards again; connections stalled by blackhole() are reset. */
  restore(): void;
  close(): Promise<void>;
}

/** `record`: keep what clients send (`sent()`), to see what a client library writes that the server does not show. */
export async function startTcpProxy(targetPort: number, opts: { record?: boolean } = {}): Promise<TcpProxy> {
  let target = targetPort;
  let mode: "pass" | "cut" | "blackhole" | "cutAtFirstRequest" = "pass";
  let farewell: Buffer | undefined;
  let accepted = 0;
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  /** Each client connection's writes, in the order they were accepted (`record`). */
  const recorded: Buffer[][] = [];

  const server = createServer((client) => {
    accepted++;
    client.on("error", () => {});
    if (opts.record) {
      const own: Buffer[] = [];
      recorded.push(own);
      client.on("data", (d: Buffer) => own.push(d));
    }
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.once("close", () => {
      pairs.delete(pair);
      pair.upstream?.destroy();
    });
    if (mode === "cut") return void client.destroy();
    if (mode === "blackhole") return void client.resume();
    const upstream = connect(target, "127.0.0.1");
    pair.upstream = upstream;
    upstream.on("error", () => client.destroy());
    upstream.once("close", () => client.destroy());
    upstream.pipe(client);
    if (mode !== "cutAtFirstRequest") return void client.pipe(upstream);
    client.once("data", (opening: Buffer) => {
      upstream.write(opening);
      client.once("data", () => {
        upstream.unpipe(client);
        client.end(farewell ?? Buffer.alloc(0), () => client.destroy());
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;

  const resetAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream?.destroy();
    }
  };

  /** The open connections stop forwarding either way: what the client sends vanishes, the server is not read. */
  const stallOpen = (count = pairs.size) => {
    for (const { client, upstream } of [...pairs].slice(0, count)) {
      client.unpipe();
      upstream?.unpipe();
      upstream?.pause();
      client.resume();
    }
  };

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections: () => accepted,
    sent: () => Buffer.concat(recorded.flat()),
    sentByConnection: () => recorded.map((own) => Buffer.concat(own)),
    open: () => pairs.size,
    cut() {
      mode = "cut";
      resetAll();
    },
    blackhole() {
      mode = "blackhole";
      stallOpen();
    },
    cutAtFirstRequest(bytes) {
      mode = "cutAtFirstRequest";
      farewell = bytes;
      resetAll();
    },
    silenceOpen: stallOpen,
    retarget(port) {
      target = port;
    },
    restore() {
      if (mode === "blackhole") resetAll();
      mode = "pass";
    },
    close: () =>
      new Promise<void>((resolve) => {
        resetAll();
        server.close(() => resolve());
      }),
  };
}
