import assert from "node:assert/strict";
import { test } from "node:test";
import { type Probe, readiness, serving } from "../../app/src/routes/health.ts";

const ok = async () => {};
const fails = async () => {
  throw new Error("down");
};

function health(probes: Record<string, Probe>, shuttingDown = false) {
  return { probes, probeTimeoutMs: 100, isShuttingDown: () => shuttingDown };
}

test("out of service only while shutting down or for a fault of its own, never for a dependency all replicas share", async () => {
  let sharedChecked = 0;
  const postgres: Probe = {
    critical: true,
    check: async () => {
      sharedChecked++;
      throw new Error("ECONNREFUSED");
    },
  };
  const deps = health({ postgres, embedding: { critical: true, check: fails, servingCheck: ok } });
  assert.equal((await readiness(deps)).code, 503, "readiness says Postgres is down");
  sharedChecked = 0;
  assert.deepEqual(await serving(deps), { code: 200, body: { status: "serving" } });
  assert.equal(sharedChecked, 0, "a shared dependency's probe is not even run");

  assert.equal((await serving(health({ postgres, embedding: { critical: true, check: ok, servingCheck: fails } }))).code, 503);
  assert.deepEqual(await serving(health({ embedding: { critical: true, check: ok, servingCheck: ok } }, true)), {
    code: 503,
    body: { status: "not_serving" },
  });
});

test("a shutting-down instance is not ready, and its readiness says why, though every dependency answers", async () => {
  const deps = health({ postgres: { critical: true, check: ok }, redis: { critical: false, check: ok } }, true);
  const { code, body } = await readiness(deps);
  assert.equal(code, 503);
  assert.equal(body.status, "not_ready");
  assert.deepEqual(body.checks.shutdown, { status: "fail", critical: true, latency_ms: 0, error: "shutting down" });
  assert.equal(body.checks.postgres?.status, "ok");
});
