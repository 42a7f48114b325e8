// Validation helpers beyond @pulumi/policy's validateResourceOfType: one check for several type tokens, and
// following references between resources in a stack policy.
import type { PolicyResource, ReportViolation, ResourceValidation, ResourceValidationArgs } from "@pulumi/policy";

/** Runs `validate` for resources whose type token is one of `types`; not applicable to the rest. */
export function validateResourceOfTypes(
  types: readonly string[],
  validate: (props: Record<string, any>, args: ResourceValidationArgs, report: ReportViolation) => void,
): ResourceValidation {
  return (args, report) => {
    if (!types.includes(args.type)) args.notApplicable(`applies to ${types.join(", ")}`);
    validate(args.props, args, report);
  };
}

/** The resources a property of `holder` was computed from (the engine's property dependencies). */
export function referencedBy(holder: PolicyResource, property: string): PolicyResource[] {
  return holder.propertyDependencies?.[property] ?? [];
}

export function refersTo(holder: PolicyResource, property: string, target: PolicyResource): boolean {
  return referencedBy(holder, property).some((r) => r.urn === target.urn);
}

export function ofTypes(resources: PolicyResource[], types: readonly string[]): PolicyResource[] {
  return resources.filter((r) => types.includes(r.type));
}
