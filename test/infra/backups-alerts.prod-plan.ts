// A failed, aborted or expired AWS Backup job of the stack's vault reaches the stack's SNS topic: the EventBridge rule's
// pattern against events shaped as AWS documents them, its target, and the topic policy that lets it publish.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mockArn } from "../../infra/plan/mocks.ts";
import { stackPlan } from "../support/stack-plan.ts";
import { inputs, ofType, one } from "../support/plan.ts";

const plan = await stackPlan("prod");
const account = "123456789012";
const vaultName: string = inputs(one(plan, "aws:backup/vault:Vault")).name;
const rule = one(plan, "aws:cloudwatch/eventRule:EventRule", "backups-job-failures");
const ruleArn = mockArn(plan.region, rule.type, rule.name);
const topic = one(plan, "aws:sns/topic:Topic");
const topicArn = mockArn(plan.region, topic.type, topic.name);

/**
 * EventBridge's matching for the patterns this stack writes: every field of the pattern must be in the event; an array
 * lists the exact values allowed (any one of them, or any element of an array in the event); an object goes one level
 * down. Content filters (prefix, anything-but, ...) are refused rather than guessed.
 */
function matches(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, want]) => {
    const got = event[key];
    if (Array.isArray(want)) {
      for (const v of want) assert.ok(v === null || typeof v !== "object", `content filter in ${key}: not supported here`);
      return (Array.isArray(got) ? got : [got]).some((g) => g !== undefined && want.includes(g));
    }
    assert.ok(want !== null && typeof want === "object", `${key}: a pattern's leaves are arrays`);
    return got !== null && typeof got === "object" && matches(want as Record<string, unknown>, got as Record<string, unknown>);
  });
}

/**
 * A "Backup Job State Change" event as AWS Backup sends it: the "State: FAILED" example of the AWS Backup Developer
 * Guide, "Monitoring AWS Backup events using Amazon EventBridge", for this stack's account, region and vault.
 */
function backupJobEvent(state: string, vault = vaultName, detailType = "Backup Job State Change") {
  return {
    version: "0",
    id: "710b0398-d48e-f3c3-afca-cfeb2fdaa656",
    "detail-type": detailType,
    source: "aws.backup",
    account,
    time: "2020-07-29T20:15:26Z",
    region: plan.region,
    resources: [],
    detail: {
      backupJobId: "34176239-e96d-4e1d-9fad-529dbb3c3556",
      backupVaultArn: `arn:aws:backup:${plan.region}:${account}:backup-vault:${vault}`,
      backupVaultName: vault,
      bytesTransferred: "0",
      creationDate: "2020-07-29T20:13:07.392Z",
      iamRoleArn: `arn:aws:iam::${account}:role/backups-backup`,
      resourceArn: `arn:aws:rds:${plan.region}:${account}:db:agent-stack-prod`,
      resourceType: "RDS",
      state,
      statusMessage: '"Backup job failed because backup vault does not exist."',
      startBy: "2020-07-30T04:13:07.392Z",
      percentDone: 0,
      retryCount: 3,
    },
  };
}

const pattern = JSON.parse(inputs(rule).eventPattern);

test("the rule matches this vault's failed, aborted and expired backup jobs", () => {
  for (const state of ["FAILED", "ABORTED", "EXPIRED"]) assert.ok(matches(pattern, backupJobEvent(state)), state);
});

test("the rule ignores jobs that complete or run, another vault's failures and other AWS Backup events", () => {
  for (const state of ["COMPLETED", "RUNNING", "PENDING", "CREATED"]) assert.ok(!matches(pattern, backupJobEvent(state)), state);
  assert.ok(!matches(pattern, backupJobEvent("FAILED", "9ab3e749-82c6-4342-9320-5edbf4918b86")), "another vault");
  assert.ok(!matches(pattern, backupJobEvent("FAILED", vaultName, "Recovery Point State Change")), "another event");
  assert.ok(!matches(pattern, { ...backupJobEvent("FAILED"), source: "custom.backup" }), "another source");
});

test("the rule's one target is the stack's SNS topic, with a readable message from fields every failed job carries", () => {
  const targets = ofType(plan, "aws:cloudwatch/eventTarget:EventTarget").filter((t) => inputs(t).rule === inputs(rule).name);
  assert.equal(targets.length, 1);
  const target = inputs(targets[0]!);
  assert.equal(target.arn, topicArn);
  assert.equal(target.roleArn, undefined, "SNS targets publish through the topic policy");

  const event = backupJobEvent("EXPIRED");
  const paths: Record<string, string> = target.inputTransformer.inputPaths;
  const values = Object.fromEntries(
    Object.entries(paths).map(([name, path]) => {
      const value = path
        .replace(/^\$\./, "")
        .split(".")
        .reduce<any>((v, k) => v?.[k], event);
      assert.equal(typeof value, "string", `${path} is not in a failed job's event`);
      return [name, value];
    }),
  );
  const text = JSON.parse(
    (target.inputTransformer.inputTemplate as string).replace(/<([\w.-]+)>/g, (all, name) => values[name] ?? all),
  );
  assert.match(text, /^AWS Backup job EXPIRED: RDS arn:aws:rds:\S+:db:agent-stack-prod, vault agent-stack-prod, /);
  assert.ok(text.includes("--backup-job-id 34176239-e96d-4e1d-9fad-529dbb3c3556"), text);
});

test("the topic policy lets EventBridge publish for this rule only", () => {
  const policy = JSON.parse(inputs(one(plan, "aws:sns/topicPolicy:TopicPolicy")).policy);
  const statements = policy.Statement.filter((s: any) => s.Principal.Service === "events.amazonaws.com");
  assert.deepEqual(statements, [
    {
      Sid: "EventRulesPublish",
      Effect: "Allow",
      Principal: { Service: "events.amazonaws.com" },
      Action: "SNS:Publish",
      Resource: topicArn,
      Condition: { ArnEquals: { "aws:SourceArn": [ruleArn] } },
    },
  ]);
  const target = ofType(plan, "aws:cloudwatch/eventTarget:EventTarget").find((t) => inputs(t).rule === inputs(rule).name)!;
  assert.ok(target.dependsOn?.includes(one(plan, "aws:sns/topicPolicy:TopicPolicy").urn), "the target waits for the policy");
});
