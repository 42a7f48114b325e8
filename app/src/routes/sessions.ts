import type { OpenAPIHono } from "@hono/zod-openapi";
import { onAnswerEnd } from "../middleware/observe.ts";
import type { Store } from "../services/store.ts";
import {
  apiRoute,
  ErrorSchema,
  IdParamSchema,
  jsonResponse,
  retryAfter,
  SESSION_PAGE_MAX_BYTES,
  SessionPageQuerySchema,
  SessionResponseSchema,
} from "../schemas.ts";
import type { AppEnv } from "../types.ts";
import { Counts } from "../counts.ts";
import { errorJson } from "../middleware/errors.ts";

const route = apiRoute({
  method: "get",
  path: "/api/v1/sessions/{id}",
  tags: ["sessions"],
  summary: "One page of the turns of one of the caller's sessions, oldest first",
  request: { params: IdParamSchema, query: SessionPageQuerySchema },
  responses: {
    200: jsonResponse(SessionResponseSchema, "The session"),
    400: jsonResponse(ErrorSchema, "A bad `limit`, or an `after` that is not a turn of this session"),
    404: jsonResponse(ErrorSchema, "No such session for this key"),
    429: {
      ...jsonResponse(ErrorSchema, "Rate limit exceeded, or this key has as many pages being read or sent as it may"),
      headers: retryAfter("Seconds until the rate-limit window frees a slot; 1 for a page being read"),
    },
  },
});

/**
 * Pages of sessions one key may have being read or sent at once: read from Postgres, or waiting in the process for
 * their client (until Node has handed the page to the kernel). Each page read takes a pooled connection and up to
 * 2 MiB: one key asking for 30 at once got 503s at the 1 s Postgres deadline while its pages were built (probe BF).
 */
export const MAX_SESSION_PAGES_PER_KEY = 4;

export function registerSessionRoutes(app: OpenAPIHono<AppEnv>, store: Store) {
  const pagesOf = new Counts();
  app.openapi(route, async (c) => {
    const key = c.get("principal").id;
    if (pagesOf.of(key) >= MAX_SESSION_PAGES_PER_KEY) {
      const error = `at most ${MAX_SESSION_PAGES_PER_KEY} session pages per API key are read at once: ask again when one has arrived`;
      return errorJson(c, "session_pages_busy", error, undefined, { "Retry-After": "1" });
    }
    pagesOf.add(key);
    onAnswerEnd(c, () => pagesOf.add(key, -1));
    const { id } = c.req.valid("param");
    const { limit, after } = c.req.valid("query");
    const page = await store.sessionTurns(id, key, { limit, after, maxBytes: SESSION_PAGE_MAX_BYTES });
    if (page === "no_session") return errorJson(c, "session_not_found", `session ${id} not found`);
    if (page === "no_after") {
      // A client following the session may hold a turn since deleted: taken back after its 503/504 (its statement
      // committed late, and a page read in those few milliseconds listed it), or past TURN_RETENTION_DAYS (probe BQ).
      const error = `invalid query string: after: no turn ${after} in session ${id} (never, or no longer: a turn answered 503 or 504, or one past its retention, is deleted); read the session from its start`;
      return errorJson(c, "unknown_after", error);
    }
    return c.json(
      {
        session_id: id,
        turns: page.turns.map(({ session_id: _session, created_at, ...turn }) => ({
          ...turn,
          created_at: created_at.toISOString(),
        })),
        has_more: page.hasMore,
      },
      200,
    );
  });
}
