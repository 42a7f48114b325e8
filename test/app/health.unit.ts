import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OpenAPIHono } from "@hono/zod-openapi";
import { type Probe, readiness, registerHealthRoutes, serving } from "../../app/src/routes/health.ts";
import type { AppEnv } from "../../app/src/types.ts";

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

/** The public health routes over probes that count their runs and take `ms` each; one started while `failing` fails. */
function publicHealth(ms = 20) {
  const runs: Record<string, number> = {};
  const state = { failing: false };
  const probe = (name: string): Probe => ({
    critical: true,
    check: async () => {
      runs[name] = (runs[name] ?? 0) + 1;
      const failing = state.failing;
      await sleep(ms);
      if (failing) throw new Error(`${name} down`);
    },
  });
  const app = new OpenAPIHono<AppEnv>();
  const names = ["postgres", "redis", "qdrant", "ollama"];
  registerHealthRoutes(app, {
    probes: Object.fromEntries(names.map((n) => [n, probe(n)])),
    probeTimeoutMs: 1_000,
    isShuttingDown: () => false,
    docsEnabled: false,
  });
  const ready = async () => {
    const res = await app.request("/health/ready");
    return { code: res.status, status: ((await res.json()) as { status: string }).status };
  };
  return { runs, state, ready };
}

test("public readiness: 100 requests at once run each dependency's probe at most twice, all answered", async () => {
  // Keyless and public: each request ran a Postgres statement from the API's pool, a Redis write, a Qdrant and an
  // Ollama call, 100 of each for 100 requests.
  const { runs, ready } = publicHealth();
  const answers = await Promise.all(Array.from({ length: 100 }, ready));
  assert.ok(answers.every((a) => a.code === 200 && a.status === "ready"));
  for (const name of ["postgres", "redis", "qdrant", "ollama"]) assert.ok(runs[name]! <= 2, `${name}: ${runs[name]} runs`);
});

test("public readiness: a request made while a probe runs is answered by a later run, never an earlier result", async () => {
  const { state, ready } = publicHealth(50);
  const before = ready();
  await sleep(10);
  state.failing = true;
  const after = ready();
  assert.deepEqual(await before, { code: 200, status: "ready" });
  assert.deepEqual(await after, { code: 503, status: "not_ready" });
});
