import { pairSafeEnd } from "../text.ts";

/**
 * Where to cut a word longer than `size`: never inside a character written as two UTF-16 units (each half alone is
 * unstorable, and Qdrant refuses it in JSON); at size 1, such a character goes whole.
 */
function cutAt(word: string, size: number): number {
  const end = pairSafeEnd(word, size);
  return end > 0 ? end : size + 1;
}

/** Splits a long piece (no sentence boundary inside) at whitespace into windows of at most `size` characters. */
function splitAtWords(piece: string, size: number): string[] {
  const out: string[] = [];
  let current = "";
  for (const word of piece.split(/\s+/)) {
    for (let w = word, cut = cutAt(w, size); w.length > 0; w = w.slice(cut), cut = cutAt(w, size)) {
      const part = w.slice(0, cut);
      if (current && current.length + 1 + part.length > size) {
        out.push(current);
        current = part;
      } else {
        current = current ? `${current} ${part}` : part;
      }
    }
  }
  if (current) out.push(current);
  return out;
}

/** Sentence ends of scripts written without spaces (Chinese, Japanese): a sentence ends there, with no space after. */
const FULL_STOPS = /[。！？]/;

/** `b` after `a`: with a space, or none after a full stop of a script written without spaces. */
const joined = (a: string, b: string) => (!a ? b : FULL_STOPS.test(a.at(-1)!) ? `${a}${b}` : `${a} ${b}`);

/** The last `overlap` characters of a chunk, starting on a word boundary, or after a full stop where none is. */
function tail(chunk: string, overlap: number): string {
  if (overlap <= 0 || chunk.length <= overlap) return "";
  const cut = chunk.slice(-overlap);
  const space = cut.indexOf(" ");
  if (space !== -1) return cut.slice(space + 1);
  const stop = cut.search(FULL_STOPS);
  return stop === -1 ? "" : cut.slice(stop + 1);
}

/**
 * Sentence-aware chunking: paragraphs and sentences are packed into chunks of at most `size` characters, each
 * chunk starting with the last ~`overlap` characters of the previous one so a fact cut at a boundary stays findable.
 * Chinese and Japanese sentences end at 。！？ with no space after: without those, such a text had no sentence
 * boundary and no overlap (none starts after a space), and was cut every `size` characters, mid-sentence.
 */
export function chunkText(text: string, size: number, overlap: number): string[] {
  const clean = text.replace(/\r\n?/g, "\n").trim();
  if (clean.length === 0) return [];
  if (clean.length <= size) return [clean];
  const pieces = clean
    .split(/\n{2,}|(?<=[.!?])\s+|(?<=[。！？])\s*/)
    .map((p) => p.replace(/\s+/g, " ").trim())
    .filter(Boolean)
    .flatMap((p) => (p.length > size ? splitAtWords(p, size) : [p]));

  const chunks: string[] = [];
  let current = "";
  for (const piece of pieces) {
    if (current && current.length + 1 + piece.length > size) {
      chunks.push(current);
      current = joined(tail(current, Math.min(overlap, size - piece.length - 1)), piece);
    } else {
      current = joined(current, piece);
    }
  }
  if (current) chunks.push(current);
  return chunks;
}
