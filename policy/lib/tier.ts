// Which tier (dev, small, medium, large) a resource belongs to, without pulumi.getStack(): the policy's own
// config `tier` wins; otherwise the `tier` tag the program puts in the AWS provider's defaultTags
// (infra/stack.ts); otherwise the resource's own `tags.tier`.
import type {
  PolicyConfigSchema,
  PolicyProviderResource,
  PolicyResource,
  ReportViolation,
  StackValidationPolicy,
} from "@pulumi/policy";
import { asRecord, decodeJson } from "./values.ts";

export const AWS_PROVIDER_TYPE = "pulumi:providers:aws";

export interface TierConfig {
  tier?: string;
  relaxedTiers: string[];
}

/** Config properties shared by every policy that treats some tiers (dev) more leniently. */
export const TIER_CONFIG_SCHEMA: Record<keyof TierConfig, PolicyConfigSchema["properties"][string]> = {
  tier: {
    type: "string",
    description: "The stack's tier; default: the `tier` tag in the AWS provider's defaultTags.",
  },
  relaxedTiers: {
    type: "array",
    items: { type: "string" },
    default: ["dev"],
    description: "Tiers (disposable environments) this policy does not apply to.",
  },
};

/** The tags an AWS provider adds to every resource (`defaultTags.tags`). */
function providerDefaultTags(provider: Pick<PolicyProviderResource, "props"> | undefined): Record<string, string> {
  const defaultTags = asRecord(decodeJson(provider?.props?.defaultTags));
  return asRecord(defaultTags.tags) as Record<string, string>;
}

export function tierOf(
  config: { tier?: string },
  provider: Pick<PolicyProviderResource, "props"> | undefined,
  props?: Record<string, any>,
): string | undefined {
  return config.tier ?? providerDefaultTags(provider).tier ?? asRecord(props?.tags).tier;
}

/** True when the policy does not apply to this tier. An unknown tier is never relaxed. */
export function isRelaxed(config: TierConfig, tier: string | undefined): boolean {
  return tier !== undefined && config.relaxedTiers.includes(tier);
}

/** A stack's tier: policy config, else the AWS provider in the stack. */
export function stackTierOf(config: { tier?: string }, resources: PolicyResource[]): string | undefined {
  const provider = resources.find((r) => r.type === AWS_PROVIDER_TYPE);
  return config.tier ?? providerDefaultTags(provider).tier;
}

/** A resource's effective tags: the provider's default tags under its own. */
export function effectiveTags(resource: Pick<PolicyResource, "props" | "provider">): Record<string, string> {
  return { ...providerDefaultTags(resource.provider), ...(asRecord(resource.props.tags) as Record<string, string>) };
}

/** Runs `check` only for stacks whose tier is not relaxed; the tier goes into messages. */
export function productionStack(
  check: (resources: PolicyResource[], tier: string, report: ReportViolation, config: any) => void,
): StackValidationPolicy["validateStack"] {
  return (args, report) => {
    const config = args.getConfig<TierConfig>();
    const tier = stackTierOf(config, args.resources);
    if (isRelaxed(config, tier)) return;
    check(args.resources, tier ?? "(unknown)", report, config);
  };
}
