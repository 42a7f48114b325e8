import { connect, createServer, type Socket } from "node:net";

/**
 * A loopback TCP proxy a test puts between the app and Postgres or Redis to stage network faults the server process
 * cannot: a blip that keeps the server's data (`cut`), or a partition where packets vanish (`blackhole`).
 */
export interface TcpProxy {
  port: number;
  url: string;
  /** Client connections accepted so far (in any mode). */
  connections(): number;
  /** Refuses new connections and resets the open ones. */
  cut(): void;
  /** Accepts connections but forwards nothing, and stalls the open ones: calls hang until their own timeouts. */
  blackhole(): void;
  /** Forwards again; connections stalled by blackhole() are reset. */
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let mode: "pass" | "cut" | "blackhole" = "pass";
  let accepted = 0;
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();

  const server = createServer((client) => {
    accepted++;
    client.on("error", () => {});
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.once("close", () => {
      pairs.delete(pair);
      pair.upstream?.destroy();
    });
    if (mode === "cut") return void client.destroy();
    if (mode === "blackhole") return void client.resume();
    const upstream = connect(targetPort, "127.0.0.1");
    pair.upstream = upstream;
    upstream.on("error", () => client.destroy());
    upstream.once("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;

  const resetAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream?.destroy();
    }
  };

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections: () => accepted,
    cut() {
      mode = "cut";
      resetAll();
    },
    blackhole() {
      mode = "blackhole";
      for (const { client, upstream } of pairs) {
        client.unpipe();
        upstream?.unpipe();
        upstream?.pause();
        client.resume();
      }
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
