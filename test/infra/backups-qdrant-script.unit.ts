// The Qdrant snapshot job's script, run for real with bash and curl against in-process fake Qdrant nodes
// (collection snapshot REST API: GET /collections, POST/GET/DELETE /collections/{c}/snapshots[/{s}])
// and a fake `aws` on PATH that "uploads" into a directory.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../../infra/workloads/qdrant-snapshot.sh", import.meta.url));
const API_KEY = "test-key";
const hasTools = ["bash", "curl", "sha256sum", "jq"].every((tool) => {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`]);
    return true;
  } catch {
    return false;
  }
});
const skip = hasTools ? false : "needs bash, curl, sha256sum and jq";

interface FakeNode {
  url: string;
  /** Snapshots still on the node, per collection. */
  stored: Map<string, Map<string, Buffer>>;
  /** What each created snapshot contained, by name. */
  created: Map<string, Buffer>;
  close(): Promise<void>;
}

/** One Qdrant node; `badChecksum` collections announce a checksum that does not match their file. */
async function fakeQdrant(collections: string[], badChecksum: string[] = [], port = 0): Promise<FakeNode> {
  const stored = new Map(collections.map((c) => [c, new Map<string, Buffer>()]));
  const created = new Map<string, Buffer>();
  let n = 0;
  const json = (res: import("node:http").ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  const server: Server = createServer((req, res) => {
    if (req.headers["api-key"] !== API_KEY) return json(res, 401, { status: { error: "Must provide an API key" } });
    const url = new URL(req.url!, "http://x");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (req.method === "GET" && url.pathname === "/collections") {
      return json(res, 200, { result: { collections: collections.map((name) => ({ name })) }, status: "ok", time: 0.001 });
    }
    const snapshots = parts[0] === "collections" && parts[2] === "snapshots" ? stored.get(parts[1]) : undefined;
    if (!snapshots) return json(res, 404, { status: { error: "Not found" } });
    if (req.method === "POST" && parts.length === 3) {
      const name = `${parts[1]}-${++n}-2025-01-01-03-00-00.snapshot`;
      const data = randomBytes(2048 + n);
      snapshots.set(name, data);
      created.set(name, data);
      const checksum = createHash("sha256")
        .update(badChecksum.includes(parts[1]) ? "other" : data)
        .digest("hex");
      return json(res, 200, {
        result: { name, creation_time: "2025-01-01T03:00:00", size: data.length, checksum },
        status: "ok",
        time: 0.01,
      });
    }
    const data = snapshots.get(parts[3]);
    if (!data) return json(res, 404, { status: { error: "Snapshot not found" } });
    if (req.method === "GET") return res.writeHead(200, { "content-type": "application/octet-stream" }).end(data);
    if (req.method === "DELETE") {
      snapshots.delete(parts[3]);
      return json(res, 200, { result: true, status: "ok", time: 0.001 });
    }
    json(res, 405, {});
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stored,
    created,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Run {
  code: number;
  stderr: string;
  /** Uploaded object keys (relative to the bucket) -> content. */
  objects: Map<string, Buffer>;
  scratchLeft: string[];
}

/** Runs the script with a fake `aws` that copies `aws s3 cp <file> s3://bucket/<key>` into a directory. */
async function runScript(nodes: Record<string, string>, env: Record<string, string> = {}): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "qdrant-snapshot-"));
  const [bin, s3, scratch] = ["bin", "s3", "scratch"].map((d) => join(dir, d));
  for (const d of [bin, s3, scratch]) execFileSync("mkdir", ["-p", d]);
  writeFileSync(
    join(bin, "aws"),
    `#!/bin/bash
[[ $1 == s3 && $2 == cp ]] || { echo "fake aws: unexpected $*" >&2; exit 2; }
src=\${@: -2:1}; dst=\${@: -1}
if [[ -n \${FAIL_UPLOAD:-} && $dst == *"$FAIL_UPLOAD"* ]]; then echo "upload failed: $dst" >&2; exit 1; fi
key=\${dst#s3://backups/}
mkdir -p "${s3}/$(dirname "$key")" && cp "$src" "${s3}/$key"
`,
  );
  chmodSync(join(bin, "aws"), 0o755);
  const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(
      "bash",
      [SCRIPT],
      {
        env: {
          PATH: `${bin}:${process.env.PATH}`,
          QDRANT_NODES: Object.entries(nodes)
            .map(([name, url]) => `${name}=${url}`)
            .join(" "),
          QDRANT_API_KEY: API_KEY,
          S3_URI: "s3://backups/qdrant",
          SCRATCH_DIR: scratch,
          // An unreachable node's listing is retried (see the node-comes-late test); quickly here.
          LIST_RETRIES: "2",
          LIST_RETRY_DELAY: "1",
          ...env,
        },
      },
      (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
    );
  });
  const objects = new Map<string, Buffer>();
  for (const entry of readdirSync(s3, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      objects.set(path.slice(s3.length + 1), readFileSync(path));
    }
  }
  return { ...result, objects, scratchLeft: readdirSync(scratch) };
}

const today = () => new Date().toISOString().slice(0, 10);

