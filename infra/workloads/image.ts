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
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import * as aws from "@pulumi/aws";
import * as dockerBuild from "@pulumi/docker-build";
import dockerignoreFactory from "@balena/dockerignore";
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

/**
 * One collation on every machine: `localeCompare` without a locale sorts by the machine's (`sv` puts `ä` after `z`,
 * `en` next to `a`). English, which is what the CI runners (LANG C.UTF-8, ICU "en-US") sorted by, so their tags stay.
 */
const BY_NAME = new Intl.Collator("en").compare;
const SKIPPED = new Set(["node_modules", ".git", "dist", "coverage"]);
/** Left out of the context by .dockerignore, yet they make the image: APP_BUILD.dockerfile is app/Dockerfile. */
const ALWAYS_HASHED = new Set(["Dockerfile", ".dockerignore"]);

/**
 * First 12 hex digits of a SHA-256 over the build context's files, each by its context-relative path and content.
 *
 * The tag must not change unless the context Docker is sent does, on any machine: otherwise every preview from a
 * working copy with a stray file shows `tags` changed, and an `up` from it rebuilds, pushes a new tag and rolls the
 * API (docker-build itself hashes the context after .dockerignore: pulumi-docker-build v0.0.22
 * provider/internal/image.go Diff, `contextHash`). So: files `.dockerignore` leaves out (`*.log`, `.env`, ...) are not
 * hashed; the Dockerfile and .dockerignore always are (they change the image though ignored, and an ECR tag is
 * immutable); names are sorted by one collation (BY_NAME), not by the machine's locale; paths are hashed with `/`
 * whatever the OS.
 */
function sourceHash(dir: string): string {
  return contextHash(join(REPO_ROOT, dir));
}

export function contextHash(root: string): string {
  const ignore = dockerignore(root);
  const hash = createHash("sha256");
  const walk = (current: string): void => {
    const entries = readdirSync(current, { withFileTypes: true }).sort((a, b) => BY_NAME(a.name, b.name));
    for (const entry of entries) {
      if (SKIPPED.has(entry.name)) continue;
      const path = join(current, entry.name);
      const rel = relative(root, path).split(sep).join("/");
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && (ALWAYS_HASHED.has(rel) || !ignore(rel)))
        hash.update(rel).update("\0").update(readFileSync(path)).update("\0");
    }
  };
  walk(root);
  return hash.digest("hex").slice(0, 12);
}

/**
 * Whether .dockerignore leaves a file (context-relative, `/`-separated) out of the context, read by
 * @balena/dockerignore, which follows Docker's own matcher (moby patternmatcher: patterns anchored at the root, `**`,
 * `!` exceptions, the last match wins).
 */
function dockerignore(root: string): (rel: string) => boolean {
  let text: string;
  try {
    text = readFileSync(join(root, ".dockerignore"), "utf8");
  } catch {
    return () => false;
  }
  // The package is CommonJS (module.exports = the factory) while its types declare a default export.
  const factory = dockerignoreFactory as unknown as typeof dockerignoreFactory.default;
  const rules = factory().add(text.split(/\r?\n/));
  return (rel) => rules.ignores(rel);
}
