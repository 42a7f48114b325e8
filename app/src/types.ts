import type { HttpBindings } from "@hono/node-server";
import type { RequestIdVariables } from "hono/request-id";

/** Who is calling: `id` is derived from the key (never the key itself) and names the caller in Redis and Postgres. */
export interface Principal {
  id: string;
  scopes: ReadonlySet<string>;
}

/** Bindings are absent when the app is called without Node's server (app.request in a unit test). */
export type AppEnv = {
  Bindings: Partial<HttpBindings>;
  /**
   * `deadlineAt`: when the request is answered 504 (performance.now() ms; middleware/deadline.ts). `bodyBytes`: the
   * size of a POST's body (middleware/readbody.ts). `streamed`: the response is a stream, counted once it ends
   * (middleware/observe.ts). `streamStatus`: the status of the error a stream ended with (its head said 200).
   */
  Variables: RequestIdVariables & {
    principal: Principal;
    deadlineAt: number;
    bodyBytes: number;
    streamed: boolean;
    streamStatus: number;
  };
};
