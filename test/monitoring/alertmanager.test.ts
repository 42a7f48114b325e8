import assert from "node:assert/strict";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import YAML from "yaml";
import {
  RECEIVER_SECRET_DIR,
  RECEIVER_SECRET_KEYS,
  renderAlertmanagerConfig,
  type ReceiverSecrets,
} from "../../monitoring/alertmanager/render.ts";
import { freePort, waitFor } from "../support/process.ts";
import { ALERTMANAGER_FILE, run, startDaemon, tempDir } from "./lib.ts";

const source = readFileSync(ALERTMANAGER_FILE, "utf8");
const work = tempDir("alertmanager-test");
after(() => rmSync(work, { recursive: true, force: true }));

async function checkConfig(file: string) {
  const { code, output } = await run("amtool", ["check-config", file]);
  assert.equal(code, 0, output);
}

function writeRendered(name: string, secrets: ReceiverSecrets) {
  const rendered = renderAlertmanagerConfig(source, secrets);
  const file = join(work, `${name}.yml`);
  writeFileSync(file, YAML.stringify(rendered));
  return { rendered, file };
}

// [expected receiver, alert labels]
const ROUTES: Array<[string, string[]]> = [
  ["pager", ["alertname=ServiceDown", "severity=critical", "job=agent-api"]],
  ["pager", ["alertname=DatabaseConnectionPoolExhausted", "severity=critical"]],
  ["chat", ["alertname=HighLatency", "severity=warning", "job=agent-api"]],
  ["chat", ["alertname=QdrantSnapshotMissing", "severity=warning", "namespace=agent"]],
  ["chat", ["alertname=SomethingUnlabelled"]],
  ["null", ["alertname=Watchdog", "severity=none"]],
  ["null", ["alertname=KubeMemoryOvercommit", "severity=info"]],
];

describe("alertmanager.yml", () => {
  it("passes amtool check-config", () => checkConfig(ALERTMANAGER_FILE));

  for (const [receiver, labels] of ROUTES) {
    it(`routes {${labels.join(", ")}} to ${receiver}`, async () => {
      const { code, output } = await run("amtool", [
        "config",
        "routes",
        "test",
        `--config.file=${ALERTMANAGER_FILE}`,
        `--verify.receivers=${receiver}`,
        ...labels,
      ]);
      assert.equal(code, 0, output);
    });
  }

  it("sends both receivers to the stack's SNS topic with SigV4 in its region, and passes amtool", async () => {
    const topic = "arn:aws:sns:eu-west-1:123456789012:agent-stack-prod-notifications";
    const { rendered, file } = writeRendered("sns", {
      slack: false,
      pagerduty: false,
      sns: { topicArn: topic, region: "eu-west-1" },
    });
    await checkConfig(file);
    for (const name of ["pager", "chat"]) {
      const r = rendered.receivers!.find((x) => x.name === name)!;
      assert.deepEqual(
        (r.sns_configs as any[]).map((c) => [c.topic_arn, c.sigv4]),
        [[topic, { region: "eu-west-1" }]],
        name,
      );
      assert.equal(r.slack_configs, undefined);
    }
    // Without a topic the SNS integration is dropped (and the config stays valid).
    const { rendered: none, file: noneFile } = writeRendered("no-sns", { slack: true, pagerduty: false });
    await checkConfig(noneFile);
    assert.ok(none.receivers!.every((r) => r.sns_configs === undefined));
  });

  it("tells every integration when its alert resolves (a PagerDuty incident closes itself, the channel sees the end)", () => {
    const config = YAML.parse(source) as { receivers: Array<Record<string, unknown> & { name: string }> };
    const integrations = config.receivers.flatMap((r) =>
      Object.entries(r)
        .filter(([key]) => key.endsWith("_configs"))
        .flatMap(([key, list]) => (list as Array<{ send_resolved?: boolean }>).map((c) => [`${r.name} ${key}`, c.send_resolved])),
    );
    assert.ok(integrations.length >= 6, `${integrations}`);
    assert.deepEqual(
      integrations.filter(([, resolved]) => resolved !== true),
      [],
    );
  });

  it("reads every secret from the mounted receivers Secret", () => {
    const files = [...source.matchAll(/\w+_file:\s*(\S+)/g)].map((m) => m[1]);
    const expected = Object.values(RECEIVER_SECRET_KEYS).map((k) => `${RECEIVER_SECRET_DIR}/${k}`);
    assert.deepEqual([...new Set(files)].sort(), expected.sort());
    assert.doesNotMatch(source, /hooks\.slack\.com|api_url:|routing_key:|service_key:|auth_password:/);
  });
});

