// Which request heads are refused before the app (http-refusals.ts hostRefusal, framingRefusal): what RFC 9112 allows
// is served, whatever its spelling.
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { framingRefusal, hostRefusal } from "../../../app/src/http-refusals.ts";
import { listenHttp } from "../../../app/src/http.ts";
import { createLogger } from "../../../app/src/log.ts";
import { createMetrics } from "../../../app/src/metrics.ts";
import { rawRequest } from "../../support/fuzz.ts";
import { metricValue } from "../../support/metrics.ts";

/** A request head as Node's parser hands it over: `lines` as sent, `headers` as Node folds them. */
function head(httpVersion: string, lines: Array<[string, string]>): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of lines) headers[name.toLowerCase()] ??= value;
  return { httpVersion, rawHeaders: lines.flat(), headers } as unknown as IncomingMessage;
}

test("Host: required on HTTP/1.1 only, exactly once, even when its first line names the host every request names", () => {
  const known = {};
  assert.equal(hostRefusal(head("1.1", [["Host", "api.example"]]), known), undefined);
  assert.equal(hostRefusal(head("1.1", []), known), "missing Host header");
  assert.equal(hostRefusal(head("1.0", []), known), undefined, "HTTP/1.0 has no Host to require");
  // The second request naming api.example skips the URL parse, not the count of its Host lines.
  assert.equal(
    hostRefusal(
      head("1.1", [
        ["Host", "api.example"],
        ["host", "other.example"],
      ]),
      known,
    ),
    "more than one Host header",
  );
  assert.equal(hostRefusal(head("1.1", [["Host", "1.2.3.4.5"]]), known), "invalid Host header");
});

test("Transfer-Encoding: chunked is taken in any case on HTTP/1.1; another coding, or any on HTTP/1.0, is refused", () => {
  for (const coding of ["chunked", "Chunked", "CHUNKED"]) {
    assert.equal(framingRefusal(head("1.1", [["Transfer-Encoding", coding]])), undefined, coding);
  }
  assert.equal(framingRefusal(head("1.1", [])), undefined);
  assert.equal(
    framingRefusal(head("1.1", [["Transfer-Encoding", "gzip, chunked"]])),
    "unsupported Transfer-Encoding gzip, chunked: only chunked",
  );
  assert.equal(framingRefusal(head("1.0", [["Transfer-Encoding", "chunked"]])), "Transfer-Encoding on an HTTP/1.0 request");
});

test("a head past Node's header limit is a JSON 431 (RFC 6585), counted as one", async () => {
  const metrics = createMetrics();
  const http = await listenHttp(() => new Response("ok"), {
    port: 0,
    host: "127.0.0.1",
    metrics,
    log: createLogger("silent"),
    keepAliveTimeoutMs: 5_000,
  });
  try {
    const res = await rawRequest(http.port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assert.equal(res?.status, 431, res?.body);
    assert.match(JSON.parse(res!.body).error, /^malformed HTTP request: .*\(HPE_HEADER_OVERFLOW\)$/);
    const exposition = await metrics.registry.metrics();
    assert.equal(metricValue(exposition, "http_requests_total", { route: "unmatched", status: "431" }), 1);
  } finally {
    await http.close(0);
  }
});
