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

test("a filter's number is an integer, and a value of a wrong type says which types fit", () => {
  // A float in metadata cannot be matched exactly: Qdrant's `match` takes integers, and a range of one value on a key
  // indexed as integer cuts its bounds to whole numbers, so {v: 2.5} would find the documents holding 2.
  assert.equal(refusal(DocumentSchema.safeParse({ text: "t", metadata: { v: 2.5 } })), "accepted");
  assert.match(refusal(FilterSchema.safeParse({ v: 2.5 })), /^v: must be a string, an integer/);
  // A list is told its own reason: which of its items is wrong (probe CI).
  assert.match(refusal(FilterSchema.safeParse({ v: [2.5, 2] })), /^v: item 0: must be a string or an integer$/);
  assert.equal(refusal(FilterSchema.safeParse({ v: 2, l: [1, 2], s: "x", b: true })), "accepted");
  assert.match(refusal(FilterSchema.safeParse({ k: ["a", 1] })), /^k: a list must hold only strings or only integers$/);
  // "Invalid input" before: which types fit was left to guess.
  for (const wrong of [null, {}, [true], [[1]]]) {
    const item = Array.isArray(wrong) ? "item 0: " : "";
    assert.match(refusal(FilterSchema.safeParse({ k: wrong })), new RegExp(`^k: ${item}must be a string`), JSON.stringify(wrong));
    assert.match(
      refusal(DocumentSchema.safeParse({ text: "t", metadata: { k: wrong } })),
      new RegExp(`^metadata\\.k: ${item}must be a string`),
    );
  }
});
