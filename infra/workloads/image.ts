// The API image: built from app/ for linux/amd64 and linux/arm64 (one multi-platform manifest list, so the pods
// run on Graviton and x86 node groups alike) and pushed to ECR. The Deployment runs it by digest, so every build
// that changes the image rolls the pods. @pulumi/docker's Image builds one platform only; @pulumi/docker-build's
// Image takes `platforms` (buildx --platform) and pushes with `push: true` (node_modules/@pulumi/docker-build
// image.d.ts, v0.0.22: "Multi-platform image", "Registry export").
// No builder is named, and none needs setting up where `pulumi up` runs (a CI runner, a laptop): when buildx's current
// builder uses the `docker` driver, which builds one platform unless Docker's containerd image store is on, docker-build
// takes or creates a `docker-container` one (pulumi-docker-build v0.0.22 provider/internal/host.go, builderFor). Its
// BuildKit runs the other architecture's RUN steps under the QEMU it ships (moby/buildkit exec_binfmt.go, the
// buildkit-qemu-* of tonistiigi/binfmt, patched so the processes a step starts run emulated too): no binfmt_misc setup.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as aws from "@pulumi/aws";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The app's Docker build, relative to the repository root (Pulumi's working directory). */
export const APP_BUILD = { context: "app", dockerfile: "app/Dockerfile", platforms: ["linux/amd64", "linux/arm64"] } as const;

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

    const server = repositoryUrl.apply((url) => url.split("/")[0]);
    const image = new dockerBuild.Image(
      name,
      {
        // ECR tags are immutable: tag by source content, so an unchanged app/ never re-pushes a tag.
        tags: [pulumi.interpolate`${repositoryUrl}:src-${sourceHash(APP_BUILD.context)}`],
        context: { location: APP_BUILD.context },
        dockerfile: { location: APP_BUILD.dockerfile },
        platforms: [...APP_BUILD.platforms],
        push: true,
        registries: [{ address: server, username: auth.userName, password: pulumi.secret(auth.password) }],
        buildOnPreview: false,
      },
      { parent: this },
    );

    // `ref` is the pushed tag with its digest (repository:tag@sha256:...); the Deployment pins the digest alone.
    this.imageRef = pulumi.all([repositoryUrl, image.digest]).apply(([url, digest]) => `${url}@${digest}`);
    this.digest = image.digest;
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
