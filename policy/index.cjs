// Entry point the Pulumi CLI loads for `--policy-pack policy`. Its runner (@pulumi/pulumi/cmd/run-policy-pack)
// `require`s the pack's package.json "main" and registers its own ts-node, which cannot load this ESM
// TypeScript; so this CommonJS file hands the TypeScript pack to tsx, the loader the rest of the repo uses.
// (tsx's CommonJS build of tsx/esm/api resolves its hooks from the wrong directory in tsx 4.23; its ESM
// build, reached through import(), does not.)
const { pathToFileURL } = require("node:url");

module.exports = import("tsx/esm/api").then(({ tsImport }) => tsImport("./index.ts", pathToFileURL(__filename).href));
