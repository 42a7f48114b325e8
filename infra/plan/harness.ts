// The offline plan: runs the real program under Pulumi's mocks with a stack's config and returns every
// registered resource (type, name, inputs, options). No cloud account and no Pulumi CLI are involved.
// A process may plan many times: each plan runs in a Pulumi state store of its own, as the Automation API runs each
// inline program, one plan at a time (Pulumi also keeps the stack resource in a global, runtime/state.ts).
import type * as Pulumi from "@pulumi/pulumi";
import { PROJECT, parseStackConfig, planConfigOf } from "../config.ts";
import { PlanMocks } from "./mocks.ts";
import { loadStackFile } from "./stackfile.ts";
import { SECRET_PLACEHOLDER, type Plan, type PlannedResource, UNKNOWN_VALUE } from "./types.ts";

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface PlanOptions {
  stack: string;
  /** Extra or replaced raw config ("agent-stack:tier" -> "small"), as `pulumi config set` would store it. */
  config?: Record<string, string>;
  /** Repo root holding Pulumi.<stack>.yaml; defaults to this repository. */
  root?: string;
  /** The plan as the first `pulumi preview` of a new stack sees it (PlanMocks): every computed value unknown. */
  firstPreview?: boolean;
}

/** What the engine would record of one registration, read from the RegisterResource request. */
interface Request {
  type: string;
  name: string;
  parent: string;
  custom: boolean;
  dependsOn: string[];
  propertyDependencies: Record<string, string[]>;
  options: PlannedResource["options"];
  urn?: string;
}

const STACK_TYPE = "pulumi:pulumi:Stack";
/** Loaded by runPlan once the stack file and its config are known good (see there). */
let pulumi: typeof Pulumi;
let settings: unknown;
let previous: Promise<unknown> = Promise.resolve();

export function runPlan(options: PlanOptions): Promise<Plan> {
  const run = previous.then(() => planAlone(options));
  previous = run.catch(() => {});
  return run;
}

async function planAlone(options: PlanOptions): Promise<Plan> {
  const file = loadStackFile(options.stack, options.root);
  const config = { ...file.config, ...options.config };
  // Checked before Pulumi and the program load (about 2.5 s): an unknown stack or a bad value is told in 1 s. The
  // program parses the same config again (stack.ts), as `pulumi up` runs it without this harness.
  parseStackConfig(config, options.stack);
  pulumi = await import("@pulumi/pulumi");
  settings = await import("@pulumi/pulumi/runtime/settings.js");
  const state = (await import("@pulumi/pulumi/runtime/state.js")) as unknown as {
    withLocalStorage<T>(run: () => Promise<T>): Promise<T>;
  };
  return state.withLocalStorage(() => planInStore(options, config, file.secretKeys));
}

