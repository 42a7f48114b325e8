import { type ChildProcess, execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, type Config } from "../../app/src/config.ts";
import { createLogger, type Logger } from "../../app/src/log.ts";
import type { RunningServer } from "../../app/src/start.ts";
import { startFakes, type Fakes } from "./fakes.ts";
import { startPostgres, type PostgresServer } from "./postgres.ts";
import { spawnTracked, stopProcess, waitFor } from "./process.ts";
import { startRedis, type RedisServer } from "./redis.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Keys every test app accepts: USER_KEY has the query scope, ADMIN_KEY also admin. */
export const USER_KEY = "test-user-key-0123456789";
export const OTHER_KEY = "test-other-key-0123456789";
export const ADMIN_KEY = "test-admin-key-0123456789";

/** Model names the fakes answer to; routing picks one by question complexity. */
export const MODELS = {
  EMBED_MODEL: "fake-embed",
  MODEL_SMALL: "fake-small",
  MODEL_DEFAULT: "fake-default",
  MODEL_LARGE: "fake-large",
};

/** Server URLs nothing answers at: the environment of a service built with stand-ins that never calls them. */
export const UNUSED_URLS = { databaseUrl: "postgres://x", redisUrl: "redis://x", ollamaUrl: "http://x", qdrantUrl: "http://x" };

/** A complete environment for the app, pointing at the given servers; `overrides` wins. */
export function appEnv(
  urls: { databaseUrl: string; redisUrl: string; ollamaUrl: string; qdrantUrl: string },
  overrides: Record<string, string> = {},
) {
  return {
    DATABASE_URL: urls.databaseUrl,
    REDIS_URL: urls.redisUrl,
    OLLAMA_URL: urls.ollamaUrl,
    QDRANT_URL: urls.qdrantUrl,
    PORT: "0",
    METRICS_PORT: "0",
    HOST: "127.0.0.1",
    API_KEYS: `${USER_KEY},${OTHER_KEY}`,
    ADMIN_API_KEYS: ADMIN_KEY,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...MODELS,
    ...overrides,
  };
}

export interface TestApp {
  url: string;
  /** METRICS_PORT: /metrics and detailed readiness. */
  metricsUrl: string;
  config: Config;
  server: RunningServer;
  stop(): Promise<void>;
}

/** Runs the real app in this process (same composition root as `npm run app`) on a free port; `log` to read its lines. */
export async function startApp(env: Record<string, string>, log?: Logger): Promise<TestApp> {
  const config = loadConfig(env);
  // Loaded with the first app started here: a file that only spawns the app or reads appEnv does without (0.3 to 0.5 s).
  const { startServer } = await import("../../app/src/start.ts");
  const server = await startServer(config, log ?? createLogger(config.LOG_LEVEL));
  return { url: server.url, metricsUrl: server.metricsUrl, config, server, stop: () => server.close(1_000) };
}

