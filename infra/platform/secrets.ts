// A Secrets Manager secret with one KMS-encrypted version: where generated credentials live.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface StoredSecretArgs {
  description: string;
  kmsKeyArn: pulumi.Input<string>;
  value: pulumi.Input<string>;
}

export function storedSecret(
  name: string,
  args: StoredSecretArgs,
  opts: pulumi.CustomResourceOptions,
): aws.secretsmanager.Secret {
  const secret = new aws.secretsmanager.Secret(
    name,
    {
      description: args.description,
      kmsKeyId: args.kmsKeyArn,
      recoveryWindowInDays: 7,
    },
    opts,
  );
  new aws.secretsmanager.SecretVersion(name, { secretId: secret.id, secretString: pulumi.secret(args.value) }, opts);
  return secret;
}
