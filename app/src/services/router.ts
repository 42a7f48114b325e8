export type QueryType = "simple" | "medium" | "complex";

export interface ModelChoice {
  small: string;
  default: string;
  large: string;
}

const COMPLEX_HINTS =
  /\b(compare|contrast|analy[sz]e|evaluate|trade-?offs?|step[- ]by[- ]step|pros and cons|implications?|design|recommend|explain (how|why))\b/i;

/** Guide 000 "use_smaller_model_for_simple_tasks": a cheap lexical estimate of how hard a question is. */
export function classifyQuery(query: string): QueryType {
  const words = query.trim().split(/\s+/).filter(Boolean).length;
  const questions = (query.match(/\?/g) ?? []).length;
  if (words > 60 || questions > 1 || COMPLEX_HINTS.test(query)) return "complex";
  if (words <= 8) return "simple";
  return "medium";
}

export function modelFor(type: QueryType, models: ModelChoice): string {
  return type === "simple" ? models.small : type === "complex" ? models.large : models.default;
}
