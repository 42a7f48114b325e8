// The preflight: every check of a stack against the live account and the upstream registries, in parallel.
import { checkCharts, checkImages, DEFAULT_HTTP, type HttpOptions, message } from "./artifacts.ts";
import { checkAddons, checkClashes, checkHostedZone, checkQuotas, checkZones, whoAmI } from "./aws.ts";
import { checkEngines } from "./engines.ts";
import type { StackNeeds } from "./needs.ts";
import type { CheckResult } from "./report.ts";

/** Runs every check; throws CredentialError (only) when the account cannot be reached at all. */
export async function runPreflight(needs: StackNeeds, http: HttpOptions = DEFAULT_HTTP): Promise<CheckResult[]> {
  const identity = await whoAmI(needs.region);
  const guarded = (name: string, fix: string, run: () => Promise<CheckResult | CheckResult[] | undefined>) =>
    run().catch((err): CheckResult => ({ check: name, status: "fail", detail: message(err), fix }));
  const readAccess = "Grant the deployer read access to this API (or run with the deploy role)";
  const groups = await Promise.all([
    guarded("quotas", readAccess, () => checkQuotas(needs)),
    guarded("zones", readAccess, () => checkZones(needs)),
    guarded("names", readAccess, () => checkClashes(needs, identity)),
    guarded("EKS add-ons", readAccess, () => checkAddons(needs)),
    guarded("database engines", readAccess, () => checkEngines(needs)),
    guarded("DNS", readAccess, () => checkHostedZone(needs)),
    checkCharts(needs.charts, http),
    checkImages(needs.images, http),
  ]);
  const regionNote =
    process.env.AWS_REGION && process.env.AWS_REGION !== needs.region ? ` (AWS_REGION=${process.env.AWS_REGION} is ignored)` : "";
  return [
    {
      check: "credentials",
      status: "ok",
      detail: `account ${identity.accountId} as ${identity.arn}, region ${needs.region}${regionNote}`,
    },
    ...groups.flat().filter((r): r is CheckResult => r !== undefined),
  ];
}
