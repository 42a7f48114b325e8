/** One import for other test suites: `import { startStack, startApp, startPostgres, startRedis, scrape } from "../support/index.ts"`. */
export { ADMIN_KEY, appEnv, MODELS, OTHER_KEY, spawnApp, spawnAppProcess, startApp, startStack, USER_KEY } from "./app.ts";
export type { SpawnedApp, Stack, TestApp } from "./app.ts";
export { startFakes } from "./fakes.ts";
export type { Fakes } from "./fakes.ts";
export { api, parseSse } from "./http.ts";
export { metricValue, scrape } from "./metrics.ts";
export { startPostgres } from "./postgres.ts";
export type { PostgresServer } from "./postgres.ts";
export { freePort, waitFor } from "./process.ts";
export type { ManagedServer } from "./process.ts";
export { startRedis } from "./redis.ts";
export type { RedisServer } from "./redis.ts";
