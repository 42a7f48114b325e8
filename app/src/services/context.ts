/** Rough token estimate (about four characters per token for English text with Llama-family tokenizers). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/**
 * Guide 000 `compress_context_window`: keep the most relevant chunks, in rank order, until the token budget is
 * spent; the first chunk that does not fit ends the context.
 */
export function compressContextWindow<T extends { text: string; score: number }>(chunks: T[], maxTokens: number): T[] {
  const ranked = [...chunks].sort((a, b) => b.score - a.score);
  const selected: T[] = [];
  let used = 0;
  for (const chunk of ranked) {
    const tokens = estimateTokens(chunk.text);
    if (used + tokens > maxTokens) break;
    selected.push(chunk);
    used += tokens;
  }
  return selected;
}
