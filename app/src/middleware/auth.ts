import { bearerAuth } from "hono/bearer-auth";
import { createMiddleware } from "hono/factory";
import type { Store } from "../services/store.ts";
import { sha256 } from "../sha256.ts";
import type { AppEnv, Principal } from "../types.ts";
import { errorBody } from "../errors.ts";
import { errorJson } from "./errors.ts";

/** The api_keys table is read again after this long: a revoked key stops working within it. */
const KEY_TABLE_TTL_MS = 60_000;
/**
 * An unknown key has the table read again, at most this often: a key added at run time works within a second, and a
 * flood of made-up keys costs Postgres one statement a second instead of one each.
 */
const KEY_TABLE_MISS_RELOAD_MS = 1_000;

/**
 * Keys come from API_KEYS (scope `query`), ADMIN_API_KEYS (scopes `query` and `admin`) and the api_keys table
 * (scopes column). Only SHA-256 hashes are compared or stored. The table's live keys are held in memory, so an
 * unknown key is refused without a database round trip; while Postgres is down the last copy read is used, and a key
 * not in it fails its request as the read did (a 503), not as unknown.
 */
export function createAuthenticator(
  apiKeys: string[],
  adminKeys: string[],
  store: Pick<Store, "liveApiKeys">,
  now: () => number = () => performance.now(),
) {
  const bootstrap = new Map<string, Principal>();
  // Admin keys last: a key in both lists gets both scopes.
  for (const [keys, scopes] of [
    [apiKeys, ["query"]],
    [adminKeys, ["query", "admin"]],
  ] as const) {
    for (const key of keys) {
      const hash = sha256(key);
      bootstrap.set(hash, { id: `key:${hash.slice(0, 16)}`, scopes: new Set(scopes) });
    }
  }

  let table: Map<string, Principal> | undefined;
  /** When the table was last read, or a read of it last failed. */
  let readAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<void> | undefined;
  /** The last read's error, while the table cannot be read. */
  let unreadable: unknown;

  /** One read at a time; a failed one keeps the last copy, and fails the request only when there is none. */
  function read(): Promise<void> {
    reading ??= store
      .liveApiKeys()
      .then(
        (rows) => {
          table = new Map(rows.map((r) => [r.key_hash, { id: `db:${r.id}`, scopes: new Set(r.scopes) }]));
          unreadable = undefined;
        },
        (err: unknown) => {
          unreadable = err;
          if (!table) throw err;
        },
      )
      .finally(() => {
        readAt = now();
        reading = undefined;
      });
    return reading;
  }

  return async function authenticate(key: string): Promise<Principal | null> {
    const hash = sha256(key);
    const known = bootstrap.get(hash);
    if (known) return known;
    // No copy yet: every request tries, so an outage is a 503 rather than "unknown key".
    if (!table || now() - readAt >= KEY_TABLE_TTL_MS) await read();
    if (!table?.has(hash) && now() - readAt >= KEY_TABLE_MISS_RELOAD_MS) await read();
    const principal = table?.get(hash);
    // Not in a copy that cannot be read again: a key added since may be good, and a 401 told its client it was not.
    if (!principal && unreadable !== undefined) throw unreadable;
    return principal ?? null;
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
    noAuthenticationHeader: { message: errorBody("missing_api_key", "missing Authorization: Bearer <API key> header") },
    invalidAuthenticationHeader: {
      message: errorBody("malformed_authorization", "malformed Authorization header: expected Bearer <API key>"),
    },
    invalidToken: { message: errorBody("invalid_api_key", "invalid API key") },
  });

/**
 * Every `/api/` route needs a scope: `admin` under /api/v1/admin/, `query` elsewhere. Only `admin` was checked, so a
 * stored key with no scope (or `{admin}` alone, a dashboard's) could still ask, ingest and delete.
 */
export const requireScope = createMiddleware<AppEnv>(async (c, next) => {
  const scope = c.req.path.startsWith("/api/v1/admin/") ? "admin" : "query";
  if (!c.get("principal").scopes.has(scope)) return errorJson(c, "missing_scope", `this API key lacks the '${scope}' scope`);
  await next();
});
