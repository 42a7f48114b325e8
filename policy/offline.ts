// Runs the policy pack over an offline plan (infra/plan) without the Pulumi CLI: each resource policy's
// validateResource gets the arguments the engine would build (type, name, urn, props = inputs, opts,
// provider, isType/asType, getConfig with schema defaults, notApplicable) and each stack policy's
// validateStack gets every resource with parent, provider and property dependencies. A first preview's plan
// (Plan.firstPreview) is judged as the engine judges one: props behind its proxy, which throws on a value not known
// yet, and a policy that reads one reported as an advisory "can't run ... during preview".
import {
  UnknownValueError,
  type Policies,
  type Policy,
  type PolicyPackConfig,
  type PolicyProviderResource,
  type PolicyResource,
  type PolicyResourceOptions,
  type ResourceValidationArgs,
  type ResourceValidationPolicy,
  type StackValidationPolicy,
} from "@pulumi/policy";
import type { CostReport, Plan, PlannedResource, PolicyReport, PolicyViolation } from "../infra/plan/types.ts";
import type { OfflineStackArgs } from "./lib/offline-args.ts";
import { resolvePackConfig } from "./lib/pack-config.ts";
import { blindReads, engineProps } from "./lib/first-preview.ts";
import { asArray } from "./lib/values.ts";
import { policies as packPolicies } from "./policies/index.ts";

export interface RunPoliciesOptions {
  /** Policy pack config, the `--policy-pack-config` JSON format: { "all"?: level, "<policy>": level | { enforcementLevel?, ...props } }. */
  config?: PolicyPackConfig;
  /** Policies to run; default: the whole pack. */
  policies?: Policies;
  /** The plan's cost when it is already estimated (infra/review/review.ts); stack policies get it as `cost`. */
  cost?: CostReport;
}

export type { OfflineStackArgs };

class NotApplicable extends Error {}

export function runPolicies(plan: Plan, opts: RunPoliciesOptions = {}): PolicyReport {
  const policies = opts.policies ?? packPolicies;
  const configs = resolvePackConfig(policies, opts.config);
  const preview = plan.firstPreview === true;
  const watched = blindReads();
  const resources = toPolicyResources(plan, watched.watch);
  // What a resource policy reads: the inputs, behind the engine's proxy on a first preview (whose stack policies read
  // the outputs). Built once, not per policy.
  const inputs = preview ? plan.resources.map((r) => engineProps(r.inputs)) : resources.map((r) => r.props);
  const project = /^urn:pulumi:[^:]*::([^:]+)::/.exec(plan.resources[0]?.urn ?? "")?.[1] ?? "project";
  const stackUrn = `urn:pulumi:${plan.stack}::${project}::pulumi:pulumi:Stack::${project}-${plan.stack}`;
  const violations: PolicyViolation[] = [];

  for (const policy of policies) {
    const { enforcementLevel, properties } = configs.get(policy.name)!;
    if (enforcementLevel === "disabled") continue;
    const level = enforcementLevel === "advisory" ? "advisory" : "mandatory"; // the engine reports remediate as mandatory
    const reporter = (urn: string) => (message: string, reportedUrn?: string) =>
      violations.push({ policy: policy.name, resource: reportedUrn ?? urn, level, message });
    const common = {
      stackTags: new Map<string, string>() as ReadonlyMap<string, string>,
      getConfig: <T extends object>() => structuredClone(properties) as T,
      notApplicable: (reason?: string): never => {
        throw new NotApplicable(reason);
      },
    };

    // The pack server's answer to a policy that read a value a preview cannot know (server.js): an advisory.
    const cannotRun = (urn: string, err: UnknownValueError) =>
      violations.push({
        policy: policy.name,
        resource: urn,
        level: "advisory",
        message: `can't run policy '${policy.name}' during preview: ${err.message}`,
      });

    if (isStackPolicy(policy)) {
      // Under the engine a stack policy gets neither the estimate nor the resolved config.
      const args: OfflineStackArgs = preview
        ? { ...common, resources }
        : { ...common, resources, cost: opts.cost, planConfig: plan.config ?? undefined };
      call(policy, stackUrn, () => watched.during(policy.name, () => policy.validateStack(args, reporter(stackUrn))), cannotRun);
      continue;
    }
    const validations = asArray((policy as ResourceValidationPolicy).validateResource);
    const onlyType = validations.length === 1 ? pulumiTypeOf(validations[0]) : undefined;
    resources.forEach((resource, i) => {
      if (onlyType && onlyType !== resource.type) return;
      const args: ResourceValidationArgs = {
        ...common,
        type: resource.type,
        name: resource.name,
        urn: resource.urn,
        props: inputs[i]!,
        opts: resource.opts,
        provider: resource.provider,
        isType: resource.isType,
        asType: resource.asType as ResourceValidationArgs["asType"],
      };
      for (const validate of validations) {
        call(policy, resource.urn, () => validate(args, reporter(resource.urn)), cannotRun);
      }
    });
  }
  return preview ? { violations, blindOnFirstPreview: watched.blind() } : { violations };
}

