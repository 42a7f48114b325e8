// infra/workloads/image.ts: the API image's tag (`src-<contextHash>`) is the same for the same build context on
// every machine. Before, a stray file .dockerignore leaves out (an app/*.log, app/.env) or a locale that sorts file
// names differently gave another tag: the preview showed the image's `tags` changed and an `up` rebuilt, pushed
// and rolled the API.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { contextHash } from "../../infra/workloads/image.ts";

const run = promisify(execFile);

function context(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "image-tag-"));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return root;
}

const remove = (...dirs: string[]): void => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
};

const APP = {
  ".dockerignore": "node_modules\ndist\n*.log\n.env\n.env.*\nDockerfile\n.dockerignore\n",
  Dockerfile: "FROM node:22\n",
  "package.json": "{}\n",
  "src/main.ts": "export {};\n",
};

test("files .dockerignore leaves out do not change the tag", (t) => {
  const clean = context(APP);
  const dirty = context({ ...APP, "server.log": "GET /health 200\n", ".env": "X=1\n", ".env.local": "Y=2\n" });
  t.after(() => remove(clean, dirty));
  assert.equal(contextHash(dirty), contextHash(clean));
});

test("files in the context, the Dockerfile and .dockerignore do change it", (t) => {
  const base = context(APP);
  const nestedLog = context({ ...APP, "src/fixtures/app.log": "x\n" }); // `*.log` is anchored at the root: sent
  const dockerfile = context({ ...APP, Dockerfile: "FROM node:24\n" });
  const ignore = context({ ...APP, ".dockerignore": `${APP[".dockerignore"]}src/fixtures\n` });
  t.after(() => remove(base, nestedLog, dockerfile, ignore));
  const h = contextHash(base);
  for (const other of [nestedLog, dockerfile, ignore]) assert.notEqual(contextHash(other), h, other);
});

test("file names are sorted the same whatever the machine's locale", async (t) => {
  // `localeCompare` without a locale: en puts `ä.ts` next to `a.ts`, sv after `z.ts`.
  const root = context({ "B.ts": "b\n", "a.ts": "a\n", "ä.ts": "ae\n", "z.ts": "z\n" });
  t.after(() => remove(root));
  const inLocale = async (locale: string): Promise<string> => {
    const script = `import("./infra/workloads/image.ts").then((m) => process.stdout.write(m.contextHash(${JSON.stringify(root)})))`;
    const { stdout } = await run(process.execPath, ["--import", "tsx/esm", "-e", script], {
      cwd: fileURLToPath(new URL("../../", import.meta.url)),
      env: { ...process.env, LANG: locale, LC_ALL: locale },
      encoding: "utf8",
    });
    return stdout;
  };
  // Both at once: each process takes about 2 s to load the module.
  const [sv, en] = await Promise.all([inLocale("sv_SE.UTF-8"), inLocale("en_US.UTF-8")]);
  assert.equal(sv, en);
  assert.equal(en, contextHash(root));
});
