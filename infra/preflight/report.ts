// A preflight check's result and the table they are printed as.

export type Status = "ok" | "warn" | "fail";

export interface CheckResult {
  /** What was checked, e.g. "quota: G and VT on-demand vCPUs". */
  check: string;
  status: Status;
  /** What was found. */
  detail: string;
  /** What to do about it (for warn/fail): a config key, a command, a link. */
  fix?: string;
}

export function renderTable(results: CheckResult[]): string {
  const rows = results.map((r) => [r.check, r.status.toUpperCase(), r.fix ? `${r.detail}. ${r.fix}` : r.detail]);
  const header = ["check", "status", "found / what to do"];
  const widths = [0, 1].map((i) => Math.max(header[i].length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `${cells[0].padEnd(widths[0])}  ${cells[1].padEnd(widths[1])}  ${cells[2]}`;
  const failed = results.filter((r) => r.status === "fail").length;
  const warned = results.filter((r) => r.status === "warn").length;
  return [
    line(header),
    line(["-".repeat(widths[0]), "-".repeat(widths[1]), "-".repeat(18)]),
    ...rows.map(line),
    "",
    `${results.length} checks: ${failed} failed, ${warned} warnings.`,
  ].join("\n");
}
