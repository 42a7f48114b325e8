// The offline plan: runs the real program under Pulumi's mocks with a stack's config and returns every
// registered resource (type, name, inputs, options). No cloud account and no Pulumi CLI are involved.
// Pulumi's runtime is process-global: one runPlan per process (tests: one stack per test file).
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings.js";
import { PROJECT } from "../config.ts";
import { PlanMocks } from "./mocks.ts";
import { loadStackFile } from "./stackfile.ts";
import { SECRET_PLACEHOLDER, type Plan, type PlannedResource } from "./types.ts";

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface PlanOptions {
  stack: string;
  /** Extra or replaced raw config ("agent-stack:tier" -> "small"), as `pulumi config set` would store it. */
  config?: Record<string, string>;
  /** Repo root holding Pulumi.<stack>.yaml; defaults to this repository. */
  root?: string;
}

interface Registered {
  type: string;
  name: string;
  parent?: Registered;
  options: PlannedResource["options"];
}

let used = false;

export async function runPlan(options: PlanOptions): Promise<Plan> {
  if (used) throw new Error("runPlan: Pulumi's runtime is process-global; run one plan per process");
  used = true;
  const file = loadStackFile(options.stack, options.root);
  const config = { ...file.config, ...options.config };
  const region = config["aws:region"] ?? "us-east-1";
  pulumi.runtime.setAllConfig(config, file.secretKeys);

  const mocks = new PlanMocks(region);
  await pulumi.runtime.setMocks(mocks, PROJECT, options.stack, false);
  const registered = new Map<pulumi.Resource, Registered>();
  const { buildStack } = await import("../stack.ts");

  let rawOutputs: Record<string, unknown> = {};
  await pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((args) => {
      registered.set(args.resource, {
        type: args.type,
        name: args.name,
        parent: args.opts.parent ? registered.get(args.opts.parent) : undefined,
        options: {
          protect: args.opts.protect || undefined,
          ignoreChanges: args.opts.ignoreChanges?.length ? args.opts.ignoreChanges : undefined,
          retainOnDelete: args.opts.retainOnDelete || undefined,
        },
      });
      return undefined;
    });
    const built = await buildStack();
    rawOutputs = built.outputs;
    return built.outputs;
  });
  await (settings as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();

  const byKey = new Map<string, Registered[]>();
  for (const r of registered.values()) {
    const key = `${r.type}::${r.name}`;
    byKey.set(key, [...(byKey.get(key) ?? []), r]);
  }
  const resources: PlannedResource[] = [];
  for (const reg of mocks.registrations) {
    if (reg.type === "pulumi:pulumi:Stack") continue;
    const meta = byKey.get(`${reg.type}::${reg.name}`)?.shift();
    resources.push({
      type: reg.type,
      name: reg.name,
      urn: urnOf(meta, reg.type, reg.name, options.stack),
      parent: meta?.parent ? urnOf(meta.parent, meta.parent.type, meta.parent.name, options.stack) : undefined,
      component: topComponent(meta),
      inputs: maskSecrets(reg.inputs) as Record<string, unknown>,
      custom: reg.custom,
      options: meta?.options ?? {},
    });
  }
  return {
    stack: options.stack,
    tier: String((await settle(rawOutputs.tier)).value ?? ""),
    region,
    resources,
    outputs: await resolveOutputs(rawOutputs),
    cost: null,
    policies: null,
  };
}

/** The name of the top-level component a resource sits under; "stack" for resources at the root. */
function topComponent(meta: Registered | undefined): string {
  if (!meta) return "stack";
  let root = meta;
  while (root.parent) root = root.parent;
  return root.type.startsWith(`${PROJECT}:`) ? root.name : "stack";
}

function urnOf(meta: Registered | undefined, type: string, name: string, stack: string): string {
  const chain: string[] = [];
  for (let p = meta?.parent; p; p = p.parent) chain.unshift(p.type);
  return `urn:pulumi:${stack}::${PROJECT}::${[...chain, type].join("$")}::${name}`;
}

function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (typeof value !== "object" || value === null) return value;
  const obj = value as Record<string, unknown>;
  if (obj[SECRET_SIG_KEY] === SECRET_SIG) return SECRET_PLACEHOLDER;
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, maskSecrets(v)]));
}

/** An output's value and secretness; Output's promise() is runtime-internal, hence the cast. */
async function settle(value: unknown): Promise<{ value: unknown; secret: boolean }> {
  const out = pulumi.output(value) as unknown as { promise(): Promise<unknown>; isSecret: Promise<boolean> };
  return { value: await out.promise(), secret: await out.isSecret };
}

async function resolveOutputs(outputs: Record<string, unknown>): Promise<Record<string, unknown>> {
  const resolved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(outputs)) {
    const settled = await settle(value);
    resolved[key] = settled.secret ? SECRET_PLACEHOLDER : maskSecrets(settled.value);
  }
  return resolved;
}
