import { type IncomingHttpHeaders, STATUS_CODES } from "node:http";
import { pipeline, Readable, Transform } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { Agent, type Dispatcher, request } from "undici";
import { RequestDeadline } from "../deadline.ts";
import { upstreamFailure } from "../errors.ts";

const statusText = (status: number): string => STATUS_CODES[status] ?? "";

function webHeaders(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    for (const v of [value ?? []].flat()) headers.append(name, v);
  }
  return headers;
}

/**
 * An answer read whole (JSON, an error's text, or none) as ollama-js 0.6.4 reads one (dist/browser.mjs: `ok`,
 * `status`, `statusText`, `headers.get`, `json()`, `text()`), without a web Response. @hono/node-server replaces the
 * global Response with a lightweight one that builds undici's real Response on the first `json()` or `text()`. With
 * this and a RequestDeadline (deadline.ts), an Ollama embed or chat call against the fake took 148-193 us of CPU
 * (both sides) against 290-320 (2-core VM, median of 5 rounds); the RAG path makes two. Headers are built only when
 * read (an error answer). A streamed answer is still a web Response: once per answer, its cost does not matter.
 */
class WholeResponse {
  #headers: Headers | undefined;

  constructor(
    readonly status: number,
    private readonly rawHeaders: IncomingHttpHeaders,
    private readonly whole: string,
  ) {}

  readonly body = null;

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  get statusText(): string {
    return statusText(this.status);
  }

  get headers(): Headers {
    this.#headers ??= webHeaders(this.rawHeaders);
    return this.#headers;
  }

  async text(): Promise<string> {
    return this.whole;
  }

  async json(): Promise<unknown> {
    return JSON.parse(this.whole);
  }
}

/**
 * The Ollama client's transport: a fetch-compatible function over undici's `request` API and one keep-alive Agent
 * (the `ollama` library takes any fetch: README "Custom client", `fetch` option).
 * Not undici's fetch: the WHATWG fetch algorithm clones each request and tees its body, and builds web streams for
 * every body; against the same fake that was 0.6 ms more CPU per call than plain HTTP on this 2-core VM.
 * An answer is read whole, except a 200 to a request that asked for a stream: that one is passed on as a web stream.
 * The deadline (OLLAMA_TIMEOUT_MS) runs until the headers and a whole JSON body; on a stream it starts over with every
 * whole line, so it bounds a silence, not the length of the answer: a long answer that keeps coming is not cut (guide 000 gives "long-running agent queries" 300 s at the proxy). Bytes alone do not start it
 * over: an answer dripping one space at a time, or typed ndjson to a request that asked for none (an embed), held its
 * call, and every later ask of its question that joined it, until the upstream let go (probe BP: 24 s of 504s after
 * Ollama was well again). A streamed line that is not JSON ends the stream: ollama-js 0.6.4 (`parseJSON`) skips it
 * with a console.warn, and the answer without it was cached as whole. The caller's own signal is kept.
 * The Agent is the app's undici (^7.30.2, not Node's bundled one): 7.28.0-7.29.0 delay every request on a reused
 * connection by a setTimeout(0) (~1.3 ms; nodejs/undici#5493, fixed by a setImmediate in 7.29.1, #5769).
 */
export function fetchOverRequest(timeoutMs: number, dispatcher: Dispatcher = upstreamAgent()): typeof fetch {
  return async (input, init) => {
    const deadline = new RequestDeadline(timeoutMs);
    // Only a streamed answer comes with the caller's signal (ollama-js aborts the stream through it).
    const caller = init?.signal;
    const callerLeft = () => deadline.abort(caller?.reason);
    if (caller?.aborted) callerLeft();
    else caller?.addEventListener("abort", callerLeft, { once: true });
    const done = () => {
      deadline.clear();
      caller?.removeEventListener("abort", callerLeft);
    };
    try {
      const res = await request(String(input), {
        method: (init?.method ?? "GET") as Dispatcher.HttpMethod,
        headers: init?.headers as Record<string, string> | undefined,
        body: init?.body as string | undefined,
        signal: deadline,
        dispatcher,
      });
      // A 200 to a request that asked for a stream is one, whatever its Content-Type says, as fetch and ollama-js read
      // it: labelled otherwise (a proxy in front of Ollama), it was read whole, and ollama-js failed the answer
      // ("Missing body"). The signal first: ollama-js sends one with a stream only, so an embed's body (tens of kB)
      // is not searched.
      if (res.statusCode === 200 && caller !== undefined && askedForStream(init?.body)) {
        const lines = jsonLines(() => deadline.refresh());
        pipeline(res.body, lines, () => {});
        res.body.once("close", done);
        const stream = Readable.toWeb(lines) as ReadableStream;
        const head = { status: res.statusCode, statusText: statusText(res.statusCode), headers: webHeaders(res.headers) };
        return new Response(stream, head);
      }
      const whole = await res.body.text();
      done();
      return new WholeResponse(res.statusCode, res.headers, whole) as unknown as Response;
    } catch (err) {
      done();
      throw err;
    }
  };
}

