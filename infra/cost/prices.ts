// Dated on-demand price tables, one JSON file per region in prices/ (how to add one: prices/README.md).
// Keys are "<service>:<what>" ("ec2:c6i.2xlarge", "rds:postgres:db.r6i.2xlarge:multi-az"); a key that is not in
// the table is an Unpriceable resource, never a zero.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { z } from "zod";
import { Unpriceable } from "./inputs.ts";

export const HOURS_PER_MONTH = 730;

const entrySchema = z
  .object({ usd: z.number().nonnegative(), unit: z.string().min(1), source: z.string().min(1), date: z.iso.date() })
  .strict();
/** A figure that is not a list price but an expectation (the Spot discount), with where it comes from. */
const assumptionSchema = z
  .object({ value: z.number().nonnegative(), unit: z.string().min(1), source: z.string().min(1), date: z.iso.date() })
  .strict();
const tableSchema = z
  .object({
    region: z.string().min(1),
    currency: z.literal("USD"),
    date: z.iso.date(),
    prices: z.record(z.string(), entrySchema),
    assumptions: z.record(z.string(), assumptionSchema).default({}),
  })
  .strict();

export type PriceEntry = z.infer<typeof entrySchema>;
export type PriceAssumption = z.infer<typeof assumptionSchema>;

export class PriceTable {
  constructor(
    readonly region: string,
    readonly date: string,
    private readonly entries: Record<string, PriceEntry>,
    private readonly assumptions: Record<string, PriceAssumption> = {},
  ) {}

  /** An expected figure the table records beside its list prices; Unpriceable when absent. */
  assumption(key: string): PriceAssumption {
    const a = this.assumptions[key];
    if (!a) throw new Unpriceable(`no assumption "${key}" in the ${this.region} table (infra/cost/prices/${this.region}.json)`);
    return a;
  }

  /** The USD price for a key; Unpriceable when the table has no such key. */
  usd(key: string): number {
    const entry = this.entries[key];
    if (!entry) throw new Unpriceable(`no price for ${key} in the ${this.region} table (infra/cost/prices/${this.region}.json)`);
    return entry.usd;
  }

  has(key: string): boolean {
    return key in this.entries;
  }

  entry(key: string): PriceEntry | undefined {
    return this.entries[key];
  }

  keys(): string[] {
    return Object.keys(this.entries);
  }
}

const PRICES_DIR = new URL("./prices/", import.meta.url);
const cache = new Map<string, PriceTable>();

export function availableRegions(): string[] {
  return readdirSync(PRICES_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

/** The region's price table; a clear error naming the regions that have one. */
export function loadPrices(region: string): PriceTable {
  const cached = cache.get(region);
  if (cached) return cached;
  const file = new URL(`${region}.json`, PRICES_DIR);
  if (!/^[a-z0-9-]+$/.test(region) || !existsSync(file)) {
    throw new Error(
      `no price table for region "${region}"; tables exist for: ${availableRegions().join(", ")} (add one: infra/cost/prices/README.md)`,
    );
  }
  const parsed = tableSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success)
    throw new Error(
      `infra/cost/prices/${region}.json: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  if (parsed.data.region !== region) throw new Error(`infra/cost/prices/${region}.json says region "${parsed.data.region}"`);
  const table = new PriceTable(region, parsed.data.date, parsed.data.prices, parsed.data.assumptions);
  cache.set(region, table);
  return table;
}
