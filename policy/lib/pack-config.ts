// Policy pack configuration, resolved the way the Pulumi engine does it (ReconcilePolicyPackConfig): schema
// defaults first, then `all` for the enforcement level, then each policy's own entry. Same JSON format as
// `pulumi preview --policy-pack-config <file>`.
import type { EnforcementLevel, Policies, PolicyConfigSchema, PolicyPackConfig } from "@pulumi/policy";

type PropertySchema = PolicyConfigSchema["properties"][string];

export interface ResolvedPolicyConfig {
  enforcementLevel: EnforcementLevel;
  /** What `getConfig()` returns: schema defaults overlaid with the configured values. */
  properties: Record<string, unknown>;
}

const LEVELS: EnforcementLevel[] = ["advisory", "mandatory", "remediate", "disabled"];
/** PolicyPack's level for a policy that names none. */
const PACK_DEFAULT_LEVEL: EnforcementLevel = "advisory";

export class PolicyConfigError extends Error {
  override name = "PolicyConfigError";
}

export function resolvePackConfig(policies: Policies, given: PolicyPackConfig = {}): Map<string, ResolvedPolicyConfig> {
  const names = new Set(policies.map((p) => p.name));
  const unknown = Object.keys(given).filter((k) => k !== "all" && !names.has(k));
  if (unknown.length > 0)
    throw new PolicyConfigError(
      `policy pack config names unknown policies ${unknown.join(", ")}; policies: ${[...names].join(", ")}`,
    );
  const allLevel = levelOf("all", given.all);

  const resolved = new Map<string, ResolvedPolicyConfig>();
  for (const policy of policies) {
    const schema = policy.configSchema?.properties ?? {};
    const entry = given[policy.name];
    const { enforcementLevel: _level, ...values } = typeof entry === "object" && entry !== null ? entry : {};
    const properties: Record<string, unknown> = {};
    for (const [key, prop] of Object.entries(schema))
      if (prop.default !== undefined) properties[key] = structuredClone(prop.default);
    for (const [key, value] of Object.entries(values)) {
      if (!(key in schema))
        throw new PolicyConfigError(
          `${policy.name}: "${key}" is not a config property; allowed: ${Object.keys(schema).join(", ") || "none"}`,
        );
      checkType(policy.name, key, schema[key], value);
      properties[key] = value;
    }
    const missing = (policy.configSchema?.required ?? []).filter((k) => properties[k] === undefined);
    if (missing.length > 0) throw new PolicyConfigError(`${policy.name}: config ${missing.join(", ")} required`);
    resolved.set(policy.name, {
      enforcementLevel: levelOf(policy.name, entry) ?? allLevel ?? policy.enforcementLevel ?? PACK_DEFAULT_LEVEL,
      properties,
    });
  }
  return resolved;
}

function levelOf(name: string, entry: PolicyPackConfig[string] | undefined): EnforcementLevel | undefined {
  const level = typeof entry === "string" ? entry : entry?.enforcementLevel;
  if (level !== undefined && !LEVELS.includes(level))
    throw new PolicyConfigError(`${name}: enforcement level "${level}" is not one of ${LEVELS.join(", ")}`);
  return level;
}

function checkType(policy: string, key: string, schema: PropertySchema, value: unknown) {
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.length === 0) return;
  const actual = Array.isArray(value) ? "array" : value === null ? "null" : Number.isInteger(value) ? "integer" : typeof value;
  const ok = types.some((t: string) => t === actual || (t === "number" && actual === "integer"));
  if (!ok) throw new PolicyConfigError(`${policy}: config ${key} must be ${types.join(" or ")}, got ${JSON.stringify(value)}`);
}
