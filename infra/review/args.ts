// Flags shared by the review CLIs (`npm run plan`, `npm run cost`).
import { PROJECT } from "../config.ts";
export const FORMATS = ["table", "json", "markdown"] as const;
export type Format = (typeof FORMATS)[number];

/** The flags every stack CLI (plan, cost, preflight) takes, for `node:util` parseArgs. */
export const STACK_FLAGS = {
  stack: { type: "string", short: "s" },
  format: { type: "string", short: "f", default: "table" },
  config: { type: "string", short: "c", multiple: true, default: [] as string[] },
} as const;

export class UsageError extends Error {
  override name = "UsageError";
}

export function formatOf(value: string | undefined): Format {
  if (!FORMATS.includes(value as Format))
    throw new UsageError(`--format: "${value}" is not a format; allowed: ${FORMATS.join(", ")}`);
  return value as Format;
}

/** The namespaces the program reads config from. */
const CONFIG_NAMESPACES = [PROJECT, "aws"];

/** `--config key=value` pairs (repeatable), as `pulumi config set` would store them: what-if without editing a file. */
export function configFlags(pairs: string[]): Record<string, string> {
  const config: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--config: "${pair}" is not key=value (e.g. agent-stack:tier=small)`);
    let key = pair.slice(0, eq);
    // As `pulumi config set`: a key without a namespace is the project's.
    if (!key.includes(":")) key = `${PROJECT}:${key}`;
    const ns = key.slice(0, key.indexOf(":"));
    if (key.length === ns.length + 1) throw new UsageError(`--config: "${pair}" names no key after "${ns}:"`);
    if (!CONFIG_NAMESPACES.includes(ns))
      throw new UsageError(
        `--config: "${key}": namespace "${ns}" is not read by this program; allowed: ${CONFIG_NAMESPACES.join(", ")}`,
      );
    config[key] = pair.slice(eq + 1);
  }
  return config;
}
