// GET /api/v1/sessions/:id's per-key bound (routes/sessions.ts) on Node's server: a page whose client left before it
// was read gives its place back.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { OpenAPIHono } from "@hono/zod-openapi";
import { getRequestListener } from "@hono/node-server";
import { MAX_SESSION_PAGES_PER_KEY, registerSessionRoutes } from "../../../app/src/routes/sessions.ts";
import type { Store } from "../../../app/src/services/store.ts";
import type { AppEnv } from "../../../app/src/types.ts";

test("pages whose clients left while they waited before the route (their key's checks) do not hold the key's places", async () => {
  const store = { sessionTurns: async () => ({ turns: [], hasMore: false }) } as unknown as Store;
  const app = new OpenAPIHono<AppEnv>();
  let answered: () => void = () => {};
  // As the key's lookup or rate limit may: the request waits, and its client leaves meanwhile.
  app.use(async (c, next) => {
    c.set("principal", { id: "key:1", scopes: new Set(["query"]) });
    const socket = c.env.incoming?.socket;
    if (c.req.header("x-leave") && socket && !socket.destroyed) await once(socket, "close");
    await next();
    answered();
  });
  registerSessionRoutes(app, store);
  const server = http.createServer(getRequestListener(app.fetch));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  try {
    for (let i = 0; i < MAX_SESSION_PAGES_PER_KEY + 1; i++) {
      const req = http.get({ port, host: "127.0.0.1", path: "/api/v1/sessions/s1", headers: { "x-leave": "1" } });
      req.on("error", () => {});
      const done = new Promise<void>((resolve) => {
        answered = resolve;
      });
      // Gone once the server has the request: its socket closes while the request waits.
      await once(server, "request");
      req.destroy();
      await done;
    }
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/sessions/s1`);
    assert.equal(res.status, 200, await res.text());
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
