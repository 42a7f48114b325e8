// scripts/wait-api-ready.sh (the deploy workflow's readiness check) against stub pulumi, kubectl and curl on PATH:
// a public apiUrl is polled directly; dev's "port-forward: kubectl ..." apiUrl goes through the cluster instead.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { PORT_FORWARD_API_URL } from "../../infra/workloads/names.ts";
import { withScriptStubs } from "../support/script-stubs.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/wait-api-ready.sh", import.meta.url));

/**
 * Runs the script with stubs that log their arguments; curl fails `curlFailures` times, then answers. `timeout` is the
 * script's (seconds); `rolloutFails`: `kubectl rollout status` fails (the rollout did not finish in time).
 */
function run(
  apiUrl: string,
  curlFailures = 0,
  { timeout = "60", rolloutFails = false } = {},
): { status: number | null; stdout: string; calls: string[] } {
  return withScriptStubs("wait-ready-", { apiUrl }, ({ dir, stub, run: runScript, lines }) => {
    const count = join(dir, "curl.count");
    stub("curl", `n=$(cat "${count}" 2>/dev/null || echo 0); echo $((n + 1)) > "${count}"; [ "$n" -ge ${curlFailures} ]`);
    stub("sleep", "true"); // the script's 15 s pauses between polls
    if (rolloutFails) stub("kubectl", `case "$*" in *"rollout status"*) exit 1;; *port-forward*) exec /bin/sleep 30;; esac`);
    const result = runScript(SCRIPT, ["dev", timeout], 20_000);
    return { status: result.status, stdout: result.stdout, calls: lines("calls.log") };
  });
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

test("an API that does not answer before the timeout fails the wait, naming the URL, instead of passing or polling on", () => {
  const { status, stdout, calls } = run("https://agents.example.com/", 1_000_000, { timeout: "0" });
  assert.equal(status, 1, stdout);
  assert.match(stdout, /^::error::https:\/\/agents\.example\.com\/health\/ready did not answer 200 within 0s$/m);
  assert.equal(calls.filter((c) => c.startsWith("curl")).length, 1);
});

test("dev: a rollout that does not finish fails the wait, with no port-forward, though the old pods still answer", () => {
  // The Service still reaches the previous ReplicaSet's ready pods: /health/ready through it says nothing of this deploy.
  const { status, calls } = run(PORT_FORWARD_API_URL, 0, { rolloutFails: true });
  assert.notEqual(status, 0);
  assert.ok(calls.some((c) => c.startsWith("kubectl -n agent rollout status")));
  assert.ok(!calls.some((c) => c.includes("port-forward")), calls.join("\n"));
  assert.ok(!calls.some((c) => c.startsWith("curl")), calls.join("\n"));
});