async function planInStore(options: PlanOptions, config: Record<string, string>, secretKeys: string[]): Promise<Plan> {
  const region = config["aws:region"] ?? "us-east-1";
  pulumi.runtime.setAllConfig(config, secretKeys);

  const firstPreview = options.firstPreview === true;
  const mocks = new PlanMocks(region, firstPreview ? pulumi.unknown : undefined);
  await pulumi.runtime.setMocks(mocks, PROJECT, options.stack, firstPreview);
  const requests = recordRequests();
  const { buildStack } = await import("../stack.ts");

  let built: Awaited<ReturnType<typeof buildStack>> | undefined;
  // Pulumi reads a stack trace for every resource and promise it makes (runtime/debuggable.ts); with source maps on, as
  // tsx turns them on, each is mapped, a quarter or more of a plan's time. Off while the program runs: an error's own
  // trace is mapped when it is read, after.
  const sourceMaps = process.sourceMapsEnabled;
  process.setSourceMapsEnabled(false);
  try {
    await pulumi.runtime.runInPulumiStack(async () => {
      built = await buildStack();
      return built.outputs;
    });
    await (settings as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  } finally {
    process.setSourceMapsEnabled(sourceMaps);
  }
  if (requests.length !== mocks.registrations.length) throw new Error("offline plan: registrations and requests do not line up");

  // The mock monitor's URNs name only the direct parent's type; the engine's name every ancestor's but the
  // stack's. Record the engine's form, so URNs match a real preview's.
  const byUrn = new Map(requests.map((r) => [r.urn, r]));
  const realUrn = (mockUrn: string): string => {
    const req = byUrn.get(mockUrn);
    if (!req) return mockUrn;
    const chain: string[] = [];
    for (let p = byUrn.get(req.parent); p && p.type !== STACK_TYPE; p = byUrn.get(p.parent)) chain.unshift(p.type);
    return `urn:pulumi:${options.stack}::${PROJECT}::${[...chain, req.type].join("$")}::${req.name}`;
  };
  const resources: PlannedResource[] = [];
  mocks.registrations.forEach((reg, i) => {
    const req = requests[i];
    if (reg.type === STACK_TYPE) return;
    const parent = byUrn.get(req.parent)?.type === STACK_TYPE ? undefined : req.parent || undefined;
    resources.push({
      type: reg.type,
      name: reg.name,
      urn: realUrn(req.urn!),
      parent: parent && realUrn(parent),
      component: topComponent(req, byUrn),
      inputs: maskSecrets(reg.inputs) as Record<string, unknown>,
      custom: reg.custom,
      dependsOn: req.dependsOn.map(realUrn),
      propertyDependencies: Object.fromEntries(
        Object.entries(req.propertyDependencies).map(([k, urns]) => [k, urns.map(realUrn)]),
      ),
      options: req.options,
      ...(reg.outputs && { outputs: maskSecrets(reg.outputs) as Record<string, unknown> }),
    });
  });
  const stackConfig = planConfigOf(built!.config);
  return {
    stack: options.stack,
    tier: stackConfig.tier,
    region,
    config: stackConfig,
    resources,
    outputs: await resolveOutputs(built!.outputs),
    cost: null,
    policies: null,
    ...(firstPreview && { firstPreview }),
  };
}

/**
 * Wraps the mock monitor so every RegisterResource request is recorded in call order (the order the mocks'
 * newResource sees them) with its URN, parent and dependencies: what `pulumi preview --json` shows per state.
 */
function recordRequests(): Request[] {
  const requests: Request[] = [];
  const monitor = (settings as unknown as { getMonitor(): any }).getMonitor();
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: (err: unknown, resp: any) => void) => {
    const request: Request = {
      type: req.getType(),
      name: req.getName(),
      parent: req.getParent(),
      custom: req.getCustom(),
      dependsOn: [...new Set<string>(req.getDependenciesList())],
      propertyDependencies: Object.fromEntries(
        [...req.getPropertydependenciesMap().entries()]
          .map(([key, deps]: [string, any]): [string, string[]] => [key, deps.getUrnsList()])
          .filter(([, urns]) => urns.length > 0),
      ),
      options: {
        protect: req.getProtect() || undefined,
        ignoreChanges: req.getIgnorechangesList().length ? req.getIgnorechangesList() : undefined,
        retainOnDelete: req.getRetainondelete() || undefined,
        replaceOnChanges: req.getReplaceonchangesList().length ? req.getReplaceonchangesList() : undefined,
        deleteBeforeReplace: req.getDeletebeforereplace() || undefined,
        aliases: aliasesOf(req),
        customTimeouts: customTimeoutsOf(req.getCustomtimeouts()),
      },
    };
    requests.push(request);
    register(req, (err: unknown, resp: any) => {
      if (resp) request.urn = resp.getUrn();
      callback(err, resp);
    });
  };
  return requests;
}

/** The name of the top-level component a resource sits under; "stack" for resources at the root. */
function topComponent(req: Request, byUrn: Map<string | undefined, Request>): string {
  let root = req;
  for (let p = byUrn.get(req.parent); p && p.type !== STACK_TYPE; p = byUrn.get(p.parent)) root = p;
  return root.type.startsWith(`${PROJECT}:`) ? root.name : "stack";
}

/** Secrets as SECRET_PLACEHOLDER, and (in a first preview) each value not known yet as the engine's marker. */
function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (typeof value !== "object" || value === null) return value;
  if (pulumi.isUnknown(value)) return UNKNOWN_VALUE;
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

/** The create, update and delete timeouts a registration set ("16m"), or undefined. */
function customTimeoutsOf(t: { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined) {
  const set = Object.entries({ create: t?.getCreate(), update: t?.getUpdate(), delete: t?.getDelete() }).filter(([, v]) => v);
  return set.length > 0 ? (Object.fromEntries(set) as { create?: string; update?: string; delete?: string }) : undefined;
}

/** A registration's aliases: each structured alias by its name (or its URN), and plain alias URNs; undefined if none. */
function aliasesOf(req: any): string[] | undefined {
  const structured = (req.getAliasesList() as any[]).map((a) => a.getSpec()?.getName() || a.getUrn());
  const all = [...structured, ...(req.getAliasurnsList() as string[])];
  return all.length > 0 ? all : undefined;
}
