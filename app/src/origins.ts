/**
 * The rule for the origins allowed to call the API from a browser (CORS_ORIGINS, and the stack's `corsOrigins`, which
 * infra/config.ts checks with it before the plan): one place, so a value the plan accepts never stops the pods.
 */

/** Every origin: `Access-Control-Allow-Origin: *`, never with credentials (the API takes a Bearer key, no cookie). */
export const ANY_ORIGIN = "*";

/** How an entry is written, for the messages. */
export const ORIGIN_FORM = "scheme://host[:port] (http or https, no path or trailing slash)";

/**
 * What is wrong with one origin, if anything. A browser sends Origin serialized (RFC 6454 6.1: scheme and host in
 * lowercase, a Unicode host in punycode, no default port, no path) and hono's cors compares it as a string, so an
 * entry written otherwise (https://App.example.com, https://app.example.com:443, https://app.example.com/) would match
 * no request, silently: the message names the form browsers send. It never repeats the entry (a user:password@ in it).
 * "null", the origin of sandboxed frames and file: pages, is refused: any page can send it.
 */
export function originProblem(entry: string): string | undefined {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return "is not an http:// or https:// URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "is not an http:// or https:// URL";
  // "https://a.example,https://b.example" parses, as the host "a.example,https".
  if (entry.includes(",")) return "holds a comma (one origin per entry)";
  if (url.origin !== entry) return `is not written as a browser sends it (${url.origin})`;
  return undefined;
}

/** The origins of CORS_ORIGINS' comma-separated value, or of a list (the stack's `corsOrigins`), trimmed, none empty. */
export const originsOf = (value: string | readonly string[]): string[] =>
  (typeof value === "string" ? value.split(",") : value).map((o) => o.trim()).filter(Boolean);

/** What is wrong with a list of origins, if anything: the first bad entry, by its place, or a `*` among others. */
export function originListProblem(origins: readonly string[]): string | undefined {
  if (origins.includes(ANY_ORIGIN)) {
    return origins.length === 1 ? undefined : `${ANY_ORIGIN} admits every origin, so it stands alone`;
  }
  for (const [i, origin] of origins.entries()) {
    const problem = originProblem(origin);
    if (problem !== undefined) return `entry ${i + 1} ${problem}`;
  }
  return undefined;
}
