// A local stand-in for chart repositories and container registries on 127.0.0.1: each repository's index.yaml
// (built from the versions recorded in test/fixtures/upstream-chart-releases.json) and the OCI distribution
// API, with Docker Hub's anonymous bearer-token dance.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import YAML from "yaml";

const releases = JSON.parse(readFileSync(new URL("../fixtures/upstream-chart-releases.json", import.meta.url), "utf8")) as {
  charts: Record<string, { versions: { version: string; appVersion?: string }[] }>;
};

export interface Upstream {
  /** Maps https://<host>/<path> to this server. */
  rewrite: (url: string) => string;
  /** "<registry host>/<repository>:<tag>" -> digest the registry serves. */
  tags: Map<string, string>;
  requests: string[];
  close(): Promise<void>;
}

/** index.yaml per repository URL, in Helm's layout (entries.<chart>[] with version, appVersion, dependencies). */
function indexes(): Map<string, string> {
  const byRepo = new Map<string, Record<string, unknown[]>>();
  for (const [key, { versions }] of Object.entries(releases.charts)) {
    const [repo, chart] = key.split(" ");
    const entries = byRepo.get(repo) ?? {};
    entries[chart] = versions.map((v) => ({
      apiVersion: "v2",
      appVersion: v.appVersion ?? "1.0.0",
      name: chart,
      version: v.version,
      // A dependency's version must not count as a release of the chart itself.
      dependencies: [{ name: "crds", version: "99.9.9", repository: "" }],
      urls: [`${repo}/${chart}-${v.version}.tgz`],
    }));
    byRepo.set(repo, entries);
  }
  return new Map(
    [...byRepo].map(([repo, entries]) => [
      repo.replace(/^https:\/\//, ""),
      YAML.stringify({ apiVersion: "v1", entries }, { indentSeq: false }),
    ]),
  );
}

export async function startUpstream(): Promise<Upstream> {
  const index = indexes();
  const tags = new Map<string, string>();
  const requests: string[] = [];
  let base = "";
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url!, base);
    requests.push(`${req.method} ${url.pathname}`);
    const path = url.pathname.slice(1);
    if (path === "auth/token") {
      const scope = url.searchParams.get("scope") ?? "";
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: `anon:${scope}` }));
      return;
    }
    if (path.endsWith("/index.yaml")) {
      const body = index.get(path.slice(0, -"/index.yaml".length));
      res.writeHead(body ? 200 : 404).end(body ?? "not found");
      return;
    }
    const manifest = /^([^/]+)\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (manifest) {
      const [, host, repository, tag] = manifest;
      if (host === "registry-1.docker.io" && req.headers.authorization !== `Bearer anon:repository:${repository}:pull`) {
        res
          .writeHead(401, {
            "www-authenticate": `Bearer realm="${base}auth/token",service="registry.docker.io",scope="repository:${repository}:pull"`,
          })
          .end();
        return;
      }
      const digest = tags.get(`${host}/${repository}:${tag}`);
      res.writeHead(digest ? 200 : 404, digest ? { "docker-content-digest": digest } : {}).end();
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    rewrite: (url) => url.replace(/^https:\/\//, base),
    tags,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