test("every collection on every node is uploaded under qdrant/<date>/<node>/<collection>/, then deleted locally", {
  skip,
}, async () => {
  const q0 = await fakeQdrant(["documents", "chunks"]);
  const q1 = await fakeQdrant(["documents"]);
  try {
    const run = await runScript({ "qdrant-0": q0.url, "qdrant-1": q1.url });
    assert.equal(run.code, 0, run.stderr);
    const date = today();
    const expected = [
      ...[...q0.created].map(([name, data]) => [`qdrant/${date}/qdrant-0/${name.split("-")[0]}/${name}`, data] as const),
      ...[...q1.created].map(([name, data]) => [`qdrant/${date}/qdrant-1/${name.split("-")[0]}/${name}`, data] as const),
    ];
    assert.equal(expected.length, 3);
    assert.deepEqual([...run.objects.keys()].sort(), expected.map(([key]) => key).sort());
    for (const [key, data] of expected) assert.ok(run.objects.get(key)!.equals(data), `${key} differs from the snapshot`);
    for (const node of [q0, q1])
      for (const snaps of node.stored.values()) assert.equal(snaps.size, 0, "a snapshot was left on the node");
    assert.deepEqual(run.scratchLeft, []);
  } finally {
    await Promise.all([q0.close(), q1.close()]);
  }
});

test("a node not reachable yet is listed again: a new pod's address reaches the network policy late", { skip }, async () => {
  // The node's port refuses the first tries (on EKS the packets are dropped until the policy agent knows the pod).
  const early = await fakeQdrant([]);
  const port = Number(new URL(early.url).port);
  await early.close();
  let late: FakeNode | undefined;
  const opening = setTimeout(async () => {
    late = await fakeQdrant(["documents"], [], port);
  }, 1_500);
  try {
    const run = await runScript({ "qdrant-0": `http://127.0.0.1:${port}` }, { LIST_RETRIES: "5", LIST_RETRY_DELAY: "1" });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      [...run.objects.keys()].map((k) => k.split("/").slice(2, 4).join("/")),
      ["qdrant-0/documents"],
    );
  } finally {
    clearTimeout(opening);
    await late?.close();
  }
});

test("a failed upload, a bad checksum or an unreachable node fail the job, and the rest is still backed up", {
  skip,
}, async () => {
  const q0 = await fakeQdrant(["documents", "chunks"]);
  const q1 = await fakeQdrant(["documents"], ["documents"]);
  const gone = await fakeQdrant([]);
  await gone.close();
  try {
    const run = await runScript(
      { "qdrant-0": q0.url, "qdrant-1": q1.url, "qdrant-2": gone.url },
      { FAIL_UPLOAD: "/qdrant-0/chunks/" },
    );
    assert.equal(run.code, 1);
    assert.deepEqual(
      [...run.objects.keys()].map((k) => k.split("/").slice(2, 4).join("/")),
      ["qdrant-0/documents"],
    );
    assert.match(run.stderr, /qdrant-0\/chunks: .* was not uploaded/);
    assert.match(run.stderr, /checksum mismatch/);
    assert.match(run.stderr, /qdrant-2: listing collections failed/);
    assert.match(run.stderr, /FAILED: 3 /);
    // Failed or not, nothing is left behind on the nodes or in scratch.
    for (const node of [q0, q1]) for (const snaps of node.stored.values()) assert.equal(snaps.size, 0);
    assert.deepEqual(run.scratchLeft, []);
  } finally {
    await Promise.all([q0.close(), q1.close()]);
  }
});

test("a node answering its collection list with something else is a failure, not an empty backup", { skip }, async () => {
  // A proxy's page, and a 200 of another shape: matched as text, each read as no collections and the job passed.
  const pages = ["<html><body>Service temporarily unavailable</body></html>", '{"status":"ok","result":{}}'];
  const servers = await Promise.all(
    pages.map(async (page) => {
      const server = createServer((_req, res) => res.writeHead(200).end(page));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return server;
    }),
  );
  const q0 = await fakeQdrant(["documents"]);
  try {
    const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const run = await runScript({ "qdrant-0": q0.url, "qdrant-1": urlOf(servers[0]!), "qdrant-2": urlOf(servers[1]!) });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /qdrant-1: the collection list is not Qdrant's: <html>/);
    assert.match(run.stderr, /qdrant-2: the collection list is not Qdrant's/);
    assert.match(run.stderr, /FAILED: 2 .*; 1 uploaded/);
    assert.equal(run.objects.size, 1, "the good node's collection is still backed up");
  } finally {
    await q0.close();
    for (const server of servers) server.close();
  }
});

test("a collection whose name the job cannot handle is a failure, not a silent gap in the backup", { skip }, async () => {
  const q0 = await fakeQdrant(["documents", "team docs"]);
  try {
    const run = await runScript({ "qdrant-0": q0.url });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /qdrant-0: collection name 'team docs' has characters this job does not handle/);
    assert.match(run.stderr, /FAILED: 1 .*; 1 uploaded/);
    assert.deepEqual(
      [...run.objects.keys()].map((k) => k.split("/").slice(2, 4).join("/")),
      ["qdrant-0/documents"],
    );
  } finally {
    await q0.close();
  }
});

test("a wrong API key is a failure, not an empty backup", { skip }, async () => {
  const q0 = await fakeQdrant(["documents"]);
  try {
    const run = await runScript({ "qdrant-0": q0.url }, { QDRANT_API_KEY: "wrong" });
    assert.equal(run.code, 1);
    assert.equal(run.objects.size, 0);
  } finally {
    await q0.close();
  }
});

test("a node without collections is fine", { skip }, async () => {
  const q0 = await fakeQdrant([]);
  try {
    const run = await runScript({ "qdrant-0": q0.url });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /qdrant-0: no collections/);
  } finally {
    await q0.close();
  }
});
