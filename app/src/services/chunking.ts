import { pairSafeEnd } from "../text.ts";

/**
 * Splits a long piece (single spaces, no sentence boundary inside) into windows of at most `size` characters, each
 * ending at a space, and a word longer than `size` cut by size (never inside a character written as two UTF-16 units:
 * each half alone is unstorable, and Qdrant refuses it in JSON; at size 1, such a character goes whole). One slice per
 * window: a string per word cost a 1 MB text of one-letter words 0.3-0.6 s of a blocked event loop (probe CP).
 */
function splitAtWords(piece: string, size: number): string[] {
  const out: string[] = [];
  let start = 0;
  while (piece.length - start > size) {
    // Searched in the window alone: lastIndexOf goes on to the piece's start, and a piece without spaces (base64,
    // minified JSON, a script written without them) was searched back to it for every window, 120 ms per 1 M characters.
    const space = start + piece.slice(start, start + size + 1).lastIndexOf(" ");
    if (space > start) {
      out.push(piece.slice(start, space));
      start = space + 1;
      continue;
    }
    const end = pairSafeEnd(piece, start + size);
    const cut = end > start ? end : start + size + 1;
    out.push(piece.slice(start, cut));
    start = cut;
    if (piece[start] === " ") start++;
  }
  if (start < piece.length) out.push(piece.slice(start));
  return out;
}

const isSentenceEnd = (c: number) => c === 0x2e || c === 0x21 || c === 0x3f; // . ! ?
/** Sentence ends of scripts written without spaces (Chinese, Japanese): a sentence ends there, with no space after. */
const isFullStop = (c: number) => c === 0x3002 || c === 0xff01 || c === 0xff1f; // 。！？
const SPACE = 0x20;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;
/** A code unit past Latin-1. */
const WIDE = /[\u0100-\uffff]/;

/** What JavaScript's `\s` matches, by UTF-16 code unit (ECMA-262 WhiteSpace and LineTerminator). */
const isWhitespace = (c: number) =>
  c === SPACE ||
  (c >= 0x09 && c <= 0x0d) ||
  c === 0xa0 ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000 ||
  c === 0xfeff;

/**
 * `text` (trimmed) with each whitespace run one space, or one line feed where the run holds two line breaks in a row
 * (`\n`, `\r\n` or `\r`: a paragraph break); `spaced` has a space there too. Written code unit by code unit and read
 * back as UTF-16 (little-endian, as every platform the app ships on): a regex replacing each of half a million runs,
 * or a slice around each, took 75-300 ms per million characters.
 */
function* collapse(text: string): Generator<void, { flat: string; spaced: string }> {
  // A text of Latin-1 characters only is written and read back one byte each: V8 keeps it so, in half the memory.
  const wide = WIDE.test(text);
  const codes = wide ? new Uint16Array(text.length) : new Uint8Array(text.length);
  let n = 0;
  let breaks = false;
  let i = 0;
  const end = text.length;
  let pause = STEP_CODE_UNITS;
  while (i < end) {
    if (i >= pause) {
      yield;
      pause = i + STEP_CODE_UNITS;
    }
    const first = text.charCodeAt(i);
    if (!isWhitespace(first)) {
      codes[n++] = first;
      i++;
      continue;
    }
    let lineBreaks = 0;
    let paragraph = false;
    for (let c = first; i < end && isWhitespace(c); c = text.charCodeAt(++i)) {
      if (c !== LINE_FEED && c !== CARRIAGE_RETURN) lineBreaks = 0;
      else {
        if (c === CARRIAGE_RETURN && text.charCodeAt(i + 1) === LINE_FEED) i++;
        if (++lineBreaks === 2) paragraph = true;
      }
    }
    codes[n++] = paragraph ? LINE_FEED : SPACE;
    breaks ||= paragraph;
  }
  const read = () => Buffer.from(codes.buffer, 0, n * codes.BYTES_PER_ELEMENT).toString(wide ? "utf16le" : "latin1");
  const flat = read();
  if (!breaks) return { flat, spaced: flat };
  for (let k = 0; k < n; k++) if (codes[k] === LINE_FEED) codes[k] = SPACE;
  return { flat, spaced: read() };
}

/** The last `overlap` characters of a chunk, starting on a word boundary, or after a full stop where none is. */
function tail(chunk: string, overlap: number): string {
  if (overlap <= 0 || chunk.length <= overlap) return "";
  const cut = chunk.slice(-overlap);
  const space = cut.indexOf(" ");
  if (space !== -1) return cut.slice(space + 1);
  for (let i = 0; i < cut.length; i++) if (isFullStop(cut.charCodeAt(i))) return cut.slice(i + 1);
  return "";
}

