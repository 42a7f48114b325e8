// Prices a real `pulumi preview --json` digest. Its shape is Pulumi's display.PreviewDigest
// (sdk/pkg/display/json.go): top-level `config` (secrets blinded), `steps[]` of {op, urn, oldState?, newState?}
// where each state is an apitype.ResourceV3 ({urn, custom, type, inputs, outputs, parent, protect, ...}).
// Inputs still unknown at preview carry the sentinel "04da6b54-80e4-46f7-96ec-b56ff0331ba9" and secrets the
// string "[secret]"; pricers treat both as "cannot price", never as zero.
// Each step puts the resource on the base side (before), the head side (after) or both; by default the CLI hides
// unchanged ("same") resources, so totals then cover the changed resources only (run with --show-sames).
import type { Plan, PlannedResource } from "../plan/types.ts";

export interface PreviewState {
  urn: string;
  custom?: boolean;
  type: string;
  id?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  parent?: string;
  protect?: boolean;
  /** Input property -> URNs of the resources its value comes from. */
  propertyDependencies?: Record<string, string[]>;
}

export interface PreviewStep {
  op: string;
  urn: string;
  provider?: string;
  oldState?: PreviewState;
  newState?: PreviewState;
  diffReasons?: string[];
  replaceReasons?: string[];
  detailedDiff?: Record<string, { kind: string; inputDiff: boolean }> | null;
}

export interface PreviewDigest {
  config?: Record<string, string>;
  steps?: PreviewStep[];
  diagnostics?: unknown[];
  duration?: number;
  changeSummary?: Record<string, number>;
  maybeCorrupt?: boolean;
}

export interface PreviewPlans {
  base: Plan;
  head: Plan;
  /** URN -> op of every step read. */
  ops: Map<string, string>;
  notes: string[];
}

const STACK_TYPE = "pulumi:pulumi:Stack";

/** Which side(s) of the change a step's states belong to (deploy.StepOp labels). */
const SIDES: Record<string, { base: "old" | "new" | null; head: "old" | "new" | null }> = {
  same: { base: "old", head: "new" },
  create: { base: null, head: "new" },
  update: { base: "old", head: "new" },
  delete: { base: "old", head: null },
  replace: { base: "old", head: "new" },
  "create-replacement": { base: null, head: "new" },
  "delete-replaced": { base: "old", head: null },
  // Already existing before the update: cost on both sides.
  import: { base: "new", head: "new" },
  "import-replacement": { base: "new", head: "new" },
  refresh: { base: "old", head: "new" },
  // Dropped from the state without deleting the cloud resource.
  discard: { base: "old", head: null },
  "discard-replaced": { base: "old", head: null },
  "remove-pending-replace": { base: "old", head: null },
  // `read` resources are looked up, not managed: not this stack's cost.
  read: { base: null, head: null },
  "read-replacement": { base: null, head: null },
};

interface UrnParts {
  stack: string;
  project: string;
  type: string;
  name: string;
}

function parseUrn(urn: string): UrnParts {
  const m = /^urn:pulumi:([^:]*)::([^:]*)::(.*?)::(.*)$/.exec(urn);
  if (!m) throw new Error(`"${urn}" is not a Pulumi URN`);
  const qualified = m[3].split("$");
  return { stack: m[1], project: m[2], type: qualified[qualified.length - 1], name: m[4] };
}

/** A plan resource, plus what only a preview knows: outputs of existing resources and property dependencies. */
export type PreviewResource = PlannedResource & {
  outputs?: Record<string, unknown>;
  propertyDependencies?: Record<string, string[]>;
};

function toPlanned(state: PreviewState, urn: string, states: Map<string, PreviewState>, project: string): PreviewResource {
  const { name } = parseUrn(urn);
  return {
    type: state.type,
    name,
    urn,
    parent: state.parent,
    component: topComponent(state.parent, states, project),
    inputs: state.inputs ?? {},
    custom: state.custom ?? true,
    options: { protect: state.protect || undefined },
    outputs: state.outputs,
    propertyDependencies: state.propertyDependencies,
  };
}

/** The name of the top-most ancestor below the stack that is one of the project's components; "stack" otherwise. */
function topComponent(parent: string | undefined, states: Map<string, PreviewState>, project: string): string {
  let top: string | undefined;
  for (let p = parent; p && parseUrn(p).type !== STACK_TYPE; p = states.get(p)?.parent) top = p;
  if (!top) return "stack";
  const parts = parseUrn(top);
  return parts.type.startsWith(`${project}:`) ? parts.name : "stack";
}

export function plansFromPreview(digest: PreviewDigest): PreviewPlans {
  const steps = digest.steps ?? [];
  const config = digest.config ?? {};
  const notes: string[] = [];
  const first = steps.find((s) => s.urn)?.urn;
  const { stack, project } = first ? parseUrn(first) : { stack: "preview", project: "" };
  const tierKey =
    Object.keys(config).find((k) => k === `${project}:tier`) ?? Object.keys(config).find((k) => k.endsWith(":tier"));
  const tier = tierKey ? config[tierKey] : "";
  const region = config["aws:region"] ?? "us-east-1";
  if (!config["aws:region"]) notes.push("the preview's config has no aws:region; priced as us-east-1");

  const states = new Map<string, PreviewState>();
  for (const s of steps) for (const st of [s.oldState, s.newState]) if (st?.urn) states.set(st.urn, st);

  const base = new Map<string, PlannedResource>();
  const head = new Map<string, PlannedResource>();
  const ops = new Map<string, string>();
  for (const step of steps) {
    const type = step.newState?.type ?? step.oldState?.type ?? parseUrn(step.urn).type;
    if (type === STACK_TYPE) continue;
    ops.set(step.urn, step.op);
    let sides = SIDES[step.op];
    if (!sides) {
      notes.push(`step op "${step.op}" on ${step.urn} is not known; read as an update`);
      sides = SIDES.update;
    }
    const pick = (which: "old" | "new" | null) =>
      which === "old" ? (step.oldState ?? step.newState) : which === "new" ? (step.newState ?? step.oldState) : undefined;
    const b = pick(sides.base);
    const h = pick(sides.head);
    if (b) base.set(step.urn, toPlanned(b, step.urn, states, project));
    if (h) head.set(step.urn, toPlanned(h, step.urn, states, project));
  }
  if (!steps.some((s) => s.op === "same")) {
    notes.push(
      "the preview lists no unchanged resources (run `pulumi preview --json --show-sames` for full totals); totals cover the changed resources, the delta is complete",
    );
  }
  // The resolved config (budget, usage, time zone) comes from the review layer, which reads digest.config
  // through the program's own config parser (infra/review/preview-config.ts).
  const plan = (resources: PlannedResource[]): Plan => ({
    stack,
    tier,
    region,
    config: null,
    resources,
    outputs: {},
    cost: null,
    policies: null,
  });
  return { base: plan([...base.values()]), head: plan([...head.values()]), ops, notes };
}
