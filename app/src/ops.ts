import { Hono } from "hono";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { methodsByPath, notFound, onError } from "./middleware/errors.ts";
import { readiness, type HealthDeps } from "./routes/health.ts";

/**
 * The operator's listener on METRICS_PORT (not exposed by the load balancer): Prometheus scrapes /metrics here, and
 * /health/ready answers with each dependency's status, latency and error.
 */
export function buildOpsApp(deps: HealthDeps & { metrics: Metrics; log: Logger }): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    c.header("Content-Type", deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });
  app.get("/health/ready", async (c) => {
    const { code, body } = await readiness(deps);
    return c.json(body, code);
  });
  // As on PORT: a 405 with Allow for another method, and the path cut as echoed text is (a 16 kB path, a 32 kB answer).
  app.notFound(notFound(methodsByPath(app)));
  // As on PORT: a failure (a metric's collect throwing) is a JSON 500 with its code and a log line, not hono's text.
  app.onError(onError(deps.log));
  return app;
}
