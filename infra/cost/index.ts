// Public API of the cost estimator (used by the review layer, infra/review/, and the budget policy).
export { estimateCost, type CostEstimate, type EstimateOptions, type UnpricedResource } from "./estimate.ts";
export { renderCostMarkdown, renderCostTable } from "./render.ts";
export { diffCosts, renderDiffMarkdown, renderDiffTable, type CostDiff } from "./diff.ts";
export { plansFromPreview, type PreviewDigest } from "./preview.ts";
export { budgetCheck, type BudgetCheck, unpricedRegion } from "./budget.ts";
export { CATALOG } from "./catalog.ts";
