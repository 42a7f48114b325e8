import { createHash } from "node:crypto";
import { bearerAuth } from "hono/bearer-auth";
import { createMiddleware } from "hono/factory";
import type { Store } from "../services/store.ts";
import type { AppEnv, Principal } from "../types.ts";

export const hashKey = (key: string) => createHash("sha256").update(key).digest("hex");

const DB_KEY_TTL_MS = 60_000;
const DB_KEY_CACHE_MAX = 10_000;

/**
 * Keys come from API_KEYS (scope `query`), ADMIN_API_KEYS (scopes `query` and `admin`) and the api_keys table
 * (scopes column). Only SHA-256 hashes are compared or stored; table lookups are remembered for a minute.
 */
export function createAuthenticator(apiKeys: string[], adminKeys: string[], store: Store) {
  const bootstrap = new Map<string, Principal>();
  // Admin keys last: a key in both lists gets both scopes.
  for (const [keys, scopes] of [
    [apiKeys, ["query"]],
    [adminKeys, ["query", "admin"]],
  ] as const) {
    for (const key of keys) {
      const hash = hashKey(key);
      bootstrap.set(hash, { id: `key:${hash.slice(0, 16)}`, scopes: new Set(scopes) });
    }
  }
  const remembered = new Map<string, { principal: Principal | null; expires: number }>();

  return async function authenticate(key: string): Promise<Principal | null> {
    const hash = hashKey(key);
    const known = bootstrap.get(hash);
    if (known) return known;
    const hit = remembered.get(hash);
    if (hit && hit.expires > Date.now()) return hit.principal;
    const row = await store.findApiKey(hash);
    const principal = row ? { id: `db:${row.id}`, scopes: new Set(row.scopes) } : null;
    if (remembered.size >= DB_KEY_CACHE_MAX) remembered.clear();
    remembered.set(hash, { principal, expires: Date.now() + DB_KEY_TTL_MS });
    return principal;
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;

export const requireApiKey = (authenticate: Authenticate) =>
  bearerAuth<AppEnv>({
    verifyToken: async (token, c) => {
      const principal = await authenticate(token);
      if (principal) c.set("principal", principal);
      return principal !== null;
    },
    noAuthenticationHeader: { message: { error: "missing Authorization: Bearer <API key> header" } },
    invalidAuthenticationHeader: { message: { error: "malformed Authorization header: expected Bearer <API key>" } },
    invalidToken: { message: { error: "invalid API key" } },
  });

export const requireScope = (scope: string) =>
  createMiddleware<AppEnv>(async (c, next) => {
    if (!c.get("principal").scopes.has(scope)) return c.json({ error: `this API key lacks the '${scope}' scope` }, 403);
    await next();
  });
