// ECR repository for the API image: scan on push, immutable tags, KMS encryption, keep the last N images.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface RegistryArgs {
  repositoryName: string;
  kmsKeyArn: pulumi.Input<string>;
  keepImages: number;
  /** Dev: let `pulumi destroy` delete a repository that still holds images. */
  forceDelete: boolean;
}

export class Registry extends pulumi.ComponentResource {
  readonly repositoryUrl: pulumi.Output<string>;
  readonly repositoryName: pulumi.Output<string>;

  constructor(name: string, args: RegistryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:platform:Registry", name, {}, opts);
    const o = { parent: this };
    const repo = new aws.ecr.Repository(
      `${name}`,
      {
        name: args.repositoryName,
        imageTagMutability: "IMMUTABLE",
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfigurations: [{ encryptionType: "KMS", kmsKey: args.kmsKeyArn }],
        forceDelete: args.forceDelete,
      },
      o,
    );
    new aws.ecr.LifecyclePolicy(
      `${name}`,
      {
        repository: repo.name,
        policy: JSON.stringify({
          rules: [
            {
              rulePriority: 1,
              description: `keep the last ${args.keepImages} images`,
              selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: args.keepImages },
              action: { type: "expire" },
            },
          ],
        }),
      },
      o,
    );
    this.repositoryUrl = repo.repositoryUrl;
    this.repositoryName = repo.name;
    this.registerOutputs({ repositoryUrl: this.repositoryUrl });
  }
}
