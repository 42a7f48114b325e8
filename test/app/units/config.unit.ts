import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../../app/src/config.ts";
import { createDb } from "../../../app/src/services/db.ts";

const base = {
  DATABASE_URL: "postgres://u:p@db:5432/app",
  REDIS_URL: "rediss://:token@cache:6379",
  QDRANT_URL: "http://qdrant:6333",
  OLLAMA_URL: "http://ollama:11434",
  API_KEYS: "k".repeat(20),
  EMBED_MODEL: "e",
  MODEL_SMALL: "s",
  MODEL_DEFAULT: "d",
  MODEL_LARGE: "l",
};

test("loadConfig applies defaults and parses key lists", () => {
  const config = loadConfig({ ...base, API_KEYS: ` ${"a".repeat(16)} , ${"b".repeat(16)} ,`, PORT: "9000" });
  assert.deepEqual(config.API_KEYS, ["a".repeat(16), "b".repeat(16)]);
  assert.deepEqual(config.ADMIN_API_KEYS, []);
  assert.equal(config.PORT, 9000);
  assert.equal(config.RATE_LIMIT_PER_MINUTE, 60);
  assert.equal(config.EMBED_CACHE_TTL_SECONDS, 86_400);
  assert.equal(config.METRICS_PORT, 9464);
  assert.equal(config.DOCS_ENABLED, false);
  assert.equal(config.QDRANT_REPLICATION_FACTOR, 1);
  assert.equal(config.QDRANT_WRITE_CONSISTENCY, 1);
  assert.equal(config.DATABASE_MIGRATE_URL, undefined);
  assert.deepEqual(config.CORS_ORIGINS, [], "no CORS header unless origins are listed");
  assert.deepEqual(loadConfig({ ...base, CORS_ORIGINS: "" }).CORS_ORIGINS, []);
  assert.deepEqual(
    loadConfig({ ...base, CORS_ORIGINS: " https://app.example.com , http://localhost:5173,http://[::1]:8080," }).CORS_ORIGINS,
    ["https://app.example.com", "http://localhost:5173", "http://[::1]:8080"],
  );
  assert.deepEqual(loadConfig({ ...base, CORS_ORIGINS: "*" }).CORS_ORIGINS, ["*"]);
  assert.equal(loadConfig({ ...base, DOCS_ENABLED: "true" }).DOCS_ENABLED, true);
  const withCa = loadConfig({ ...base, DATABASE_CA_FILE: new URL(import.meta.url).pathname });
  assert.match(withCa.DATABASE_CA_FILE!.contents, /^import assert/, "the file is read at start-up");
});

test("DATABASE_CA_FILE means TLS with the chain and host name verified (postgres.js ssl object)", async () => {
  const sql = createDb("postgres://u@db.example:5432/app", { max: 1, connectTimeoutMs: 1000, ca: "PEM" });
  assert.deepEqual(sql.options.ssl, { ca: "PEM", rejectUnauthorized: true });
  // The app opens the sockets (db.ts): postgres.js verifies the certificate against the name each socket carries.
  const socket = await (sql.options as unknown as { socket(o: unknown): Promise<Socket & { host?: string }> }).socket(
    sql.options,
  );
  socket.on("error", () => {});
  assert.equal(socket.host, "db.example");
  socket.destroy();
  const plain = createDb("postgres://u@db.example:5432/app", { max: 1, connectTimeoutMs: 1000 });
  assert.equal(plain.options.ssl, false);
  await Promise.all([sql.end(), plain.end()]);
});

