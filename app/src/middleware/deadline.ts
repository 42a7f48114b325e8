import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { timeout } from "hono/timeout";
import { AppError } from "../errors.ts";
import type { AppEnv } from "../types.ts";

/**
 * Hono's timeout (a 504 once `ms` pass, while the handler runs on), with the moment of that 504 kept as the request's
 * `deadlineAt` (performance.now() ms): a handler starts no write past it, so a client told 504 that asks again does
 * not leave the write twice (a second turn, a second copy of a document without an id).
 */
export const requestDeadline = (ms: number) => {
  const message = `request took longer than ${ms} ms`;
  const answer504 = timeout(ms, () => new HTTPException(504, { message }));
  return createMiddleware<AppEnv>((c, next) => {
    const deadlineAt = performance.now() + ms;
    c.set("deadlineAt", deadlineAt);
    // For a wait that must end at the 504 (an answer slot's): whichever timer fires first, the client is told the same.
    c.set("untilDeadline", () => {
      const ended = new AbortController();
      const left = Math.max(0, deadlineAt - performance.now());
      setTimeout(() => ended.abort(new AppError(504, message, "request_timeout")), left).unref();
      return ended.signal;
    });
    return answer504(c, next);
  });
};
