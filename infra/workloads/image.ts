// The API image: built from app/ for the nodes' architecture and pushed to ECR. The Deployment runs it
// by digest, so every build that changes the image rolls the pods.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The app's Docker build, relative to the repository root (Pulumi's working directory). */
export const APP_BUILD = { context: "app", dockerfile: "app/Dockerfile", platform: "linux/amd64" } as const;

export interface AppImageArgs {
  repositoryUrl: pulumi.Input<string>;
}

export class AppImage extends pulumi.ComponentResource {
  /** repository@sha256:..., what the Deployment runs. */
  readonly imageRef: pulumi.Output<string>;
  /** sha256:... */
  readonly digest: pulumi.Output<string>;

  constructor(name: string, args: AppImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-stack:workloads:AppImage", name, {}, opts);
    const auth = aws.ecr.getAuthorizationTokenOutput({}, { parent: this });
    const repositoryUrl = pulumi.output(args.repositoryUrl);

    const image = new docker.Image(name, {
      // ECR tags are immutable: tag by source content, so an unchanged app/ never re-pushes a tag.
      imageName: pulumi.interpolate`${repositoryUrl}:src-${sourceHash(APP_BUILD.context)}`,
      build: { context: APP_BUILD.context, dockerfile: APP_BUILD.dockerfile, platform: APP_BUILD.platform },
      registry: {
        server: repositoryUrl.apply((url) => url.split("/")[0]),
        username: auth.userName,
        password: pulumi.secret(auth.password),
      },
      buildOnPreview: false,
    }, { parent: this });

    this.imageRef = image.repoDigest;
    this.digest = image.repoDigest.apply((ref) => ref.slice(ref.indexOf("@") + 1));
    this.registerOutputs({ imageRef: this.imageRef, digest: this.digest });
  }
}

const SKIPPED = new Set(["node_modules", ".git", "dist", "coverage"]);

/** First 12 hex digits of a SHA-256 over every file's path and content under `dir` (repo-relative). */
function sourceHash(dir: string): string {
  const root = join(REPO_ROOT, dir);
  const hash = createHash("sha256");
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (SKIPPED.has(entry.name)) continue;
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) hash.update(relative(root, path)).update("\0").update(readFileSync(path)).update("\0");
    }
  };
  walk(root);
  return hash.digest("hex").slice(0, 12);
}
