import assert from "node:assert/strict";
import { test } from "node:test";
import { DocumentSchema, FeedbackRequestSchema, FilterSchema, MAX_METADATA_BYTES } from "../../../app/src/schemas.ts";

/** The messages of a refused value, each after its path. */
const refusal = (result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) =>
  result.success ? "accepted" : result.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");

test("a document's metadata may take exactly MAX_METADATA_BYTES as JSON, and not one byte more", () => {
  // Values of at most 1,000 characters: keys a0.. filled until the JSON is exactly the limit.
  const metadata: Record<string, string> = {};
  for (let i = 0; Buffer.byteLength(JSON.stringify(metadata)) < MAX_METADATA_BYTES; i++) {
    const room = MAX_METADATA_BYTES - Buffer.byteLength(JSON.stringify({ ...metadata, [`a${i}`]: "" }));
    metadata[`a${i}`] = "x".repeat(Math.min(1_000, room));
  }
  assert.equal(Buffer.byteLength(JSON.stringify(metadata)), MAX_METADATA_BYTES);
  assert.equal(refusal(DocumentSchema.safeParse({ text: "t", metadata })), "accepted");
  const over = { ...metadata, a0: `${metadata.a0!.slice(1)}\u00e9` }; // one character, two bytes
  assert.match(refusal(DocumentSchema.safeParse({ text: "t", metadata: over })), /^metadata: at most 8192 bytes as JSON/);
});

test("a filter can name any metadata string a document may hold, alone or in a list; feedback names a request", () => {
  const longest = "x".repeat(1_000);
  assert.equal(refusal(DocumentSchema.safeParse({ text: "t", metadata: { lang: longest } })), "accepted");
  // Capped at 256 before: a document whose metadata held a longer value could not be filtered on it (a 400).
  assert.equal(refusal(FilterSchema.safeParse({ lang: longest })), "accepted");
  assert.equal(refusal(FilterSchema.safeParse({ lang: [longest, "en"] })), "accepted");
  for (const tooLong of [{ lang: `${longest}x` }, { lang: [`${longest}x`] }]) {
    assert.match(refusal(FilterSchema.safeParse(tooLong)), /^lang(\.0)?: Too big/);
  }
  assert.match(refusal(DocumentSchema.safeParse({ text: "t", metadata: { lang: `${longest}x` } })), /^metadata\.lang: /);
  assert.match(refusal(FeedbackRequestSchema.safeParse({ request_id: "", quality_score: 3 })), /^request_id: /);
  assert.equal(refusal(FeedbackRequestSchema.safeParse({ request_id: "r", quality_score: 3 })), "accepted");
});

test("a filter can name any number a document's metadata may hold, alone or in a list; a wrong type says what fits", () => {
  // Integers only before: a document's 1.5, or an integer past 2^53, could not be filtered on (a 400 "Invalid input").
  for (const value of [1.5, -0.25, 1e17, 2 ** 53 + 2]) {
    assert.equal(refusal(DocumentSchema.safeParse({ text: "t", metadata: { v: value, l: [value, 2] } })), "accepted");
    assert.equal(refusal(FilterSchema.safeParse({ v: value })), "accepted", `filter ${value}`);
    assert.equal(refusal(FilterSchema.safeParse({ l: [value, 2] })), "accepted", `filter [${value}, 2]`);
  }
  assert.match(refusal(FilterSchema.safeParse({ k: ["a", 1.5] })), /^k: a list must hold only strings or only numbers$/);
  for (const wrong of [null, {}, [true], [[1]]]) {
    assert.match(refusal(FilterSchema.safeParse({ k: wrong })), /^k(\.0)?: must be a string/, JSON.stringify(wrong));
    assert.match(
      refusal(DocumentSchema.safeParse({ text: "t", metadata: { k: wrong } })),
      /^metadata\.k(\.0)?: must be a string/,
    );
  }
});
