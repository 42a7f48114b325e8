import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { coalesce } from "../coalesce.ts";
import { beforeDeadline } from "../deadline.ts";
import { describe } from "../errors.ts";
import { jsonResponse, ReadySchema, ServingSchema } from "../schemas.ts";
import type { AppEnv } from "../types.ts";
import pkg from "../../package.json" with { type: "json" };

export interface Probe {
  /** A failing critical probe makes the instance not ready (503). */
  critical: boolean;
  check: () => Promise<unknown>;
  /**
   * Its part in /health/serving (Kubernetes' readiness), if any: a fault of this instance's own, never one every
   * replica shares, which would take them all out of service at once.
   */
  servingCheck?: () => Promise<unknown>;
}

const liveRoute = createRoute({
  method: "get",
  path: "/health",
  tags: ["health"],
  summary: "Liveness: the process serves HTTP (no dependency is called)",
  responses: { 200: jsonResponse(z.object({ status: z.literal("ok") }), "Alive") },
});

const readyRoute = createRoute({
  method: "get",
  path: "/health/ready",
  tags: ["health"],
  summary: "Readiness: one probe per dependency, each with a timeout",
  responses: {
    200: jsonResponse(ReadySchema, "Every critical dependency answers"),
    503: jsonResponse(ReadySchema, "A critical dependency failed, or the instance is shutting down"),
  },
});

const servingRoute = createRoute({
  method: "get",
  path: "/health/serving",
  tags: ["health"],
  summary:
    "Whether to send this instance traffic (Kubernetes' readiness probe): 503 only while it shuts down or a fault of its own",
  description:
    "A dependency every replica shares (Postgres) failing does not take the instance out of service: requests then get the " +
    "app's own JSON 503 within about a second, where a load balancer with no instance left in service answers its own.",
  responses: {
    200: jsonResponse(ServingSchema, "In service"),
    503: jsonResponse(
      ServingSchema,
      "Shutting down, or a fault of its own (its embedding model's vectors do not fit the collection)",
    ),
  },
});

async function runProbe(probe: Probe, timeoutMs: number) {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    await beforeDeadline(probe.check(), timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`));
    return { status: "ok" as const, critical: probe.critical, latency_ms: latency() };
  } catch (err) {
    return { status: "fail" as const, critical: probe.critical, latency_ms: latency(), error: describe(err) };
  }
}

export interface HealthDeps {
  probes: Record<string, Probe>;
  probeTimeoutMs: number;
  isShuttingDown: () => boolean;
}

export type Readiness = {
  status: "ready" | "degraded" | "not_ready";
  checks: Record<string, Awaited<ReturnType<typeof runProbe>>>;
};

/** Runs every probe; 503 when a critical one failed or the instance is shutting down. */
export async function readiness(deps: HealthDeps): Promise<{ code: 200 | 503; body: Readiness }> {
  const names = Object.keys(deps.probes);
  const results = await Promise.all(names.map((n) => runProbe(deps.probes[n]!, deps.probeTimeoutMs)));
  const checks = Object.fromEntries(names.map((n, i) => [n, results[i]!]));
  const criticalFailed = results.some((r) => r.critical && r.status === "fail");
  if (criticalFailed || deps.isShuttingDown()) {
    if (deps.isShuttingDown()) checks.shutdown = { status: "fail", critical: true, latency_ms: 0, error: "shutting down" };
    return { code: 503, body: { status: "not_ready", checks } };
  }
  return { code: 200, body: { status: results.some((r) => r.status === "fail") ? "degraded" : "ready", checks } };
}

/** In service unless shutting down or one of its own checks fails; the shared dependencies' probes are not run. */
export async function serving(deps: HealthDeps): Promise<{ code: 200 | 503; body: { status: "serving" | "not_serving" } }> {
  if (deps.isShuttingDown()) return { code: 503, body: { status: "not_serving" } };
  const own = Object.values(deps.probes).flatMap((p) => (p.servingCheck ? [{ critical: true, check: p.servingCheck }] : []));
  const results = await Promise.all(own.map((p) => runProbe(p, deps.probeTimeoutMs)));
  return results.every((r) => r.status === "ok")
    ? { code: 200, body: { status: "serving" } }
    : { code: 503, body: { status: "not_serving" } };
}

/**
 * Liveness, readiness and the agent card on the public port. Readiness keeps its status code there but shows no
 * per-dependency detail (error strings name hosts and ports); the detail is on METRICS_PORT (see ops.ts). Anyone may
 * ask it, without a key: its runs are coalesced, so a crowd of requests costs each dependency two probes, not one each
 * (a Postgres statement from the API's own pool, a Redis write, a Qdrant and an Ollama call per request before).
 */
export function registerHealthRoutes(
  app: OpenAPIHono<AppEnv>,
  deps: HealthDeps & { docsEnabled: boolean; publicUrl?: string | undefined },
) {
  app.openapi(liveRoute, (c) => c.json({ status: "ok" as const }, 200));

  const publicReadiness = coalesce(() => readiness(deps));
  app.openapi(readyRoute, async (c) => {
    const { code, body } = await publicReadiness();
    return c.json({ status: body.status }, code);
  });

  app.openapi(servingRoute, async (c) => {
    const { code, body } = await serving(deps);
    return c.json(body, code);
  });

  /** Guide 001 agent card: who this agent is, what it exposes and how to authenticate. */
  app.get("/.well-known/agent.json", (c) => {
    // Behind the load balancer the request's origin is http (TLS ends there) under whatever Host the client sent.
    const origin = deps.publicUrl ?? new URL(c.req.url).origin;
    return c.json({
      name: "agent-api",
      description: "Retrieval-augmented question answering over ingested documents, served by self-hosted models.",
      version: pkg.version,
      url: origin,
      ...(deps.docsEnabled ? { documentation: `${origin}/docs`, openapi: `${origin}/openapi.json` } : {}),
      capabilities: { streaming: true, sessions: true, feedback: true },
      authentication: { schemes: ["bearer"], header: "Authorization", format: "Bearer <API key>" },
      endpoints: [
        { method: "POST", path: "/api/v1/query", description: "Ask a question (JSON or Server-Sent Events)" },
        { method: "POST", path: "/api/v1/documents", description: "Ingest documents" },
        { method: "DELETE", path: "/api/v1/documents/{id}", description: "Delete a document" },
        { method: "GET", path: "/api/v1/sessions/{id}", description: "A session's turns" },
        { method: "POST", path: "/api/v1/feedback", description: "Rate an answer" },
        { method: "GET", path: "/api/v1/admin/feedback/summary", description: "Feedback by model (admin)" },
        { method: "GET", path: "/health", description: "Liveness" },
        { method: "GET", path: "/health/ready", description: "Readiness" },
      ],
    });
  });
}
