// Runs a stack's program under the plan's mocks and records each resource's explicit dependsOn (as "type::name")
// beside the inputs the mocks saw.
// Stand-in until the plan JSON carries dependsOn URNs: then read `resource.dependsOn` from runPlan instead.
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings.js";
import { PROJECT } from "../../infra/config.ts";
import { PlanMocks } from "../../infra/plan/mocks.ts";
import { loadStackFile } from "../../infra/plan/stackfile.ts";

export interface Recorded {
  type: string;
  name: string;
  dependsOn: string[];
}

export async function recordDependsOn(stack: string): Promise<{ resources: Recorded[]; mocks: PlanMocks }> {
  const file = loadStackFile(stack);
  pulumi.runtime.setAllConfig(file.config, file.secretKeys);
  const mocks = new PlanMocks(file.config["aws:region"] ?? "us-east-1");
  await pulumi.runtime.setMocks(mocks, PROJECT, stack, false);
  const { buildStack } = await import("../../infra/stack.ts");
  const names = new Map<pulumi.Resource, string>();
  const pending: { resource: pulumi.Resource; type: string; name: string; deps: unknown }[] = [];
  await pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((args) => {
      names.set(args.resource, `${args.type}::${args.name}`);
      pending.push({ resource: args.resource, type: args.type, name: args.name, deps: args.opts.dependsOn });
      return undefined;
    });
    return (await buildStack()).outputs;
  });
  await (settings as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  const resources = pending.map((p) => ({
    type: p.type,
    name: p.name,
    dependsOn: ([] as unknown[]).concat(p.deps ?? []).map((d) => names.get(d as pulumi.Resource) ?? "?"),
  }));
  return { resources, mocks };
}