/**
 * A keep-alive Agent for an upstream whose calls the app times itself (a RequestDeadline): undici's own headers and body
 * timeouts (300 s by default) are off, as @qdrant/js-client-rest 1.19.0 turns them off for its own (dispatcher.js),
 * or an OLLAMA_TIMEOUT_MS past 300 s ended in a 502 (UND_ERR_HEADERS_TIMEOUT) at 300 s (probe BR).
 * `maxResponseSize`: undici closes the connection past it, and the call fails (a 502).
 */
export const upstreamAgent = (opts: { maxResponseSize?: number; connectTimeoutMs?: number } = {}) =>
  new Agent({
    headersTimeout: 0,
    bodyTimeout: 0,
    maxResponseSize: opts.maxResponseSize ?? -1,
    ...(opts.connectTimeoutMs === undefined ? {} : { connect: { timeout: opts.connectTimeoutMs } }),
  });

/**
 * ollama-js sends `stream` in its JSON body (`"stream":true` only outside a string: inside one its quotes are escaped).
 */
const askedForStream = (body: unknown) => typeof body === "string" && body.includes('"stream":true');

/** The longest streamed line passed on: an Ollama chunk is a token and its counts, well under a kilobyte. */
const MAX_LINE_CHARS = 2 ** 20;
const lineTooLong = () => upstreamFailure("ollama", `a streamed line longer than ${MAX_LINE_CHARS} characters`);

/**
 * Passes on a stream's whole lines that are JSON, and only those, calling `onLine` for each; a blank line is dropped.
 * A line that is not JSON, or longer than MAX_LINE_CHARS, fails the stream before anything after it is passed on.
 * Between the socket and the web stream ollama-js reads: checked beside it, a bad line read in one chunk with the done
 * line still reached ollama-js, which skipped it (review N18), and blank lines started the deadline over.
 */
function jsonLines(onLine: () => void): Transform {
  const decoder = new StringDecoder("utf8");
  // The line begun and not yet ended, in pieces: joined once its newline comes (a long line re-joined at every chunk
  // took quadratic time).
  let begun: string[] = [];
  let begunChars = 0;
  const checked = (line: string): string | Error => {
    if (line.trim() === "") return "";
    try {
      JSON.parse(line);
    } catch {
      return upstreamFailure("ollama", `a streamed line that is not JSON: ${line}`);
    }
    onLine();
    return `${line}\n`;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const text = decoder.write(chunk);
      let out = "";
      let start = 0;
      for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
        // The whole line, its begun part and this chunk's end of it: the begun part alone passed with the rest of a
        // read (up to 64 KiB) beyond the bound.
        if (begunChars + end - start > MAX_LINE_CHARS) return callback(lineTooLong());
        const line = checked(begun.join("") + text.slice(start, end));
        if (line instanceof Error) return callback(line);
        out += line;
        begun = [];
        begunChars = 0;
        start = end + 1;
      }
      if (start < text.length) {
        begun.push(text.slice(start));
        begunChars += text.length - start;
        if (begunChars > MAX_LINE_CHARS) return callback(lineTooLong());
      }
      callback(null, out === "" ? undefined : out);
    },
    flush(callback) {
      const line = checked(begun.join("") + decoder.end());
      if (line instanceof Error) callback(line);
      else callback(null, line === "" ? undefined : line);
    },
  });
}