test("loadConfig names every bad variable on one line", () => {
  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [{ ...base, DATABASE_URL: undefined }, /DATABASE_URL is required/],
    [{ ...base, REDIS_URL: "http://cache:6379" }, /REDIS_URL must be a URL starting with redis:\/\/ or rediss:\/\//],
    [{ ...base, PORT: "eighty" }, /PORT must be an integer/],
    [{ ...base, PORT: "70000" }, /PORT must be <= 65535/],
    [{ ...base, API_KEYS: "short" }, /API_KEYS every key must be at least 16 characters/],
    [{ ...base, API_KEYS: "" }, /API_KEYS is required/],
    // Accepted once, and then every request with it was a 400: no Authorization header can carry it.
    [{ ...base, ADMIN_API_KEYS: "pass!word#with$specials" }, /ADMIN_API_KEYS every key may hold only letters, digits/],
    [{ ...base, API_KEYS: "valid-key-0123456789,key=with=equals=inside" }, /API_KEYS every key may hold only/],
    [{ ...base, MODEL_LARGE: " " }, /MODEL_LARGE is required/],
    [{ ...base, OLLAMA_TIMEOUT_MS: "10" }, /OLLAMA_TIMEOUT_MS must be >= 50/],
    // Past 2^31 - 1 ms Node sets a timer to 1 ms: a REQUEST_TIMEOUT_MS of 3e9 answered every request 504 at once.
    [{ ...base, SHUTDOWN_TIMEOUT_MS: "2147483648" }, /SHUTDOWN_TIMEOUT_MS must be <= 2147483647 \(Node's timers stop/],
    [{ ...base, HTTP_KEEP_ALIVE_TIMEOUT_MS: "2147483000" }, /HTTP_KEEP_ALIVE_TIMEOUT_MS must be <= 2147482647/],
    [{ ...base, REQUEST_TIMEOUT_MS: "3000000000" }, /REQUEST_TIMEOUT_MS must be <= 1073741823 .*waits 2 times this/],
    [{ ...base, DB_QUERY_TIMEOUT_MS: "300000000" }, /DB_QUERY_TIMEOUT_MS must be <= 214748364 .*waits 10 times this/],
    [{ ...base, METRICS_PORT: "8080" }, /METRICS_PORT must differ from PORT/],
    // Accepted once, it failed only at listen, after Postgres and Redis were connected and migrated.
    [{ ...base, HOST: "0.0.0.0:8080" }, /HOST must be an IP address or a host name/],
    [{ ...base, HOST: "[::]" }, /HOST must be an IP address or a host name/],
    [{ ...base, CHUNK_OVERLAP_CHARS: "601" }, /CHUNK_OVERLAP_CHARS must be at most 600, half of CHUNK_SIZE_CHARS \(1200\)/],
    [{ ...base, DOCS_ENABLED: "yes" }, /DOCS_ENABLED must be true or false/],
    [{ ...base, QDRANT_REPLICATION_FACTOR: "0" }, /QDRANT_REPLICATION_FACTOR must be >= 1/],
    [
      { ...base, QDRANT_REPLICATION_FACTOR: "2", QDRANT_WRITE_CONSISTENCY: "3" },
      /QDRANT_WRITE_CONSISTENCY must be <= QDRANT_REPLICATION_FACTOR \(2\)/,
    ],
    [
      { ...base, DATABASE_MIGRATE_URL: "mysql://owner@db/app" },
      /DATABASE_MIGRATE_URL must be a URL starting with postgres:\/\/ or postgresql:\/\//,
    ],
    [
      { ...base, MODEL_CONTEXT_TOKENS: "4096", MAX_ANSWER_TOKENS: "2400" },
      /MAX_ANSWER_TOKENS 2400 leaves -4 of MODEL_CONTEXT_TOKENS \(4096\) for the sources beside a 5000-character question, less than one chunk \(300\)/,
    ],
    // A 1,200-character chunk takes about 300 tokens in English: at 250 every question was answered without sources.
    [
      { ...base, CONTEXT_TOKEN_BUDGET: "250" },
      /CONTEXT_TOKEN_BUDGET must be at least 1328, one source of CHUNK_SIZE_CHARS \(1200\)/,
    ],
    // An English chunk fits 428 tokens, a Chinese one takes 1,200: it was never given to the model.
    [{ ...base, CONTEXT_TOKEN_BUDGET: "428" }, /CONTEXT_TOKEN_BUDGET must be at least 1328, .* characters of Chinese/],
    [{ ...base, DATABASE_CA_FILE: "/nonexistent/ca.pem" }, /DATABASE_CA_FILE cannot be read \(ENOENT: \/nonexistent\/ca.pem\)/],
    [{ ...base, OLLAMA_PODS_DNS: "ollama-headless" }, /API_PODS_DNS must be set with OLLAMA_PODS_DNS and API_PODS_DNS both/],
    [{ ...base, OLLAMA_PODS_DNS: " ", API_PODS_DNS: "agent-api-headless" }, /OLLAMA_PODS_DNS must be a DNS name, or unset/],
    [{ ...base, POD_IP: "status.podIP" }, /POD_IP must be an IPv4 or IPv6 address \(the pod's status.podIP\)/],
    // The checks below build a chunk of this size: a billion crashed start-up with a RangeError naming nothing.
    [{ ...base, CHUNK_SIZE_CHARS: "1000000000" }, /CHUNK_SIZE_CHARS must be <= 1000000/],
    [
      { ...base, OLLAMA_PODS_DNS: "ollama-headless", API_PODS_DNS: "agent-api-headless", OLLAMA_MAX_ANSWERS: "0" },
      /OLLAMA_MAX_ANSWERS must be at least 1 when OLLAMA_PODS_DNS and API_PODS_DNS share the answer slots out/,
    ],
    // An empty value was read as 0: PORT="" listened on a random port, TURN_RETENTION_DAYS="" kept every turn.
    [{ ...base, PORT: "" }, /PORT must be an integer from 0 to 65535, in decimal digits/],
    [{ ...base, TURN_RETENTION_DAYS: " " }, /TURN_RETENTION_DAYS must be an integer from 0 to 36500/],
    // The drivers refused these only at connect, with "URI malformed" or "Invalid pathname" naming no variable.
    [
      { ...base, DATABASE_URL: "postgres://u:50%zz@db:5432/app" },
      /DATABASE_URL has a user name or password with a malformed %-escape/,
    ],
    [{ ...base, REDIS_URL: "redis://cache:6379/cache" }, /REDIS_URL must name its database by number/],
    [{ ...base, QDRANT_METADATA_INDEX_LIMIT: "1001" }, /QDRANT_METADATA_INDEX_LIMIT must be <= 1000/],
    [{ ...base, PUBLIC_URL: "https://agents.example.com/?x" }, /PUBLIC_URL must have no query or fragment/],
    // Browsers send Origin serialized and hono's cors compares strings: each of these would have matched no page.
    [
      { ...base, CORS_ORIGINS: "https://app.example.com/" },
      /^invalid environment: CORS_ORIGINS must list origins as scheme:\/\/host\[:port\] \(http or https, no path or trailing slash\), comma-separated, or be \* alone; entry 1 is not written as a browser sends it \(https:\/\/app\.example\.com\)$/,
    ],
    [
      { ...base, CORS_ORIGINS: "https://a.example,https://App.example.com:443" },
      /CORS_ORIGINS .*; entry 2 is not written as a browser sends it \(https:\/\/app\.example\.com\)/,
    ],
    [
      { ...base, CORS_ORIGINS: "https://app.example.com/ui" },
      /CORS_ORIGINS .*; entry 1 is not written as a browser sends it \(https:\/\/app\.example\.com\)/,
    ],
    [{ ...base, CORS_ORIGINS: "https://bücher.example" }, /CORS_ORIGINS .*\(https:\/\/xn--bcher-kva\.example\)/],
    [{ ...base, CORS_ORIGINS: "https://u:p@app.example.com" }, /CORS_ORIGINS .*; entry 1 is not written as a browser sends it/],
    [{ ...base, CORS_ORIGINS: "app.example.com" }, /CORS_ORIGINS .*; entry 1 is not an http:\/\/ or https:\/\/ URL/],
    // Sandboxed frames and file: pages send Origin: null, which any page can make.
    [{ ...base, CORS_ORIGINS: "null" }, /CORS_ORIGINS .*; entry 1 is not an http:\/\/ or https:\/\/ URL/],
    [{ ...base, CORS_ORIGINS: "chrome-extension://abc" }, /CORS_ORIGINS .*; entry 1 is not an http:\/\/ or https:\/\/ URL/],
    [{ ...base, CORS_ORIGINS: "https://app.example.com,*" }, /CORS_ORIGINS .*; \* admits every origin, so it stands alone/],
    [{ ...base, MAX_ANSWER_TOKENS: "2097" }, /MAX_ANSWER_TOKENS 2097 leaves 299 of MODEL_CONTEXT_TOKENS/],
    [{ ...base, CONTEXT_TOKEN_BUDGET: "1327" }, /CONTEXT_TOKEN_BUDGET must be at least 1328/],
  ];
  for (const [env, expected] of cases) {
    assert.throws(
      () => loadConfig(env),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, expected);
        assert.ok(!err.message.includes("\n"), "message must be one line");
        assert.ok(!err.message.includes("token") && !err.message.includes("u:p@"), "message must not echo secrets");
        return true;
      },
    );
  }
});

test("loadConfig takes each limit at its bound, and the ports both 0 (any free port, as in tests)", () => {
  const config = loadConfig({
    ...base,
    CHUNK_OVERLAP_CHARS: "600", // half of CHUNK_SIZE_CHARS (1200)
    MAX_ANSWER_TOKENS: "2096", // leaves one chunk (300 tokens) beside the longest question
    CONTEXT_TOKEN_BUDGET: "1328", // one source of CHUNK_SIZE_CHARS of Chinese with the longest title
    PORT: "0",
    METRICS_PORT: "0",
    REDIS_URL: "rediss://:p%40ss@cache:6379/2",
  });
  assert.deepEqual(
    [config.CHUNK_OVERLAP_CHARS, config.MAX_ANSWER_TOKENS, config.CONTEXT_TOKEN_BUDGET, config.PORT, config.METRICS_PORT],
    [600, 2096, 1328, 0, 0],
  );
});
