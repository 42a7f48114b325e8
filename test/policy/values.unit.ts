// policy/lib/values.ts withUnknowns on the engine's own props proxy (@pulumi/policy proxy.js), as a real preview gives it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { UNKNOWN_VALUE } from "../../infra/plan/types.ts";
import { withUnknowns } from "../../policy/lib/values.ts";
import { unknownCheckingProxy, unknownNumberValue, unknownObjectValue, unknownStringValue } from "./support.ts";

test("withUnknowns: every value not known yet, nested or in a list, becomes the marker; the rest is copied as it is", () => {
  const props = unknownCheckingProxy({
    name: "gpu",
    scaling: { minSize: unknownNumberValue, maxSize: 3 },
    subnets: ["subnet-a", unknownStringValue],
    tags: unknownObjectValue,
  });
  assert.throws(() => props.scaling.minSize, /can't be known during preview/, "the proxy the engine gives");
  assert.deepEqual(withUnknowns(props, UNKNOWN_VALUE), {
    name: "gpu",
    scaling: { minSize: UNKNOWN_VALUE, maxSize: 3 },
    subnets: ["subnet-a", UNKNOWN_VALUE],
    tags: UNKNOWN_VALUE,
  });
  assert.deepEqual(withUnknowns({ plain: [1, { a: null }] }, UNKNOWN_VALUE), { plain: [1, { a: null }] });
});

test("withUnknowns: another error while reading a value is not taken for an unknown", () => {
  const broken = new Proxy(
    { a: 1 },
    {
      get: () => {
        throw new TypeError("broken getter");
      },
    },
  );
  assert.throws(() => withUnknowns(broken, UNKNOWN_VALUE), /broken getter/);
});
