import { readFileSync } from "node:fs";

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** What aborts a request: the client's own signal, its per-call timeout, or either. */
function requestSignal(opts: { timeoutMs?: number; signal?: AbortSignal }): AbortSignal | undefined {
  const timeout = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined;
  return timeout && opts.signal ? AbortSignal.any([timeout, opts.signal]) : (timeout ?? opts.signal);
}

/**
 * Minimal JSON client for tests: `api(url, key).post("/api/v1/query", {...})`; `timeoutMs` bounds each call, and
 * `signal` aborts them (a client hanging up).
 */
export function api(baseUrl: string, key?: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}) {
  const send = async <T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body === undefined || typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
      signal: requestSignal(opts),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  };
  return {
    get: <T = any>(path: string, headers?: Record<string, string>) => send<T>("GET", path, undefined, headers),
    post: <T = any>(path: string, body: unknown, headers?: Record<string, string>) => send<T>("POST", path, body, headers),
    del: <T = any>(path: string) => send<T>("DELETE", path),
    send,
  };
}

/** Parses a Server-Sent Events body into {event, data} records. */
export function parseSse(text: string): Array<{ event: string; data: any }> {
  return text
    .split("\n\n")
    .filter((block) => block.trim())
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
      const data = lines
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      return { event, data: JSON.parse(data) };
    });
}

/**
 * A POST of the query route as raw bytes, for a test that controls the connection itself (pipelining, pauses, HTTP/1.0):
 * `length` other than the body's makes a body cut short; `chunked` sends Transfer-Encoding instead of a length (the
 * body is then sent in chunks by the test); `headers`, more header lines (each ending in CRLF); `path`, another route's.
 */
export const rawQuery = (
  key: string,
  body: string,
  { length = Buffer.byteLength(body), version = "1.1", headers = "", chunked = false, path = "/api/v1/query", typed = true } = {},
) =>
  `POST ${path} HTTP/${version}\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
  `${typed ? "Content-Type: application/json\r\n" : ""}${headers}${chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${length}`}\r\n\r\n${body}`;

/** The value of a kernel setting of three numbers (min, initial, max) at `index`, or Linux's default where unreadable. */
function tcpBuffer(name: "tcp_wmem" | "tcp_rmem", index: number, linuxDefault: number): number {
  try {
    return Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[index]) || linuxDefault;
  } catch {
    return linuxDefault;
  }
}

/**
 * An answer size that a loopback connection cannot hold for a client that reads nothing, on whatever machine runs the
 * tests: four times the sender's socket buffer at its maximum (tcp_wmem's third number: autotuning grows it there)
 * plus the receiver's at its start (tcp_rmem's second: it grows only as its reader reads). About 16.5 MiB with Linux's
 * defaults, as here; a fixed size (4 MiB) held all but 270 KB of itself here, and a machine with larger buffers would
 * hold it whole, and the test would pass without staging what it tests.
 */
export const beyondLoopbackBuffers = () => 4 * (tcpBuffer("tcp_wmem", 2, 4 * 1024 * 1024) + tcpBuffer("tcp_rmem", 1, 128 * 1024));
