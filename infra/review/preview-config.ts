// A real `pulumi preview --json` carries the stack's raw config (its `config` section, secrets blinded). The
// review layer resolves it through the program's own parser, so cost and policy get the same facts (budget
// after overrides, usage, time zone) as from the offline plan.
import { ConfigError, parseStackConfig, planConfigOf } from "../config.ts";
import { type PreviewDigest, type PreviewPlans, plansFromPreview } from "../cost/preview.ts";
import type { Plan } from "../plan/types.ts";

/** Base and head of a real preview, each with the stack's resolved config. */
export function previewPlans(digest: PreviewDigest): PreviewPlans {
  const plans = plansFromPreview(digest);
  return {
    ...plans,
    base: withPreviewConfig(plans.base, digest.config, []),
    head: withPreviewConfig(plans.head, digest.config, plans.notes),
  };
}

/** The plan with its resolved config, or unchanged with a note when the preview's config cannot be read. */
export function withPreviewConfig(plan: Plan, raw: Record<string, string> | undefined, notes: string[]): Plan {
  if (!raw) {
    notes.push("the preview has no config section; no budget and no usage assumptions");
    return plan;
  }
  try {
    const config = planConfigOf(parseStackConfig(raw, plan.stack));
    return { ...plan, tier: config.tier, region: config.region, config };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    notes.push(`the preview's config is not this program's: ${err.message.split("\n")[0]}; no budget and no usage assumptions`);
    return plan;
  }
}
