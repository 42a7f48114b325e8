/**
 * `npm run bench:chunking`: the time chunkText takes for 1 M characters of texts an ingest may carry (within the 2 MiB
 * body limit) that are made of many tiny sentences, words or paragraphs, beside the same length of prose, in the same
 * process: it runs synchronously, so its time is how long an ingest blocks the event loop. The ratios say whether a
 * text's shape costs more than its length (a string per sentence, and the chunk read whole at each, cost 1 M
 * characters of one-character sentences 0.6 s, 12x prose: probe CP). An ingest chunks with chunkTextYielding, which
 * lets the event loop run between steps: its longest step, the longest the loop is held, is printed beside it. Not a
 * test: it prints the numbers and ratios.
 */
import { chunkText, chunkTextYielding } from "../app/src/services/chunking.ts";

const LENGTH = 1_000_000;
/** CHUNK_SIZE_CHARS and CHUNK_OVERLAP_CHARS' defaults. */
const [SIZE, OVERLAP] = [1_200, 150];

let state = 7;
const next = () => {
  state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
  return (state >>> 0) / 2 ** 32;
};
let prose = "";
while (prose.length < LENGTH) {
  const words = Array.from({ length: 5 + Math.floor(next() * 15) }, () => `w${Math.floor(next() * 2_000).toString(36)}`);
  prose += `The ${words.join(" ")}. `;
}
const texts: Record<string, string> = {
  prose: prose.slice(0, LENGTH),
  "one-letter words": "x ".repeat(LENGTH / 2),
  "one-word sentences": "a. ".repeat(LENGTH / 3),
  "sentences of one 。": "。".repeat(LENGTH),
  "one-word paragraphs": "a\n\n".repeat(LENGTH / 3),
  // base64, minified JSON, scripts written without spaces: one sentence of one word, cut by size.
  "no spaces": "QmFzZTY0IHRleHQ".repeat(LENGTH / 15),
};

/** The fastest of five runs, in milliseconds (the first compiles the code). */
function msFor(text: string): number {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 5; run++) {
    const started = performance.now();
    chunkText(text, SIZE, OVERLAP);
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

/**
 * The longest chunkTextYielding holds the event loop, in milliseconds: the longest gap between two turns of a
 * setImmediate chain run beside it (the least of five runs).
 */
async function longestHoldFor(text: string): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 5; run++) {
    let longest = 0;
    let last = performance.now();
    let chunking = true;
    const tick = () => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      if (chunking) setImmediate(tick);
    };
    setImmediate(tick);
    await chunkTextYielding(text, SIZE, OVERLAP);
    chunking = false;
    least = Math.min(least, Math.max(longest, performance.now() - last));
  }
  return least;
}

const proseMs = msFor(texts.prose!);
console.log(`chunkText over ${LENGTH.toLocaleString("en")} characters (size ${SIZE}, overlap ${OVERLAP}), fastest of 5`);
const rows = [];
for (const [text, value] of Object.entries(texts)) {
  const ms = text === "prose" ? proseMs : msFor(value);
  const hold = await longestHoldFor(value);
  rows.push({
    text,
    ms: ms.toFixed(1),
    "over prose": `${(ms / proseMs).toFixed(1)}x`,
    "yielding: longest hold ms": hold.toFixed(1),
    "hold / whole": `${(hold / ms).toFixed(2)}x`,
  });
}
console.table(rows);
