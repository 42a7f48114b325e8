import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Store } from "../services/store.ts";
import {
  apiRoute,
  ErrorSchema,
  IdParamSchema,
  jsonResponse,
  SESSION_PAGE_MAX_BYTES,
  SessionPageQuerySchema,
  SessionResponseSchema,
} from "../schemas.ts";
import type { AppEnv } from "../types.ts";

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
  },
});

export function registerSessionRoutes(app: OpenAPIHono<AppEnv>, store: Store) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid("param");
    const { limit, after } = c.req.valid("query");
    const page = await store.sessionTurns(id, c.get("principal").id, { limit, after, maxBytes: SESSION_PAGE_MAX_BYTES });
    if (page === "no_session") return c.json({ error: `session ${id} not found` }, 404);
    if (page === "no_after") return c.json({ error: `invalid query string: after: no turn ${after} in session ${id}` }, 400);
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
