// The IAM name check of the stacks' policy documents (test/support/iam-reference.ts) finds what IAM would accept and
// never match: a misspelled action, a wildcard matching no action, an unknown condition key.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PlannedResource } from "../../infra/plan/types.ts";
import { actionExists, conditionKeyExists, policyDocuments, unknownNames } from "../support/iam-reference.ts";

test("an action exists by its name in any case, and a wildcard when it matches one of its service's actions", async () => {
  const known = ["s3:PutLifecycleConfiguration", "S3:putLIFECYCLEconfiguration", "s3:Put*Configuration", "s3:GetObjec?", "*"];
  const unknown = ["s3:PutBucketLifecycleConfiguration", "s3:PutBucketLifecycle*", "nosuchservice:Get*", "s3", "s3:Get:Object"];
  for (const action of known) assert.ok(await actionExists(action), action);
  for (const action of unknown) assert.ok(!(await actionExists(action)), action);
});

test("a condition key exists as a global aws: key, a service's own (tag keys in it), or an OIDC provider's claim", async () => {
  const known = [
    "aws:SourceArn",
    "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled",
    "kms:ViaService",
    "s3:ExistingObjectTag/backup",
    "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub",
    "token.actions.githubusercontent.com:environment",
  ];
  const unknown = [
    "aws:SourceArns",
    "kms:ViaServices",
    "iam:PermissionBoundary",
    "oidc.eks.us-east-1.amazonaws.com/id/ABC:subject",
  ];
  for (const key of known) assert.ok(await conditionKeyExists(key), key);
  for (const key of unknown) assert.ok(!(await conditionKeyExists(key)), key);
});

test("the unknown names of a document are told by statement, NotAction's and a condition's too", async () => {
  const names = await unknownNames([
    { Sid: "Lifecycle", Effect: "Deny", Action: ["s3:PutLifecycleConfiguration", "s3:PutBucketLifecycleConfiguration"] },
    { Effect: "Allow", Action: "rds:StopDBInstances*", Condition: { StringEquals: { "aws:ResourceTag/stack": "dev" } } },
    { Sid: "Boundary", Effect: "Deny", NotAction: ["iam:PassRole"], Condition: { Null: { "iam:AWSServiceNames": "true" } } },
  ]);
  assert.deepEqual(names, [
    "Lifecycle action s3:PutBucketLifecycleConfiguration",
    "#1 action rds:StopDBInstances*",
    "Boundary condition key iam:AWSServiceNames",
  ]);
});

test("policy documents are found in any input, as JSON text or as an object, and nothing else is", () => {
  const resource = (name: string, inputs: Record<string, unknown>): PlannedResource => ({
    type: "aws:test/thing:Thing",
    name,
    urn: name,
    component: "test",
    inputs,
    custom: true,
    options: {},
  });
  const statement = { Effect: "Allow", Action: "sns:Publish", Resource: "*" };
  const found = policyDocuments({
    resources: [
      resource("text", { policy: JSON.stringify({ Version: "2012-10-17", Statement: [statement] }) }),
      resource("object", { spec: { rules: [{ document: { Statement: statement } }] } }),
      resource("other", { pattern: JSON.stringify({ source: ["aws.backup"] }), note: "Statement" }),
    ],
  });
  assert.deepEqual(found, [
    { where: "aws:test/thing:Thing text.policy", Statement: [statement] },
    { where: "aws:test/thing:Thing object.spec.rules[0].document", Statement: [statement] },
  ]);
});
