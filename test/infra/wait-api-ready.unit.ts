// scripts/wait-api-ready.sh (the deploy workflow's readiness check) against stub pulumi, kubectl and curl on PATH:
// a public apiUrl is polled directly; dev's "port-forward: kubectl ..." apiUrl goes through the cluster instead.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { PORT_FORWARD_API_URL } from "../../infra/workloads/names.ts";
import { withScriptStubs } from "../support/script-stubs.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/wait-api-ready.sh", import.meta.url));

/** Runs the script with stubs that log their arguments; curl fails `curlFailures` times, then answers. */
function run(apiUrl: string, curlFailures = 0): { status: number | null; calls: string[] } {
  return withScriptStubs("wait-ready-", { apiUrl }, ({ dir, stub, run: runScript, lines }) => {
    const count = join(dir, "curl.count");
    stub("curl", `n=$(cat "${count}" 2>/dev/null || echo 0); echo $((n + 1)) > "${count}"; [ "$n" -ge ${curlFailures} ]`);
    stub("sleep", "true"); // the script's 15 s pauses between polls
    const result = runScript(SCRIPT, ["dev", "60"], 20_000);
    return { status: result.status, calls: lines("calls.log") };
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
