// The managed database engines of infra/versions.ts against what this region offers: a major AWS retired, or a
// parameter-group family that no longer matches it, would fail `pulumi up` only after the VPC and cluster exist.
import { ElastiCacheClient, paginateDescribeCacheEngineVersions } from "@aws-sdk/client-elasticache";
import { paginateDescribeDBEngineVersions, RDSClient } from "@aws-sdk/client-rds";
import { MANAGED_ENGINES } from "../versions.ts";
import type { StackNeeds } from "./needs.ts";
import type { CheckResult } from "./report.ts";

type Pin = (typeof MANAGED_ENGINES)[keyof typeof MANAGED_ENGINES];

function verdict(service: string, pin: Pin, families: string[]): CheckResult {
  const check = `${service} engine: ${pin.engine} ${pin.version}`;
  if (families.length === 0)
    return {
      check,
      status: "fail",
      detail: `${pin.engine} ${pin.version} is not offered in this region`,
      fix: "Pin a version the region offers in infra/versions.ts (MANAGED_ENGINES)",
    };
  if (!families.includes(pin.family))
    return {
      check,
      status: "fail",
      detail: `parameter group family ${pin.family} does not match (offered: ${[...new Set(families)].join(", ")})`,
      fix: "Set the family AWS reports for this version in infra/versions.ts (MANAGED_ENGINES)",
    };
  return { check, status: "ok", detail: `offered, family ${pin.family}` };
}

/** A pin names a major ("16") or a major.minor ("8.0"): AWS lists the versions under it ("16.11", "8.0"). */
const under = (pin: Pin, version: string | undefined) => version === pin.version || !!version?.startsWith(`${pin.version}.`);

/** The parameter-group families AWS lists for the versions under `pin`. */
async function familiesUnder(pin: Pin, pages: AsyncIterable<Array<{ version?: string; family?: string }>>) {
  const families: string[] = [];
  for await (const page of pages) for (const v of page) if (under(pin, v.version) && v.family) families.push(v.family);
  return families;
}

async function* mapPages<P, T>(pages: AsyncIterable<P>, rows: (page: P) => T[]): AsyncIterable<T[]> {
  for await (const page of pages) yield rows(page);
}

export async function checkEngines(needs: Pick<StackNeeds, "region">): Promise<CheckResult[]> {
  const { postgres, cache } = MANAGED_ENGINES;
  const rds = { client: new RDSClient({ region: needs.region }) };
  const elasticache = { client: new ElastiCacheClient({ region: needs.region }) };
  const [db, kv] = await Promise.all([
    familiesUnder(
      postgres,
      mapPages(paginateDescribeDBEngineVersions(rds, { Engine: postgres.engine }), (p) =>
        (p.DBEngineVersions ?? []).map((v) => ({ version: v.EngineVersion, family: v.DBParameterGroupFamily })),
      ),
    ),
    familiesUnder(
      cache,
      mapPages(paginateDescribeCacheEngineVersions(elasticache, { Engine: cache.engine }), (p) =>
        (p.CacheEngineVersions ?? []).map((v) => ({ version: v.EngineVersion, family: v.CacheParameterGroupFamily })),
      ),
    ),
  ]);
  return [verdict("RDS", postgres, db), verdict("ElastiCache", cache, kv)];
}
