// The least reading of IAM policy statements the tests need, not an evaluator: whether a statement's Action names an
// action, by IAM's wildcards (case-insensitive). Resources are matched only where a test asks (matchesPattern) and
// conditions not evaluated: a test that relies on one says what it expects of it.
export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/**
 * Whether an IAM pattern matches `value`: `*` any run of characters, `?` any one (IAM User Guide, "IAM JSON policy
 * elements: Resource"); actions are case-insensitive (`flags` "i").
 */
export const matchesPattern = (pattern: string, value: string, flags = ""): boolean =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    flags,
  ).test(value);

/** Whether the statement's Action names `action` (`*` matches any run of characters, as in IAM). */
export const namesAction = (s: Pick<Statement, "Action">, action: string): boolean =>
  [s.Action].flat().some((p) => matchesPattern(p, action, "i"));

/** Whether the statement's Resource names `arn`, by IAM's wildcards (conditions aside). */
export const namesResource = (s: Pick<Statement, "Resource">, arn: string): boolean =>
  [s.Resource].flat().some((r) => matchesPattern(String(r), arn));

/** Whether one of the Allow statements names `action` (resources and conditions aside). */
export const allows = (statements: Statement[], action: string): boolean =>
  statements.some((s) => s.Effect === "Allow" && namesAction(s, action));

/** Whether a Deny statement without a condition names `action`: denied on whatever resource it names, in any request. */
export const deniesOutright = (statements: Statement[], action: string): boolean =>
  statements.some((s) => s.Effect === "Deny" && !s.Condition && namesAction(s, action));
