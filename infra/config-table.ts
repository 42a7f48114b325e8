// Renders what is generated from the tiers, so it cannot drift: the README's config reference (the block
// between the markers), and for the policy pack, which reads data, never the tier presets: the instance-type
// allow-lists (policy/lib/instance-types.ts) and the usage assumptions (policy/lib/tier-usage.ts). `npm run
// docs:config` rewrites all three; tests fail when one is stale.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { KUBERNETES_VERSION, PROJECT } from "./config.ts";
import { instanceTypeAllowList, TIER_NAMES, TIERS } from "./tiers.ts";
import { USAGE } from "./usage.ts";

const BEGIN = "<!-- config-table:begin -->";
const END = "<!-- config-table:end -->";

export const DOCUMENTED_KEYS: [key: string, fallback: string, what: string][] = [
  ["tier", "(required)", `one of ${TIER_NAMES.join(", ")}; fixes every size below`],
  ["overrides", "{}", 'deep partial of the tier: any single value below, e.g. `{"nodeGroups":{"general":{"max":8}}}`'],
  [
    "kubernetesVersion",
    KUBERNETES_VERSION,
    "EKS control-plane version (keep it in standard support: extended support is 6x the price)",
  ],
  [
    "endpointPublicAccessCidrs",
    "dev: 0.0.0.0/0; else [] (public endpoint off)",
    'CIDRs allowed to reach the public EKS API endpoint (private access is always on); see "Reaching a private endpoint"',
  ],
  [
    "endpointPrivateAccessCidrs",
    "[]",
    "CIDRs allowed to reach the private EKS API endpoint on 443 besides the cluster's own nodes, e.g. a deploy runner's subnet; see \"Reaching a private endpoint\"",
  ],
  ["flowLogs", "false", "VPC flow logs (rejected traffic) to CloudWatch"],
  [
    "timeZone",
    "the region's (us-east-1: America/New_York; infra/time.ts)",
    "IANA time zone of every schedule: off-peak, work hours, backups, the cost simulation",
  ],
  [
    "domain",
    "(none; required outside dev)",
    "DNS name for the API: HTTPS only (TLS 1.3/1.2), HTTP redirected; the policy pack fails a production tier without it",
  ],
  [
    "hostedZoneId",
    "(none)",
    "Route 53 hosted zone of `domain` (required with it): the certificate is validated there in the same `pulumi up`",
  ],
  ["docsEnabled", "false", "serve the API's `/docs` and `/openapi.json` (the app's DOCS_ENABLED)"],
  [
    "corsOrigins",
    "[] (no CORS header)",
    'origins whose browser pages may call the API (the app\'s CORS_ORIGINS): `https://app.example.com`, a list `["https://app.example.com","http://localhost:5173"]`, or `*` alone; each `scheme://host[:port]` with no path or trailing slash, checked at plan time',
  ],
  ["backupVaultLock", "dev: off; else governance", "Backup Vault Lock: governance, compliance (immutable after 3 days), off"],
  [
    "notifyEmail",
    "(none)",
    "an address or a list: e-mail subscriptions to the stack's SNS topic, where alerts and budget warnings go; a stack needs this, Slack or PagerDuty",
  ],
  [
    "activateCostTag",
    "true",
    "activate the `stack` cost allocation tag the budget filters on; false in an AWS Organizations member account, where only the payer account can (activate `stack` there)",
  ],
  [
    "budgetSnsTopicArn",
    "(none)",
    "an SNS topic the budget notifies instead of the stack's (AWS Budgets takes one topic per alert); the notifyEmail addresses are then mailed by the budget itself (at most 10)",
  ],
  ["restore", "{}", '`{"rdsSnapshotId": "..."}` creates the database from a snapshot'],
  [
    "ci",
    "{}",
    '`{"githubRepo": "owner/name"}` creates the GitHub Actions deploy and preview roles; exactly one stack per account sets `"ownsOidcProvider": true` and creates the GitHub OIDC provider, the others look it up (or name it with `oidcProviderArn`)',
  ],
  ["alertSlackWebhookUrl", "(none)", "secret (`pulumi config set --secret`): Alertmanager chat receiver"],
  ["alertPagerdutyKey", "(none)", "secret: Alertmanager paging receiver"],
];

