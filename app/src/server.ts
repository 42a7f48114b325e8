import { OpenAPIHono } from "@hono/zod-openapi";
import { Hono } from "hono";
import { swaggerUI } from "@hono/swagger-ui";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { Config } from "./config.ts";
import { timeOrderedId } from "./ids.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { requireApiKey, requireScope, type Authenticate } from "./middleware/auth.ts";
import { corsFor } from "./middleware/cors.ts";
import { limitBody } from "./middleware/bodylimit.ts";
import { requestDeadline } from "./middleware/deadline.ts";
import { readJsonBody } from "./middleware/readbody.ts";
import { methodsByPath, notFound, onError, validationHook } from "./middleware/errors.ts";
import { observe } from "./middleware/observe.ts";
import { rateLimit } from "./middleware/ratelimit.ts";
import { registerDocumentRoutes } from "./routes/documents.ts";
import { registerFeedbackRoutes } from "./routes/feedback.ts";
import { registerHealthRoutes, type Probe } from "./routes/health.ts";
import { registerQueryRoutes } from "./routes/query.ts";
import { registerSessionRoutes } from "./routes/sessions.ts";
import type { Documents } from "./services/documents.ts";
import type { Rag } from "./services/rag.ts";
import type { RateLimiter } from "./services/ratelimit.ts";
import type { Store } from "./services/store.ts";
import type { AppEnv } from "./types.ts";
import pkg from "../package.json" with { type: "json" };

export interface AppDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  store: Store;
  rag: Rag;
  documents: Documents;
  rateLimiter: RateLimiter;
  authenticate: Authenticate;
  probes: Record<string, Probe>;
  isShuttingDown: () => boolean;
  /**
   * Aborted just before the shutdown's grace period ends, with a 503: queries still waiting for their answer end with
   * it (an error event in a stream), and a request arriving after it is refused with it, since none could be answered
   * before the drain cuts its connection.
   */
  shutdownNotice: AbortSignal;
}

/**
 * The headers every API response carries: Hono's secureHeaders() defaults, read once from the middleware itself.
 * listenHttp sets them on Node's response before the app runs. As middleware they cost 11 undici `Headers.set` calls
 * per response, which @hono/node-server then copies out again: about 7 % of a cache hit's CPU samples (perf).
 */
export async function securityHeaders(): Promise<Array<[string, string]>> {
  const probe = new Hono().use(secureHeaders()).get("/", (c) => c.body(null));
  return [...(await probe.request("/")).headers];
}

/** The whole HTTP surface, built from injected dependencies (tests and the benchmark build it the same way). */
export function buildApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { config, log, metrics } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  // Ids are always ours: a client-chosen X-Request-Id could collide with another turn's request_id.
  app.use(requestId({ headerName: "", generator: timeOrderedId }));
  app.use(observe(metrics, log));
  // Before the /api/* chain: a preflight carries no key, and is answered before it is asked for one. Unset, no
  // middleware at all: no CORS header, and an OPTIONS is a 401 under /api/, a 405 or 404 elsewhere.
  if (config.CORS_ORIGINS.length > 0) app.use(corsFor(config.CORS_ORIGINS));

  app.use(
    "/api/*",
    async (_c, next) => {
      deps.shutdownNotice.throwIfAborted();
      await next();
    },
    requestDeadline(config.REQUEST_TIMEOUT_MS),
    // Nothing of a body is read before its key is known: a chunked body was read whole before an unknown key's 401.
    requireApiKey(deps.authenticate),
    requireScope,
    limitBody(config.BODY_LIMIT_BYTES),
    rateLimit(deps.rateLimiter),
    readJsonBody({
      maxBytes: config.BODY_LIMIT_BYTES,
      maxReceiving: config.BODIES_MAX_BYTES_RECEIVING,
      heldGauge: metrics.requestBodyBytesHeld,
    }),
  );

  registerHealthRoutes(app, {
    probes: deps.probes,
    probeTimeoutMs: config.READY_PROBE_TIMEOUT_MS,
    isShuttingDown: deps.isShuttingDown,
    docsEnabled: config.DOCS_ENABLED,
    publicUrl: config.PUBLIC_URL,
  });
  registerQueryRoutes(app, deps.rag, log, deps.shutdownNotice);
  registerDocumentRoutes(app, deps.documents);
  registerSessionRoutes(app, deps.store);
  registerFeedbackRoutes(app, deps.store);

  if (config.DOCS_ENABLED) {
    app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
      type: "http",
      scheme: "bearer",
      description: "An API key from API_KEYS, ADMIN_API_KEYS or the api_keys table",
    });
    app.doc31("/openapi.json", { openapi: "3.1.0", info: { title: "Agent API", version: pkg.version } });
    app.get("/docs", swaggerUI({ url: "/openapi.json" }));
  }

  app.notFound(notFound(methodsByPath(app)));
  app.onError(onError(log));
  return app;
}