describe("renderAlertmanagerConfig", () => {
  it("drops every integration when the stack has no receiver secrets", async () => {
    const { rendered, file } = writeRendered("none", { slack: false, pagerduty: false });
    await checkConfig(file);
    for (const r of rendered.receivers!) assert.deepEqual(Object.keys(r), ["name"], r.name);
    assert.deepEqual(
      Object.keys(rendered.global!).filter((k) => k.startsWith("smtp_")),
      [],
    );
  });

  it("keeps Slack for critical alerts when there is no PagerDuty key", async () => {
    const { rendered, file } = writeRendered("slack", { slack: true, pagerduty: false });
    await checkConfig(file);
    const pager = rendered.receivers!.find((r) => r.name === "pager")!;
    assert.deepEqual(Object.keys(pager).sort(), ["name", "slack_configs"]);
  });

  it("fills the stack's email settings when everything is configured", async () => {
    const email = {
      to: "oncall@corp.test",
      from: "am@corp.test",
      smarthost: "smtp.corp.test:587",
      username: "am",
      password: true,
    };
    const { rendered, file } = writeRendered("all", { slack: true, pagerduty: true, email });
    await checkConfig(file);
    const chat = rendered.receivers!.find((r) => r.name === "chat")!;
    assert.deepEqual(
      (chat.email_configs as Array<{ to: string }>).map((e) => e.to),
      ["oncall@corp.test"],
    );
    assert.equal(rendered.global!.smtp_smarthost, "smtp.corp.test:587");
    // The password is sent only over TLS, with the stack's user: without it the server refuses the login.
    assert.equal(rendered.global!.smtp_require_tls, true);
    assert.equal(rendered.global!.smtp_auth_username, "am");
    assert.equal(rendered.global!.smtp_auth_password_file, `${RECEIVER_SECRET_DIR}/${RECEIVER_SECRET_KEYS.smtpPassword}`);
    assert.doesNotMatch(YAML.stringify(rendered), /example\.com/);
  });
});

