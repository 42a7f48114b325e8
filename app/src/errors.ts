import type { ContentfulStatusCode } from "hono/utils/http-status";
import { clip } from "./text.ts";

/**
 * Every error body's `code`, and the one status it comes with: what a client branches on, where `error` says why to a
 * person and may be reworded. The OpenAPI document's Error schema lists them, and app/README says what each means.
 */
export const ERROR_STATUS = {
  // The request itself
  invalid_request: 400,
  invalid_body: 400,
  query_too_long: 400,
  unknown_after: 400,
  malformed_http: 400,
  request_incomplete: 408,
  headers_too_large: 431,
  unsupported_expectation: 417,
  unsupported_media_type: 415,
  body_too_large: 413,
  not_found: 404,
  method_not_allowed: 405,
  // Its API key
  missing_api_key: 401,
  invalid_api_key: 401,
  malformed_authorization: 400,
  missing_scope: 403,
  session_forbidden: 403,
  // Limits
  rate_limited: 429,
  pipeline_full: 429,
  bodies_busy_key: 429,
  ingest_busy_key: 429,
  session_pages_busy: 429,
  bodies_busy: 503,
  ingest_busy: 503,
  // What it names
  session_not_found: 404,
  document_not_found: 404,
  answer_not_found: 404,
  session_deleted: 409,
  document_busy: 409,
  // A dependency
  postgres_unavailable: 503,
  ollama_unavailable: 503,
  qdrant_unavailable: 503,
  ollama_error: 502,
  qdrant_error: 502,
  config_error: 502,
  // Handled in the app (a question too long for the model's window is `query_too_long`, a prompt too long is asked
  // again with fewer sources): the first is sent only for a document chunk the embedding model refuses even one
  // character long, the second never.
  ollama_embed_too_long: 502,
  ollama_context_overflow: 502,
  ollama_timeout: 504,
  qdrant_timeout: 504,
  // The server
  request_timeout: 504,
  document_write_timeout: 504,
  shutting_down: 503,
  internal_error: 500,
  // Logged and counted only: the client left, and is sent nothing.
  client_closed: 499,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

/** The JSON body of every error answer. */
export const errorBody = (code: ErrorCode, error: string, details?: unknown) =>
  details === undefined ? { error, code } : { error, code, details };

/** An error that maps to an HTTP response `{error, code, details?}`; `type` is its code, and feeds agent_errors_total. */
export class AppError extends Error {
  /** Its code's (ERROR_STATUS). */
  readonly status: ContentfulStatusCode;

  constructor(
    readonly type: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.status = ERROR_STATUS[type] as ContentfulStatusCode;
  }
}

/** nginx's "client closed request": the client went away before the answer; not a server error. */
export const CLIENT_CLOSED = ERROR_STATUS.client_closed as ContentfulStatusCode;

/** What a request past REQUEST_TIMEOUT_MS is told (middleware/deadline.ts; an answer slot's wait ends with it too). */
export const requestTimeoutMessage = (ms: number) => `request took longer than ${ms} ms`;

/**
 * Credentials from the configuration (start.ts, qdrant.ts), never to be shown: an upstream's error text may echo the
 * request that carried one (a proxy in front of Qdrant answering 400 with the request's headers put QDRANT_API_KEY in
 * the client's 502 and the log line), and pino's `redact` matches field names, not text. Values under 8 characters
 * are left: too common to take out of a message.
 */
const secretValues = new Set<string>();

export function treatAsSecret(...values: Array<string | undefined>): void {
  for (const value of values) if (value !== undefined && value.length >= 8) secretValues.add(value);
}

/** `text` with every secret value replaced by `[redacted]`. */
export function withoutSecrets(text: string): string {
  let shown = text;
  for (const secret of secretValues) if (shown.includes(secret)) shown = shown.replaceAll(secret, "[redacted]");
  return shown;
}

/** The services a client may be told failed; Postgres only ever as unavailable (a 503). */
type Upstream = "ollama" | "qdrant";

export const upstreamTimeout = (service: Upstream, ms: number) =>
  new AppError(`${service}_timeout`, `${service} did not answer within ${ms} ms`);

/** `reason` may carry the upstream's error body (a proxy's HTML page, say): it is clipped. */
export const upstreamFailure = (service: Upstream, reason: string) =>
  new AppError(`${service}_error`, `${service} request failed: ${clip(withoutSecrets(reason))}`);

/**
 * Retry-After on a dependency's 503 (RFC 9110 10.2.3): how long a client should wait before asking again. A second:
 * a Postgres failover or a pod behind a Service restarting is over in seconds; a client seeing 503 again is expected
 * to back off further, as on a 429.
 */
export const RETRY_AFTER_SECONDS = 1;

export const dependencyUnavailable = (service: Upstream | "postgres", reason: string) =>
  new AppError(`${service}_unavailable`, `${service} unavailable: ${clip(withoutSecrets(reason))}`, undefined, {
    "Retry-After": String(RETRY_AFTER_SECONDS),
  });

export const isAbortError = (err: unknown): boolean =>
  err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");

/**
 * Socket errors that mean nothing could be reached to ask (no pod listening behind the Service, a name that does not
 * resolve, no route, no connection within the connect timeout): the dependency is unavailable, as opposed to one that
 * answered badly or broke off an answer. Nothing was sent, so the call may go elsewhere (ollama-pods.ts).
 */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);

/** Whether the error, or one it was caused by, is a connection that could not be made (UNREACHABLE). */
export function isUnreachable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (UNREACHABLE.has((e as { code?: string }).code ?? "")) return true;
  }
  return false;
}

/**
 * A call to `service` that got no usable answer: a 503 when nothing could be reached, else a 502 naming the error. The
 * client is told `publicReason`; the error itself is kept as the cause, and the request's log line gives it whole.
 */
export function noAnswer(service: Upstream, err: unknown): AppError {
  const reason = publicReason(err);
  const answer = isUnreachable(err) ? dependencyUnavailable(service, reason) : upstreamFailure(service, reason);
  answer.cause = err;
  return answer;
}

/**
 * What a client is told of an error: of a socket error only its call and code (`connect ECONNREFUSED`). Node's message
 * adds the host and port (`getaddrinfo ENOTFOUND ollama.agent.svc.cluster.local`), which /health/ready hides too.
 */
export function publicReason(err: unknown): string {
  const { syscall, code } = err as { syscall?: unknown; code?: unknown };
  if (err instanceof Error && typeof syscall === "string" && typeof code === "string") return `${syscall} ${code}`;
  return describe(err);
}

/** The error and each error it was caused by, for a log line: the causes name hosts and ports a client is not told. */
export function describeChain(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    parts.push(describe(e));
  }
  return parts.join(" <- ");
}

/** Short, secret-free description of an unknown error. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    const causeCode = typeof cause?.code === "string" ? cause.code : undefined;
    const named = typeof code === "string" ? code : causeCode;
    return withoutSecrets(named && !err.message.includes(named) ? `${err.message} ${named}` : err.message);
  }
  return withoutSecrets(String(err));
}
