export type QueryType = "simple" | "medium" | "complex";

export interface ModelChoice {
  small: string;
  default: string;
  large: string;
}

const COMPLEX_HINTS =
  /\b(compare|contrast|analy[sz]e|evaluate|trade-?offs?|step[- ]by[- ]step|pros and cons|implications?|design|recommend|explain (how|why))\b/i;

/**
 * Characters of scripts written without spaces between words: a Chinese or Japanese question was one "word" however
 * long, and went to the small model. Chinese words average under two characters.
 */
const UNSPACED =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/gu;
const CHARS_PER_UNSPACED_WORD = 2;
/** The ASCII question mark and the full-width one (？) of CJK text. */
const QUESTION_MARKS = /[?\uFF1F]/g;

/** Guide 000 "use_smaller_model_for_simple_tasks": a cheap lexical estimate of how hard a question is. */
export function classifyQuery(query: string): QueryType {
  const unspaced = query.match(UNSPACED)?.length ?? 0;
  const spaced = query.replace(UNSPACED, " ").trim().split(/\s+/).filter(Boolean).length;
  const words = spaced + Math.ceil(unspaced / CHARS_PER_UNSPACED_WORD);
  const questions = (query.match(QUESTION_MARKS) ?? []).length;
  if (words > 60 || questions > 1 || COMPLEX_HINTS.test(query)) return "complex";
  if (words <= 8) return "simple";
  return "medium";
}

export function modelFor(type: QueryType, models: ModelChoice): string {
  return type === "simple" ? models.small : type === "complex" ? models.large : models.default;
}
