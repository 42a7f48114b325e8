// Reads `Pulumi.<stack>.yaml` the way the Pulumi CLI would hand it to the program: every value as a string
// (structured values JSON-encoded), keys namespaced. Secure values cannot be decrypted offline; they are
// passed as SECRET_PLACEHOLDER and marked secret.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { SECRET_PLACEHOLDER } from "./types.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export class UnknownStackError extends Error {
  override name = "UnknownStackError";
}

export interface StackFile {
  stack: string;
  config: Record<string, string>;
  secretKeys: string[];
}

export function listStacks(root = REPO_ROOT): string[] {
  return readdirSync(root)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => Boolean(s))
    .sort();
}

export function loadStackFile(stack: string | undefined, root = REPO_ROOT): StackFile {
  const stacks = listStacks(root);
  if (!stack || !stacks.includes(stack)) {
    const what = stack ? `unknown stack "${stack}"` : "no stack given (--stack <name>)";
    throw new UnknownStackError(`${what}; stacks in this project: ${stacks.join(", ")}`);
  }
  const doc = YAML.parse(readFileSync(join(root, `Pulumi.${stack}.yaml`), "utf8")) ?? {};
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries<unknown>(doc.config ?? {})) {
    if (isSecure(value)) {
      config[key] = SECRET_PLACEHOLDER;
      secretKeys.push(key);
    } else {
      config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return { stack, config, secretKeys };
}

function isSecure(value: unknown): boolean {
  return typeof value === "object" && value !== null && "secure" in value;
}
