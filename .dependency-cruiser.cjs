// The layering rules of DESIGN.md ("Layers: data flows top to bottom, never back up"), checked by
// `npm run lint` (dependency-cruiser 17; rule format: https://github.com/sverweij/dependency-cruiser/blob/main/doc/rules-reference.md).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "No import cycles, type-only ones included.",
      from: {},
      to: { circular: true },
    },
    {
      name: "app-not-infra",
      severity: "error",
      comment:
        "app/ never imports infra/. infra builds app/ as a Docker context and imports three of its modules, so the two cannot drift: the answer-share sizing (services/answer-share.ts), the error body (errors.ts, for the WAF's 429) and the rule for CORS origins (origins.ts, for corsOrigins and the WAF's 429).",
      from: { path: "^app/" },
      to: { path: "^(infra|policy|monitoring|test|bench)/" },
    },
    {
      name: "platform-not-workloads",
      severity: "error",
      comment: "The AWS platform never imports the Kubernetes workloads built on top of it.",
      from: { path: "^infra/platform/" },
      to: { path: "^infra/workloads/" },
    },
    {
      name: "reviewers-read-only-the-plan",
      severity: "error",
      comment:
        "Cost and policy read only the plan (infra/plan/types.ts, the contract) and the time module: never the tiers, the config, the mocks, the harness or the program.",
      from: { path: "^(infra/cost|policy)/" },
      to: {
        path: "^infra/",
        pathNot: ["^infra/cost/", "^infra/plan/types\\.ts$", "^infra/time\\.ts$"],
      },
    },
    {
      name: "program-not-reviewers",
      severity: "error",
      comment:
        "The program and the plan harness never import the layers that review them (cost, policy, review); the preflight sits beside the review layer.",
      from: { path: "^infra/", pathNot: ["^infra/cost/", "^infra/review/", "^infra/preflight/"] },
      to: { path: "^(infra/cost|infra/review|policy)/" },
    },
    {
      name: "cost-below-review",
      severity: "error",
      comment: "Cost and policy never import the review layer that composes them.",
      from: { path: "^(infra/cost|policy)/" },
      to: { path: "^infra/review/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
