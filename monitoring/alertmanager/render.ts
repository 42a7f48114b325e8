// Turns alertmanager.yml into the config a stack deploys: integrations whose
// secret the stack does not have are dropped (a receiver left with none is a
// valid "null" receiver), and the example.com email settings are replaced.
// Pure: no Pulumi here, so the tests run it against amtool and a real Alertmanager.
import YAML from "yaml";

/** Kubernetes Secret mounted by the Alertmanager pod (alertmanagerSpec.secrets). */
export const RECEIVER_SECRET_NAME = "alertmanager-receivers";
export const RECEIVER_SECRET_DIR = `/etc/alertmanager/secrets/${RECEIVER_SECRET_NAME}`;
/** Keys of that Secret, as alertmanager.yml's *_file fields name them. */
export const RECEIVER_SECRET_KEYS = {
  slack: "slack-webhook-url",
  pagerduty: "pagerduty-routing-key",
  smtpPassword: "smtp-password",
} as const;

export interface EmailSettings {
  to: string;
  from: string;
  /** host:port */
  smarthost: string;
  username?: string;
  /** Whether an SMTP password is mounted under RECEIVER_SECRET_KEYS.smtpPassword. */
  password: boolean;
}

/** The stack's notifications topic; the topic ARN may be a Pulumi output (this module only places it). */
export interface SnsSettings {
  topicArn: unknown;
  region: string;
}

export interface ReceiverSecrets {
  slack: boolean;
  pagerduty: boolean;
  email?: EmailSettings;
  sns?: SnsSettings;
}

type Config = {
  global?: Record<string, unknown>;
  receivers?: Array<Record<string, unknown> & { name: string }>;
  [key: string]: unknown;
};

export function renderAlertmanagerConfig(source: string, secrets: ReceiverSecrets): Config {
  const config = YAML.parse(source) as Config;
  const global = (config.global ??= {});
  for (const key of Object.keys(global).filter((k) => k.startsWith("smtp_"))) delete global[key];
  const email = secrets.email;
  if (email) {
    global.smtp_smarthost = email.smarthost;
    global.smtp_from = email.from;
    global.smtp_require_tls = true;
    if (email.username) global.smtp_auth_username = email.username;
    if (email.password) global.smtp_auth_password_file = `${RECEIVER_SECRET_DIR}/${RECEIVER_SECRET_KEYS.smtpPassword}`;
  }
  for (const receiver of config.receivers ?? []) {
    if (!secrets.slack) delete receiver.slack_configs;
    if (!secrets.pagerduty) delete receiver.pagerduty_configs;
    if (!email) delete receiver.email_configs;
    const sns = secrets.sns;
    if (!sns) delete receiver.sns_configs;
    // Copies: the YAML anchor makes every receiver share one object.
    if (sns && receiver.sns_configs) {
      receiver.sns_configs = (receiver.sns_configs as Array<Record<string, unknown>>).map((c) => ({
        ...c,
        topic_arn: sns.topicArn,
        sigv4: { region: sns.region },
      }));
    }
    const emails = receiver.email_configs as Array<Record<string, unknown>> | undefined;
    for (const e of emails ?? []) e.to = email!.to;
  }
  return config;
}
