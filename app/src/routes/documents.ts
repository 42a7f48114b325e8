import { z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Documents } from "../services/documents.ts";
import {
  apiRoute,
  DocumentsRequestSchema,
  DocumentsResponseSchema,
  ErrorSchema,
  IdParamSchema,
  jsonBody,
  jsonResponse,
  upstreamErrorResponses,
} from "../schemas.ts";
import type { AppEnv } from "../types.ts";
import { errorJson } from "../middleware/errors.ts";

const busyResponse = jsonResponse(ErrorSchema, "Another request is writing one of the documents (Retry-After: 1)");

const ingestRoute = apiRoute({
  method: "post",
  path: "/api/v1/documents",
  tags: ["documents"],
  summary: "Ingest documents",
  description:
    "Chunks each text, embeds the chunks through Ollama (batched), upserts them to Qdrant and records the document. " +
    "Sending an existing id replaces that document. A document another request is still writing is a 409. A replica " +
    "already ingesting INGEST_MAX_BYTES_IN_FLIGHT of request bodies answers 503 (Retry-After: 5); a key already " +
    "ingesting half of it there, 429 (Retry-After: 5).",
  request: { body: jsonBody(DocumentsRequestSchema) },
  responses: {
    201: jsonResponse(DocumentsResponseSchema, "Ids and chunk counts"),
    409: busyResponse,
    ...upstreamErrorResponses,
  },
});

const deleteRoute = apiRoute({
  method: "delete",
  path: "/api/v1/documents/{id}",
  tags: ["documents"],
  summary: "Delete a document and its chunks",
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(z.object({ id: z.string(), deleted: z.literal(true) }), "Deleted"),
    404: jsonResponse(ErrorSchema, "No such document"),
    409: busyResponse,
    ...upstreamErrorResponses,
  },
});

export function registerDocumentRoutes(app: OpenAPIHono<AppEnv>, documents: Documents) {
  app.openapi(ingestRoute, async (c) => {
    const input = c.req.valid("json").documents;
    const ingested = await documents.ingest(input, c.get("principal").id, c.get("bodyBytes"), c.get("deadlineAt"));
    return c.json({ documents: ingested }, 201);
  });

  app.openapi(deleteRoute, async (c) => {
    const { id } = c.req.valid("param");
    if (!(await documents.remove(id, c.get("deadlineAt")))) return errorJson(c, "document_not_found", `document ${id} not found`);
    return c.json({ id, deleted: true as const }, 200);
  });
}
