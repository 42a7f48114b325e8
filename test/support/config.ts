// Runs parseStackConfig on raw config expected to be rejected; returns the ConfigError's message.
import assert from "node:assert/strict";
import { ConfigError, parseStackConfig } from "../../infra/config.ts";

export function configFailure(raw: Record<string, string>, stack = "test"): string {
  try {
    parseStackConfig(raw, stack);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail("config was accepted");
}