/**
 * Sentence-aware chunking: paragraphs and sentences are packed into chunks of at most `size` characters, each
 * chunk starting with the last ~`overlap` characters of the previous one so a fact cut at a boundary stays findable.
 * Chinese and Japanese sentences end at 。！？ with no space after: without those, such a text had no sentence
 * boundary and no overlap (none starts after a space), and was cut every `size` characters, mid-sentence.
 * Whitespace is collapsed (`collapse`); a sentence ends at a paragraph break, after `.!?` and a space, or after `。！？`,
 * a space or not (the space is no sentence's). Sentences are read as ranges of the collapsed text, and a chunk's
 * sentences that follow each other there are sliced from it at once, when the chunk is full. Linear in the text: a
 * string per sentence or word (and a regex match, and the chunk read whole at each) blocked the event loop 0.3-0.9 s
 * for 1 M characters of one-character sentences or words, against 30 ms for prose (probe CP; `npm run bench:chunking`).
 */
export function chunkText(text: string, size: number, overlap: number): string[] {
  const steps = chunkSteps(text, size, overlap);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * `chunkText`, letting the event loop run every STEP_CODE_UNITS of the text: a 2 MiB ingest chunked in one go held it
 * 70-130 ms (probe CP), and every other request of the replica waited that long.
 */
export async function chunkTextYielding(text: string, size: number, overlap: number): Promise<string[]> {
  const steps = chunkSteps(text, size, overlap);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Code units of the text read between two of chunkTextYielding's pauses: about a millisecond of work each. */
const STEP_CODE_UNITS = 65_536;

function* chunkSteps(text: string, size: number, overlap: number): Generator<void, string[]> {
  // One chunk, kept as written, when it is short enough once its line breaks are \n: that takes out at most one
  // character in two (the \r of \r\n), so a text twice as long is several.
  const trimmed = text.trim();
  if (trimmed.length === 0) return [];
  if (trimmed.length <= 2 * size) {
    const clean = trimmed.replace(/\r\n?/g, "\n");
    if (clean.length <= size) return [clean];
  }
  const chunks: string[] = [];
  /** The chunk so far: `parts`, then the open run `from.slice(runStart, runEnd)` (none while they are equal). */
  let parts: string[] = [];
  let from = "";
  let runStart = 0;
  let runEnd = 0;
  let length = 0;
  let lastCode = -1;
  const closeRun = () => {
    if (runEnd > runStart) parts.push(from.slice(runStart, runEnd));
    runStart = runEnd = 0;
  };
  /** Adds the piece `source.slice(start, end)`, after a space unless the chunk ends at a full stop. */
  const take = (source: string, start: number, end: number) => {
    const n = end - start;
    if (length > 0 && length + 1 + n > size) {
      closeRun();
      const chunk = parts.join("");
      chunks.push(chunk);
      const carried = tail(chunk, Math.min(overlap, size - n - 1));
      parts = carried ? [carried] : [];
      length = carried.length;
      lastCode = carried.charCodeAt(carried.length - 1);
    }
    const spaced = length > 0 && !isFullStop(lastCode);
    const follows = source === from && runEnd > runStart && start === runEnd + (spaced ? 1 : 0);
    if (follows && (!spaced || source.charCodeAt(runEnd) === SPACE)) runEnd = end;
    else {
      closeRun();
      if (spaced) parts.push(" ");
      from = source;
      runStart = start;
      runEnd = end;
    }
    length += n + (spaced ? 1 : 0);
    lastCode = source.charCodeAt(end - 1);
  };
  const { flat, spaced } = yield* collapse(trimmed);
  let start = 0;
  let pause = STEP_CODE_UNITS;
  /** The sentence from `start` to `end`, longer than `size`: cut at words, with a pause every STEP_CODE_UNITS of it. */
  function* longSentence(end: number): Generator<void> {
    let taken = 0;
    for (const part of splitAtWords(spaced.slice(start, end), size)) {
      take(part, 0, part.length);
      if ((taken += part.length) < STEP_CODE_UNITS) continue;
      yield;
      taken = 0;
    }
  }
  for (let i = 0; i < flat.length; i++) {
    if (i >= pause) {
      yield;
      pause = i + STEP_CODE_UNITS;
    }
    const c = flat.charCodeAt(i);
    if (c === LINE_FEED) {
      if (i - start > size) yield* longSentence(i);
      else if (start < i) take(spaced, start, i);
      start = i + 1;
      continue;
    }
    const beforeSpace = flat.charCodeAt(i + 1) === SPACE;
    if (!(isFullStop(c) || (beforeSpace && isSentenceEnd(c)))) continue;
    if (i + 1 - start > size) yield* longSentence(i + 1);
    else take(spaced, start, i + 1);
    start = beforeSpace ? i + 2 : i + 1;
  }
  if (flat.length - start > size) yield* longSentence(flat.length);
  else if (start < flat.length) take(spaced, start, flat.length);
  closeRun();
  if (length > 0) chunks.push(parts.join(""));
  return chunks;
}
