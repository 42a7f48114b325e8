import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { timeout } from "hono/timeout";
import { requestTimeoutMessage } from "../errors.ts";
import type { AppEnv } from "../types.ts";

/**
 * Hono's timeout (a 504 once `ms` pass, while the handler runs on), with the moment of that 504 kept as the request's
 * `deadlineAt` (performance.now() ms): a handler starts no write past it, so a client told 504 that asks again does
 * not leave the write twice (a second turn, a second copy of a document without an id). Node counts a timer's start
 * in whole milliseconds, so it may fire up to 1 ms before its time: armed 1 ms late, the 504 never comes before
 * `deadlineAt`, and a check of `deadlineAt` made after the 504 always finds it passed.
 */
export const requestDeadline = (ms: number) => {
  const answer504 = timeout(ms + 1, () => new HTTPException(504, { message: requestTimeoutMessage(ms) }));
  return createMiddleware<AppEnv>((c, next) => {
    c.set("deadlineAt", performance.now() + ms);
    return answer504(c, next);
  });
};
