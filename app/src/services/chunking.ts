/** Splits a long piece (no sentence boundary inside) at whitespace into windows of at most `size` characters. */
function splitAtWords(piece: string, size: number): string[] {
  const out: string[] = [];
  let current = "";
  for (const word of piece.split(/\s+/)) {
    for (let w = word; w.length > 0; w = w.slice(size)) {
      const part = w.slice(0, size);
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

/** The last `overlap` characters of a chunk, starting on a word boundary. */
function tail(chunk: string, overlap: number): string {
  if (overlap <= 0 || chunk.length <= overlap) return "";
  const cut = chunk.slice(-overlap);
  const space = cut.indexOf(" ");
  return space === -1 ? "" : cut.slice(space + 1);
}

/**
 * Sentence-aware chunking: paragraphs and sentences are packed into chunks of at most `size` characters, each
 * chunk starting with the last ~`overlap` characters of the previous one so a fact cut at a boundary stays findable.
 */
export function chunkText(text: string, size: number, overlap: number): string[] {
  const clean = text.replace(/\r\n?/g, "\n").trim();
  if (clean.length === 0) return [];
  if (clean.length <= size) return [clean];
  const pieces = clean
    .split(/\n{2,}|(?<=[.!?])\s+/)
    .map((p) => p.replace(/\s+/g, " ").trim())
    .filter(Boolean)
    .flatMap((p) => (p.length > size ? splitAtWords(p, size) : [p]));

  const chunks: string[] = [];
  let current = "";
  for (const piece of pieces) {
    if (current && current.length + 1 + piece.length > size) {
      chunks.push(current);
      const carried = tail(current, Math.min(overlap, size - piece.length - 1));
      current = carried ? `${carried} ${piece}` : piece;
    } else {
      current = current ? `${current} ${piece}` : piece;
    }
  }
  if (current) chunks.push(current);
  return chunks;
}
