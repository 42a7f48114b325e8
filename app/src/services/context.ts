const ASCII_RUNS = /[^\u0080-\uffff]+/g;
/** A character outside the BMP (its first UTF-16 unit), and the joiner and emoji selector of emoji sequences. */
const WIDER = /[\ud800-\udbff]|\u200d|\ufe0f/g;

/**
 * Tokens a text takes, estimated: four ASCII characters a token, and a token for every other UTF-16 unit, one more
 * for a character outside the BMP and for an emoji sequence's joiner or selector. Measured with cl100k_base
 * (js-tiktoken 1.0.21), whose vocabulary Llama 3's and Qwen 2.5's tokenizers extend: English prose takes 4.7
 * characters a token and code 3.6, but Cyrillic 2.1, Arabic 1.4, Greek 1.1, Hebrew, Hangul, Devanagari and Thai about
 * 1, Han 0.8; an emoji, a flag, a skin tone, astral Han and math letters 3 tokens for their two units, and a family
 * emoji 18 for its 11. At four characters a token for every script, a page of Chinese was taken for a quarter of its
 * size and overflowed the window; at a token a unit, a question of family emoji took 3,407 of a 4,096 window estimated
 * at 1,496, and its answer was cut. Text that takes more still (hex, base64, Han in cl100k_base) is caught by Ollama's
 * refusal (see rag.ts).
 */
export function estimateTokens(text: string): number {
  const other = text.replace(ASCII_RUNS, "");
  const wider = other.length === 0 ? 0 : other.length - other.replace(WIDER, "").length;
  return Math.ceil((text.length - other.length) / 4) + other.length + wider;
}

/**
 * Guide 000 `compress_context_window`: keep the most relevant chunks, in rank order, until the token budget is
 * spent; the first chunk that does not fit ends the context. `tokensOf` counts what a chunk adds to the prompt.
 */
export function compressContextWindow<T extends { text: string; score: number }>(
  chunks: T[],
  maxTokens: number,
  tokensOf: (chunk: T, index: number) => number = (chunk) => estimateTokens(chunk.text),
): T[] {
  const ranked = [...chunks].sort((a, b) => b.score - a.score);
  const selected: T[] = [];
  let used = 0;
  for (const chunk of ranked) {
    const tokens = tokensOf(chunk, selected.length);
    if (used + tokens > maxTokens) break;
    selected.push(chunk);
    used += tokens;
  }
  return selected;
}

const INSTRUCTIONS =
  "Answer the question using only the numbered context below and cite it like [1]. " +
  "If the context does not contain the answer, say that you do not know.\n\nContext:\n";

const INSTRUCTION_TOKENS = estimateTokens(INSTRUCTIONS);

/** A line of a source's text that starts like a source's number (`[2] `), and any break in its title. */
const NUMBER_AT_LINE_START = /^(\s*)\[(\d+)\]/gm;
const LINE_BREAK = /[\r\n\u2028\u2029]/;
/**
 * The title with each whitespace run that holds a line break one space. Runs are matched whole and then tested: one
 * pattern for the spaces, the break and the spaces after it was tried again from each space of a run without a break,
 * and a title of 500 spaces cost 0.3 ms a source, in every prompt that cites it (probe CP); now 2 us.
 */
const oneLine = (title: string) => title.replace(/\s+/g, (run) => (LINE_BREAK.test(run) ? " " : run));

/**
 * One retrieved chunk as the system prompt gives it, numbered from 1. Its title is one line, and a line of its text
 * that starts with `[n]` gets `(n)`: a document of the shared corpus that did either added numbered entries of its own
 * to the prompt (three sources made five, two of them a second `[2]`), and the model's citation of one named another
 * document.
 */
export const sourceEntry = (s: { title: string | null; text: string }, index: number) =>
  `[${index + 1}] ${s.title ? `${oneLine(s.title)}: ` : ""}${s.text.replace(NUMBER_AT_LINE_START, "$1($2)")}`;

export function systemPrompt(sources: Array<{ title: string | null; text: string }>): string {
  return INSTRUCTIONS + (sources.length ? sources.map(sourceEntry).join("\n\n") : "(no matching documents)");
}

/** The share of the model's window left out of every budget: the estimate's error and the chat template's tokens. */
const WINDOW_MARGIN = 0.1;

export interface ModelWindow {
  /** The model's context window per request (Ollama's OLLAMA_CONTEXT_LENGTH). */
  contextTokens: number;
  /** The longest answer (`num_predict`): generated into the same window. */
  answerTokens: number;
}

/**
 * Tokens of retrieved text that fit beside the instructions, the question and the longest answer. Ollama 0.13 drops
 * the system message, and with it every source, from a chat prompt longer than its window (server/prompt.go
 * chatPrompt keeps the last message first), and answers on without them.
 */
export function sourceTokenBudget(window: ModelWindow, question: string): number {
  const usable = Math.floor(window.contextTokens * (1 - WINDOW_MARGIN));
  return usable - window.answerTokens - INSTRUCTION_TOKENS - estimateTokens(question);
}
