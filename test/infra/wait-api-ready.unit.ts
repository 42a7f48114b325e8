// scripts/wait-api-ready.sh (the deploy workflow's readiness check) against stub pulumi, kubectl and curl on PATH:
// a public apiUrl is polled directly; dev's "port-forward: kubectl ..." apiUrl goes through the cluster instead.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { PORT_FORWARD_API_URL } from "../../infra/workloads/names.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/wait-api-ready.sh", import.meta.url));

/** Runs the script with stubs that log their arguments; curl fails `curlFailures` times, then answers. */
function run(apiUrl: string, curlFailures = 0): { status: number | null; calls: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "wait-ready-"));
  try {
    const log = join(dir, "calls.log");
    const stub = (name: string, body: string) => {
      writeFileSync(join(dir, name), `#!/usr/bin/env bash\necho "${name} $*" >> "${log}"\n${body}\n`);
      chmodSync(join(dir, name), 0o755);
    };
    stub("pulumi", `case "$*" in *apiUrl*) echo '${apiUrl}';; *kubeconfig*) echo '{"kind":"Config"}';; esac`);
    // The port-forward stays up until the script kills it (exec: the same pid, so nothing outlives the script).
    stub("kubectl", `case "$*" in *port-forward*) exec /bin/sleep 30;; esac`);
    const count = join(dir, "curl.count");
    stub("curl", `n=$(cat "${count}" 2>/dev/null || echo 0); echo $((n + 1)) > "${count}"; [ "$n" -ge ${curlFailures} ]`);
    stub("sleep", "true"); // the script's 15 s pauses between polls
    const result = spawnSync("bash", [SCRIPT, "dev", "60"], {
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
      encoding: "utf8",
      timeout: 20_000,
    });
    const calls = readFileSync(log, "utf8").trim().split("\n");
    return { status: result.status, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a public apiUrl is polled at /health/ready until it answers; kubectl is never needed", () => {
  const { status, calls } = run("https://agents.example.com/", 2);
  assert.equal(status, 0);
  assert.deepEqual(
    calls.filter((c) => c.startsWith("curl")),
    Array(3).fill("curl -fsS --max-time 10 https://agents.example.com/health/ready"),
  );
  assert.ok(!calls.some((c) => c.startsWith("kubectl")));
});

test("dev's port-forward apiUrl: rollout status of the API Deployment, then /health/ready through a port-forward", () => {
  const { status, calls } = run(PORT_FORWARD_API_URL, 1);
  assert.equal(status, 0);
  const kubectl = calls.filter((c) => c.startsWith("kubectl"));
  assert.match(kubectl[0], /^kubectl -n agent rollout status deployment\/agent-api --timeout=\d+s$/);
  assert.equal(kubectl[1], "kubectl -n agent port-forward svc/agent-api 18080:8080");
  assert.ok(calls.includes("pulumi stack output kubeconfig --show-secrets --stack dev"));
  assert.equal(calls.filter((c) => c === "curl -fsS --max-time 10 http://127.0.0.1:18080/health/ready").length, 2);
});
