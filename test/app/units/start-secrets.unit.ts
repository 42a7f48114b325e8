// The credentials start.ts takes out of every error text (errors.ts treatAsSecret): a URL's password both as written,
// %-escaped, and as sent; the configured API keys.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../../app/src/config.ts";
import { describe } from "../../../app/src/errors.ts";
import { createLogger } from "../../../app/src/log.ts";
import { startServer } from "../../../app/src/start.ts";
import { appEnv } from "../../support/app.ts";

// Keys of this check alone: the secrets start-up takes are kept for the whole process, which runs every unit check.
const USER_KEY = "start-secrets-user-key-0123";
const ADMIN_KEY = "start-secrets-admin-key-0123";

test("a DATABASE_URL password, as written in the URL and as decoded, and every configured API key are kept out of error texts", async () => {
  const written = "pg%2Fsecret-9274";
  const decoded = "pg/secret-9274";
  const config = loadConfig(
    appEnv(
      {
        // Nothing listens on port 1: start-up fails at once, after the secrets are taken.
        databaseUrl: `postgres://app:${written}@127.0.0.1:1/app`,
        redisUrl: "redis://127.0.0.1:1",
        ollamaUrl: "http://127.0.0.1:1",
        qdrantUrl: "http://127.0.0.1:1",
      },
      { DB_STARTUP_WAIT_MS: "0", API_KEYS: USER_KEY, ADMIN_API_KEYS: ADMIN_KEY },
    ),
  );
  await assert.rejects(startServer(config, createLogger("silent")), /postgres unavailable/);
  // A proxy or driver echoing either form of it, as an upstream's error text may.
  assert.equal(
    describe(new Error(`auth failed for app:${decoded} (sent as app:${written})`)),
    "auth failed for app:[redacted] (sent as app:[redacted])",
  );
  assert.equal(
    describe(new Error(`proxy echoed Authorization: Bearer ${ADMIN_KEY}, Bearer ${USER_KEY}`)),
    "proxy echoed Authorization: Bearer [redacted], Bearer [redacted]",
  );
});