function isStackPolicy(policy: Policy): policy is StackValidationPolicy {
  return typeof (policy as StackValidationPolicy).validateStack === "function";
}

function pulumiTypeOf(value: unknown): string | undefined {
  const t = (value as { __pulumiType?: unknown })?.__pulumiType;
  return typeof t === "string" && t !== "" ? t : undefined;
}

/**
 * Runs one validation; "not applicable" is silent, a value not known yet goes to `unknown`, a promise or a crash is
 * an error naming policy and resource.
 */
function call(policy: Policy, urn: string, validate: () => unknown, unknown: (urn: string, err: UnknownValueError) => void) {
  try {
    const result = validate();
    if (result && typeof (result as Promise<unknown>).then === "function") {
      throw new Error("returned a promise; offline validations must be synchronous");
    }
  } catch (err) {
    if (err instanceof NotApplicable) return;
    if (err instanceof UnknownValueError) return unknown(urn, err);
    throw new Error(`policy ${policy.name} failed on ${urn}: ${(err as Error).message}`, { cause: err });
  }
}

/** The engine's isType: the class's Pulumi type token, else its isInstance. */
function isTypeOf(type: string, resourceClass: unknown): boolean {
  const token = pulumiTypeOf(resourceClass);
  if (token) return token === type;
  const isInstance = (resourceClass as { isInstance?: (o: unknown) => boolean })?.isInstance;
  return typeof isInstance === "function" && isInstance({ __pulumiType: type }) === true;
}

/**
 * Every planned resource as a stack policy sees it, linked to its parent, provider and dependencies; on a first preview,
 * `watch` is given the props of each resource without outputs.
 */
export function toPolicyResources(plan: Plan, watch?: (urn: string, props: object) => object): PolicyResource[] {
  const providers = new Map<string, PolicyProviderResource>();
  for (const r of plan.resources) {
    const pkg = r.type.startsWith("pulumi:providers:") ? r.type.slice("pulumi:providers:".length) : undefined;
    // The plan does not record which provider a resource used; each package has one in our program.
    if (!pkg || providers.has(pkg)) continue;
    // The engine proxies a provider's props too (server.js getProviderResource): the Kubernetes one's kubeconfig is
    // not known on a first preview.
    const props = plan.firstPreview ? engineProps(r.inputs) : r.inputs;
    providers.set(pkg, { type: r.type, name: r.name, urn: r.urn, props });
  }
  const resources = plan.resources.map((r): PolicyResource => {
    const outputs = plan.firstPreview ? engineProps(r.outputs ?? r.inputs) : r.inputs;
    const blind = watch && r.custom && r.outputs && Object.keys(r.outputs).length === 0;
    const props = (blind ? watch(r.urn, outputs) : outputs) as Record<string, any>;
    return {
      type: r.type,
      name: r.name,
      urn: r.urn,
      props,
      opts: optionsOf(r),
      provider: r.type.startsWith("pulumi:") ? undefined : providers.get(r.type.split(":")[0]),
      dependencies: [],
      propertyDependencies: {},
      isType: (resourceClass: unknown) => isTypeOf(r.type, resourceClass),
      asType: ((resourceClass: unknown) => (isTypeOf(r.type, resourceClass) ? props : undefined)) as PolicyResource["asType"],
    };
  });
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  plan.resources.forEach((planned, i) => {
    const resource = resources[i];
    resource.parent = planned.parent ? byUrn.get(planned.parent) : undefined;
    // The dependencies the plan recorded (the harness reads them from the engine's register requests).
    for (const [key, urns] of Object.entries(planned.propertyDependencies ?? {})) {
      const deps = [...new Set(urns.flatMap((u) => byUrn.get(u) ?? []))].filter((d) => d !== resource);
      if (deps.length > 0) resource.propertyDependencies[key] = deps;
    }
    const all = [
      ...Object.values(resource.propertyDependencies).flat(),
      ...(planned.dependsOn ?? []).flatMap((u) => byUrn.get(u) ?? []),
    ];
    resource.dependencies = [...new Set(all)].filter((d) => d !== resource);
  });
  return resources;
}

function optionsOf(r: PlannedResource): PolicyResourceOptions {
  return {
    protect: r.options.protect ?? false,
    ignoreChanges: r.options.ignoreChanges ?? [],
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
    parent: r.parent,
  };
}
