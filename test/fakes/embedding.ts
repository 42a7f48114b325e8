const STOPWORDS = new Set(
  "a an and are as at be by do does for from how in is it of on or that the this to was what when where which who why with".split(
    " ",
  ),
);

export function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 1 && !STOPWORDS.has(w));
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Deterministic hashed bag-of-words embedding: each content word adds 1 to one of `dim` buckets, then the vector
 * is L2-normalised. Texts sharing words get a high cosine similarity, unrelated texts about zero (only bucket
 * collisions add similarity; unsigned counts so words never cancel each other out).
 */
export function embedText(text: string, dim: number): number[] {
  const v = new Array<number>(dim).fill(0);
  for (const w of words(text)) v[fnv1a(w) % dim]! += 1;
  const norm = Math.hypot(...v);
  return norm === 0 ? v : v.map((x) => x / norm);
}