function leaves(value: unknown, path: string[] = []): [string, unknown][] {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  }
  return [[path.join("."), value]];
}

function cell(value: unknown): string {
  if (value === null) return "—";
  if (Array.isArray(value)) return value.join(", ");
  return String(value).replace(/\|/g, "\\|");
}

function renderConfigTable(): string {
  const lines = ["| key | default | meaning |", "|---|---|---|"];
  for (const [key, fallback, what] of DOCUMENTED_KEYS) lines.push(`| \`${PROJECT}:${key}\` | ${cell(fallback)} | ${what} |`);
  lines.push("", `Tier sizes, each overridable under \`${PROJECT}:overrides\` (— : absent in that tier):`, "");
  lines.push(`| overrides key | ${TIER_NAMES.join(" | ")} |`, `|---|${TIER_NAMES.map(() => "---").join("|")}|`);
  const perTier = TIER_NAMES.map((t) => {
    const { name: _name, guide: _guide, ...sizes } = TIERS[t];
    return new Map(leaves(sizes));
  });
  // Medium has every group, so its key order leads; a null group in another tier leaves a bare prefix key.
  const all = [...new Set([perTier[TIER_NAMES.indexOf("medium")], ...perTier].flatMap((m) => [...m.keys()]))];
  const keys = all.filter((k) => k && !all.some((other) => other.startsWith(`${k}.`)));
  for (const key of keys) lines.push(`| \`${key}\` | ${perTier.map((m) => cell(m.has(key) ? m.get(key) : null)).join(" | ")} |`);
  return lines.join("\n");
}

export function withConfigTable(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${BEGIN} ... ${END} markers`);
  return `${readme.slice(0, start + BEGIN.length)}\n${renderConfigTable()}\n${readme.slice(end)}`;
}

export const INSTANCE_TYPES_FILE = fileURLToPath(new URL("../policy/lib/instance-types.ts", import.meta.url));

/** policy/lib/instance-types.ts: each tier's allow-list (its own and every smaller tier's types). */
export function renderInstanceTypes(): string {
  const lists = TIER_NAMES.map(
    (t) =>
      `  ${t}: [${instanceTypeAllowList(t)
        .map((x) => JSON.stringify(x))
        .join(", ")}],`,
  );
  return [
    "// Generated by `npm run docs:config` (infra/config-table.ts) from infra/tiers.ts: do not edit.",
    "// Every EC2, RDS and ElastiCache type a tier (or any smaller tier) is sized with.",
    "export const INSTANCE_TYPES: Record<string, string[]> = {",
    ...lists,
    "};",
    "",
  ].join("\n");
}

export const TIER_USAGE_FILE = fileURLToPath(new URL("../policy/lib/tier-usage.ts", import.meta.url));

/**
 * policy/lib/tier-usage.ts: each tier's usage assumptions (infra/usage.ts), which the plan carries as config.usage and
 * the budget policy needs under the engine, where it sees resources but not the stack's config.
 */
export function renderTierUsage(): string {
  return [
    "// Generated by `npm run docs:config` (infra/config-table.ts) from infra/usage.ts: do not edit.",
    "// Each tier's usage assumptions, by the tier's name (the `tier` tag every resource of the stack carries).",
    'import type { Usage } from "../../infra/plan/types.ts";',
    "",
    `export const TIER_USAGE: Record<string, Usage> = ${JSON.stringify(USAGE, null, 2)};`,
    "",
  ].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = fileURLToPath(new URL("../README.md", import.meta.url));
  writeFileSync(path, withConfigTable(readFileSync(path, "utf8")));
  writeFileSync(INSTANCE_TYPES_FILE, renderInstanceTypes());
  writeFileSync(TIER_USAGE_FILE, renderTierUsage());
}
