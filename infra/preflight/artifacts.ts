// Helm chart versions and container image tags, checked over plain HTTP: a chart repository's index.yaml lists
// every release; a registry answers the OCI distribution API (HEAD /v2/<repo>/manifests/<tag>), with an
// anonymous bearer token when it asks for one. No Docker engine, no credentials.
import { type ChartPin, parseImageRef } from "../versions.ts";
import type { CheckResult } from "./report.ts";

export interface HttpOptions {
  /** Maps an upstream URL to the one actually requested (tests point it at a local server). */
  rewrite: (url: string) => string;
  timeoutMs: number;
}

export const DEFAULT_HTTP: HttpOptions = { rewrite: (url) => url, timeoutMs: 10_000 };

const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** One check per chart; each repository's index.yaml is fetched once. */
export async function checkCharts(pins: ChartPin[], http: HttpOptions): Promise<CheckResult[]> {
  const indexes = new Map<string, Promise<string>>();
  return Promise.all(
    pins.map(async (pin): Promise<CheckResult> => {
      const check = `chart: ${pin.chart} ${pin.version}`;
      const url = `${pin.repo.replace(/\/$/, "")}/index.yaml`;
      try {
        if (!indexes.has(url)) indexes.set(url, getText(http.rewrite(url), http.timeoutMs));
        const versions = chartVersions(await indexes.get(url)!, pin.chart);
        if (versions.includes(pin.version)) return { check, status: "ok", detail: `listed in ${url}` };
        const newest = [...versions].sort(byVersionDesc).slice(0, 3).join(", ");
        return {
          check,
          status: "fail",
          detail: versions.length ? `${url} has no ${pin.version} (newest: ${newest})` : `${url} has no chart named ${pin.chart}`,
          fix: "Pin a released version in infra/versions.ts (CHARTS)",
        };
      } catch (err) {
        return {
          check,
          status: "fail",
          detail: `could not read ${url}: ${message(err)}`,
          fix: "Check the repository URL and this machine's HTTPS access",
        };
      }
    }),
  );
}

/**
 * The versions of one chart in a Helm repository index, in index order (newest first). Scans lines instead of
 * parsing the YAML: the big indexes are tens of MB. Entries are `  <chart>:` followed by list items (`- ` at
 * two spaces in Helm's own layout, four in others) whose keys line up two columns further; the versions of
 * an entry's dependencies sit deeper and are not matched.
 */
export function chartVersions(indexYaml: string, chart: string): string[] {
  const versions: string[] = [];
  let inEntries = false;
  let current: string | undefined;
  let item: number | undefined;
  for (const line of indexYaml.split("\n")) {
    if (/^\S/.test(line)) {
      inEntries = line.startsWith("entries:");
      current = undefined;
      continue;
    }
    if (!inEntries) continue;
    const key = /^ {2}(["']?)([^\s"':-][^\s"':]*)\1:\s*$/.exec(line);
    if (key) {
      current = key[2];
      item = undefined;
      continue;
    }
    if (current !== chart) continue;
    item ??= /^( *)- /.exec(line)?.[1].length;
    if (item === undefined) continue;
    const version = new RegExp(`^(?: {${item}}- | {${item + 2}})version:\\s*["']?([^"'\\s]+)["']?\\s*$`).exec(line);
    if (version) versions.push(version[1]);
  }
  return versions;
}

/** One check per image: the tag exists, and its digest is the pinned one when a digest is pinned. */
export async function checkImages(refs: string[], http: HttpOptions): Promise<CheckResult[]> {
  return Promise.all(
    refs.map(async (ref): Promise<CheckResult> => {
      const check = `image: ${ref.split("@")[0]}`;
      const image = parseImageRef(ref);
      try {
        const digest = await manifestDigest(image, http);
        if (!digest)
          return {
            check,
            status: "fail",
            detail: `tag ${image.tag} not found in ${image.registry}/${image.repository}`,
            fix: "Pin a published tag in infra/versions.ts (IMAGES)",
          };
        if (image.digest && image.digest !== digest) {
          return {
            check,
            status: "fail",
            detail: `tag ${image.tag} now points to ${digest}, pinned ${image.digest}`,
            fix: "The tag was moved: review the new image, then update the digest in infra/versions.ts",
          };
        }
        if (image.digest) return { check, status: "ok", detail: `tag and pinned digest match (${digest})` };
        return {
          check,
          status: "warn",
          detail: `tag ${image.tag} exists as ${digest}`,
          fix: `Pin it by digest in infra/versions.ts: ${ref}@${digest}`,
        };
      } catch (err) {
        return {
          check,
          status: "fail",
          detail: `could not ask ${image.registry}: ${message(err)}`,
          fix: "Check the registry name and this machine's HTTPS access",
        };
      }
    }),
  );
}

/** The manifest digest a registry serves for the tag, or undefined when it has no such tag. */
async function manifestDigest(image: ReturnType<typeof parseImageRef>, http: HttpOptions): Promise<string | undefined> {
  const host = image.registry === "docker.io" ? "registry-1.docker.io" : image.registry;
  const url = http.rewrite(`https://${host}/v2/${image.repository}/manifests/${image.tag}`);
  const head = (auth?: string) =>
    fetch(url, {
      method: "HEAD",
      headers: { Accept: MANIFEST_TYPES, ...(auth ? { Authorization: auth } : {}) },
      signal: AbortSignal.timeout(http.timeoutMs),
    });
  let res = await head();
  if (res.status === 401) {
    const token = await anonymousToken(res.headers.get("www-authenticate") ?? "", image.repository, http.timeoutMs);
    res = await head(`Bearer ${token}`);
  }
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`HTTP ${res.status} for ${url}`);
  return res.headers.get("docker-content-digest") ?? undefined;
}

/** `WWW-Authenticate: Bearer realm="...",service="..."` -> an anonymous pull token for the repository. */
async function anonymousToken(challenge: string, repository: string, timeoutMs: number): Promise<string> {
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  if (!/^Bearer /i.test(challenge) || !params.realm) throw new Error(`unsupported registry challenge "${challenge}"`);
  const url = new URL(params.realm);
  if (params.service) url.searchParams.set("service", params.service);
  url.searchParams.set("scope", params.scope ?? `repository:${repository}:pull`);
  const body = JSON.parse(await getText(url.toString(), timeoutMs)) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new Error(`no token from ${url.origin}`);
  return token;
}

async function getText(url: string, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.text();
}

/** Newest first by numeric major.minor.patch (pre-release suffixes ignored). */
function byVersionDesc(a: string, b: string): number {
  const parts = (v: string) =>
    v
      .split(/[.-]/)
      .slice(0, 3)
      .map((p) => Number.parseInt(p, 10) || 0);
  const [x, y] = [parts(a), parts(b)];
  return y[0] - x[0] || y[1] - x[1] || y[2] - x[2];
}

export function message(err: unknown): string {
  return err instanceof Error ? (err.name === "TimeoutError" ? "timed out" : err.message) : String(err);
}