export interface SpawnedApp {
  url: string;
  child: ChildProcess;
  /** Everything the process wrote so far. */
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

let bundled: string | undefined;

/**
 * The API as its image runs it (app/Dockerfile: `npm run build`, then `node dist/main.js`), built once per process by
 * app/package.json's own build script into app/dist (ignored by git), one file per process: node finds the
 * dependencies from there, and the bundle its migrations one level up (start.ts MIGRATIONS_DIR), as in the image.
 */
function appBundle(): string {
  if (bundled) return bundled;
  const appDir = path.join(REPO_ROOT, "app");
  const build: string = JSON.parse(readFileSync(path.join(appDir, "package.json"), "utf8")).scripts.build;
  const [command, ...args] = build.split(" ");
  if (command !== "esbuild") throw new Error(`app/package.json's build script is no longer esbuild: ${build}`);
  const outfile = path.join(appDir, `dist/main.test-${process.pid}.js`);
  const flags = [...args.filter((a) => !a.startsWith("--outfile=")), `--outfile=${outfile}`, "--log-level=warning"];
  execFileSync(path.join(REPO_ROOT, "node_modules/.bin/esbuild"), flags, { cwd: appDir, stdio: "inherit" });
  process.once("exit", () => rmSync(outfile, { force: true }));
  bundled = outfile;
  return outfile;
}

/**
 * Runs the API's bundle (appBundle: what its container runs, not the sources through tsx) as its own process, e.g. to
 * send it signals.
 */
export function spawnAppProcess(env: Record<string, string>, args: string[] = []): Omit<SpawnedApp, "url" | "stop"> {
  const child = spawnTracked(process.execPath, [appBundle(), ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  // "close", not "exit": its output may still be in the pipes when the process has exited, and callers read it then.
  const exited = new Promise<Awaited<SpawnedApp["exited"]>>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => ({ stdout, stderr }), exited };
}

/** Spawns the app with a fixed port and waits until /health answers. */
export async function spawnApp(env: Record<string, string>): Promise<SpawnedApp> {
  const proc = spawnAppProcess(env);
  const url = `http://127.0.0.1:${env.PORT}`;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  await waitFor(
    "spawned app",
    async () => {
      if (exited) throw new Error(`app exited during start-up: ${proc.output().stderr}${proc.output().stdout}`);
      return (await fetch(`${url}/health`)).ok;
    },
    30_000,
  );
  return { url, ...proc, stop: () => stopProcess(proc.child, "SIGKILL") };
}

export interface Stack {
  url: string;
  metricsUrl: string;
  app: TestApp;
  pg: PostgresServer;
  redis: RedisServer;
  fakes: Fakes;
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Postgres + Redis + fakes + the app in this process: what most app tests need (`log`: the app's logger). */
export const startStack = (overrides: Record<string, string> = {}, log?: Logger): Promise<Stack> =>
  startStackWith(overrides, false, log);

export interface ProxiedStack extends Stack {
  pgProxy: TcpProxy;
  redisProxy: TcpProxy;
}

/** startStack with the app reaching Postgres and Redis through TCP proxies: a test stages partitions and blips with them. */
export const startProxiedStack = (overrides: Record<string, string> = {}): Promise<ProxiedStack> =>
  startStackWith(overrides, true) as Promise<ProxiedStack>;

async function startStackWith(overrides: Record<string, string>, proxied: boolean, log?: Logger): Promise<Stack> {
  const started = await Promise.allSettled([startPostgres(), startRedis(), startFakes()]);
  const stopStarted = () => Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await stopStarted();
    throw failed.reason;
  }
  const [pg, redis, fakes] = started.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [
    PostgresServer,
    RedisServer,
    Fakes,
  ];
  const proxies = proxied ? { pgProxy: await startTcpProxy(pg.port), redisProxy: await startTcpProxy(redis.port) } : undefined;
  const closeProxies = () => Promise.all([proxies?.pgProxy.close(), proxies?.redisProxy.close()]);
  const databaseUrl = proxies ? `postgres://postgres@127.0.0.1:${proxies.pgProxy.port}/postgres` : pg.url;
  const redisUrl = proxies ? `redis://127.0.0.1:${proxies.redisProxy.port}` : redis.url;
  const env = appEnv({ databaseUrl, redisUrl, ollamaUrl: fakes.ollama.url, qdrantUrl: fakes.qdrant.url }, overrides);
  let app: TestApp;
  try {
    app = await startApp(env, log);
  } catch (err) {
    await closeProxies();
    await stopStarted();
    throw err;
  }
  return {
    url: app.url,
    metricsUrl: app.metricsUrl,
    app,
    pg,
    redis,
    fakes,
    env,
    ...proxies,
    stop: async () => {
      await app.stop();
      await closeProxies();
      await Promise.all([pg.stop(), redis.stop(), fakes.stop()]);
    },
  };
}