describe("a real Alertmanager with this config", () => {
  let am: ReturnType<typeof startDaemon>;
  let url: string;

  before(async () => {
    // No integrations: nothing is sent anywhere, only routing and inhibition run.
    const { file } = writeRendered("inhibit", { slack: false, pagerduty: false });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    am = startDaemon("/usr/bin/prometheus-alertmanager", [
      `--config.file=${file}`,
      `--storage.path=${join(work, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--cluster.listen-address=",
    ]);
    await waitFor("Alertmanager", async () => (await fetch(`${url}/-/ready`)).ok, 15_000).catch((err) => {
      throw new Error(`${err}\n${am.output()}`);
    });
  });
  after(() => am?.stop());

  /**
   * Fires `alerts` (their labels) at the Alertmanager, waits until the one matching `inhibited` is suppressed, and
   * returns the state of the alert matching given labels (every label given must match).
   */
  async function fireUntilInhibited(alerts: Record<string, string>[], inhibited: Record<string, string>) {
    const res = await fetch(`${url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(alerts.map((labels) => ({ labels, annotations: {}, startsAt: new Date().toISOString() }))),
    });
    assert.equal(res.status, 200);
    type Listed = { labels: Record<string, string>; status: { state: string } };
    let listed: Listed[] = [];
    const state = (labels: Record<string, string>) =>
      listed.find((a) => Object.entries(labels).every(([k, v]) => a.labels[k] === v))?.status.state;
    await waitFor(
      `${inhibited.alertname} to be inhibited`,
      async () => {
        listed = (await (await fetch(`${url}/api/v2/alerts`)).json()) as Listed[];
        return state(inhibited) === "suppressed";
      },
      10_000,
    );
    return state;
  }

  it("lets ServiceDown inhibit the same job's latency and error alerts only", async () => {
    const state = await fireUntilInhibited(
      [
        { alertname: "ServiceDown", severity: "critical", job: "agent-api", instance: "10.0.1.10:3000" },
        { alertname: "HighLatency", severity: "warning", job: "agent-api" },
        { alertname: "HighErrorRate", severity: "warning", job: "agent-api" },
        { alertname: "HighServerErrorRate", severity: "warning", job: "agent-api" },
        { alertname: "HighLatency", severity: "warning", job: "agent-api-canary" },
        { alertname: "HighCPU", severity: "warning", job: "agent-api", instance: "ip-10-0-1-5" },
      ],
      { alertname: "HighLatency", job: "agent-api" },
    );
    assert.equal(state({ alertname: "HighErrorRate", job: "agent-api" }), "suppressed");
    assert.equal(state({ alertname: "HighServerErrorRate", job: "agent-api" }), "suppressed");
    assert.equal(state({ alertname: "HighLatency", job: "agent-api-canary" }), "active");
    assert.equal(state({ alertname: "HighCPU", job: "agent-api" }), "active");
    assert.equal(state({ alertname: "ServiceDown", job: "agent-api" }), "active");
  });

  it("lets PostgresDown and QdrantDown inhibit their own job's connection and latency alerts", async () => {
    // The down alerts carry their target's labels (namespace, instance); the others are sums by job.
    const state = await fireUntilInhibited(
      [
        {
          alertname: "PostgresDown",
          severity: "critical",
          job: "prometheus-postgres-exporter",
          namespace: "monitoring",
          instance: "10.0.3.5:9187",
        },
        { alertname: "DatabaseConnectionPoolExhausted", severity: "critical", job: "prometheus-postgres-exporter" },
        { alertname: "QdrantDown", severity: "critical", job: "qdrant", namespace: "agent", instance: "10.0.2.8:6333" },
        { alertname: "QdrantHighLatency", severity: "warning", job: "qdrant" },
        { alertname: "QdrantHighLatency", severity: "warning", job: "qdrant-staging" },
      ],
      { alertname: "DatabaseConnectionPoolExhausted" },
    );
    assert.equal(state({ alertname: "QdrantHighLatency", job: "qdrant" }), "suppressed");
    assert.equal(state({ alertname: "QdrantHighLatency", job: "qdrant-staging" }), "active");
    assert.equal(state({ alertname: "PostgresDown" }), "active");
    assert.equal(state({ alertname: "QdrantDown" }), "active");
  });

  it("lets DatabasePoolExhausted inhibit the same pod's DatabasePoolHighUtilization only", async () => {
    const state = await fireUntilInhibited(
      [
        { alertname: "DatabasePoolExhausted", severity: "critical", job: "agent-api", pod: "agent-api-a" },
        { alertname: "DatabasePoolHighUtilization", severity: "warning", job: "agent-api", pod: "agent-api-a" },
        { alertname: "DatabasePoolHighUtilization", severity: "warning", job: "agent-api", pod: "agent-api-b" },
      ],
      { alertname: "DatabasePoolHighUtilization", pod: "agent-api-a" },
    );
    assert.equal(state({ alertname: "DatabasePoolHighUtilization", pod: "agent-api-b" }), "active");
    assert.equal(state({ alertname: "DatabasePoolExhausted", pod: "agent-api-a" }), "active");
  });
});
