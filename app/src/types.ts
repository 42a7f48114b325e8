import type { RequestIdVariables } from "hono/request-id";

/** Who is calling: `id` is derived from the key (never the key itself) and names the caller in Redis and Postgres. */
export interface Principal {
  id: string;
  scopes: ReadonlySet<string>;
}

export type AppEnv = { Variables: RequestIdVariables & { principal: Principal } };
