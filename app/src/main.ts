import { ConfigError, loadConfig, type Config } from "./config.ts";

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}

// Loaded only once the environment is valid, so a bad variable is reported without loading the server.
const { createLogger } = await import("./log.ts");
const { describe } = await import("./errors.ts");

const command = process.argv[2];
if (command !== undefined) {
  if (command !== "bump-corpus-version") {
    process.stderr.write(`unknown command ${command}: the one command is bump-corpus-version (none starts the server)\n`);
    process.exit(1);
  }
  const { bumpCorpusVersion } = await import("./corpus-command.ts");
  try {
    process.stdout.write(`corpus version bumped to ${await bumpCorpusVersion(config)}: every replica drops its answers\n`);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`bump-corpus-version failed: ${describe(err)}\n`);
    process.exit(1);
  }
}
const { startServer } = await import("./start.ts");

const log = createLogger(config.LOG_LEVEL);
try {
  const server = await startServer(config, log);
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, "shutting down");
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: describe(err) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
} catch (err) {
  log.fatal({ err: describe(err) }, "start-up failed");
  // The reason is the one line an operator needs, with the log off too (LOG_LEVEL=silent).
  if (!log.isLevelEnabled("fatal")) process.stderr.write(`start-up failed: ${describe(err)}\n`);
  process.exit(1);
}
