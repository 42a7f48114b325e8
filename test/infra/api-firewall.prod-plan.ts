// The web ACL's 429 as a browser page meets it: WAF answers before the API, so the CORS headers the API would have
// sent are the ACL's to send (api-firewall.ts rateLimitedHeaders), wired from the stack's corsOrigins.
import assert from "node:assert/strict";
import { test } from "node:test";
import { rateLimitedHeaders } from "../../infra/workloads/api-firewall.ts";
import { inputs, one } from "../support/plan.ts";
import { stackPlan } from "../support/stack-plan.ts";

const FRONT_END = "https://app.acme.test";
const plan = await stackPlan("prod", { "agent-stack:corsOrigins": JSON.stringify([FRONT_END]) });
const headersOf = (list: Array<{ name: string; value: string }>) => Object.fromEntries(list.map((h) => [h.name, h.value]));

test("with one origin in corsOrigins, WAF's 429 names it, lets the page read Retry-After, and varies by Origin", () => {
  const { rules } = inputs(one(plan, "aws:wafv2/webAcl:WebAcl"));
  assert.deepEqual(headersOf(rules[0].action.block.customResponse.responseHeaders), {
    "Retry-After": "90",
    "Access-Control-Allow-Origin": FRONT_END,
    "Access-Control-Expose-Headers": "Retry-After",
    Vary: "Origin",
  });
});

test("with *, WAF's 429 allows every origin; with several origins it names none (it cannot echo the request's)", () => {
  assert.deepEqual(headersOf(rateLimitedHeaders(["*"])), {
    "Retry-After": "90",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After",
  });
  assert.deepEqual(headersOf(rateLimitedHeaders([FRONT_END, "http://localhost:5173"])), { "Retry-After": "90" });
  assert.deepEqual(headersOf(rateLimitedHeaders([])), { "Retry-After": "90" });
});
