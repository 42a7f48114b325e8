import { z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Store } from "../services/store.ts";
import { apiRoute, ErrorSchema, FeedbackRequestSchema, FeedbackSummarySchema, jsonBody, jsonResponse } from "../schemas.ts";
import type { AppEnv } from "../types.ts";
import { errorJson } from "../middleware/errors.ts";

const submitRoute = apiRoute({
  method: "post",
  path: "/api/v1/feedback",
  tags: ["feedback"],
  summary: "Rate an answer (guide 004 feedback loop)",
  description: "One rating per answer: a later rating of the same `request_id` replaces the earlier one.",
  request: { body: jsonBody(FeedbackRequestSchema) },
  responses: {
    201: jsonResponse(z.object({ request_id: z.string(), recorded: z.literal(true) }), "Recorded"),
    404: jsonResponse(ErrorSchema, "No answer with this request_id for this key"),
  },
});

const summaryRoute = apiRoute({
  method: "get",
  path: "/api/v1/admin/feedback/summary",
  tags: ["admin"],
  summary: "Feedback counts and average score by model (admin scope)",
  responses: {
    200: jsonResponse(FeedbackSummarySchema, "Summary"),
    403: jsonResponse(ErrorSchema, "Key lacks the admin scope"),
  },
});

export function registerFeedbackRoutes(app: OpenAPIHono<AppEnv>, store: Store) {
  app.openapi(submitRoute, async (c) => {
    const input = c.req.valid("json");
    if (!(await store.insertFeedback(input, c.get("principal").id))) {
      return errorJson(c, "answer_not_found", `no answer with request_id ${input.request_id} for this API key`);
    }
    return c.json({ request_id: input.request_id, recorded: true as const }, 201);
  });

  app.openapi(summaryRoute, async (c) => {
    return c.json(await store.feedbackSummary(), 200);
  });
}
