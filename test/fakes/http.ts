import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";

export interface Listening {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves a Hono app on a loopback address (port 0 = any free port; another 127.x address stands for another pod at the
 * same port). close() also drops keep-alive connections.
 */
export function listen(app: Hono, port = 0, hostname = "127.0.0.1"): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname }, (info: AddressInfo) => {
      resolve({
        url: `http://${hostname}:${info.port}`,
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            (server as Server).close(() => done());
            (server as Server).closeAllConnections();
          }),
      });
    }) as Server;
    server.once("error", reject);
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Failure and latency knobs shared by both fakes; tests flip them while the fake runs. */
export interface Knobs {
  /** Added before every answer (ms). */
  latencyMs: number;
  /** When set, every API request gets this HTTP status with the service's error body. */
  failStatus: number | null;
}

/** Handler durations (ms) per route, so a benchmark can subtract the fakes' own time. */
export class Timings {
  readonly byRoute = new Map<string, number[]>();
  add(route: string, ms: number) {
    const samples = this.byRoute.get(route) ?? [];
    if (samples.length < 100_000) samples.push(ms);
    this.byRoute.set(route, samples);
  }
  clear() {
    this.byRoute.clear();
  }
  median(route: string): number {
    const s = [...(this.byRoute.get(route) ?? [])].sort((a, b) => a - b);
    return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
  }
}
