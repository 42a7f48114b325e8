import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { timeout } from "hono/timeout";
import { requestTimeoutMessage } from "../errors.ts";
import type { AppEnv } from "../types.ts";

/**
 * Hono's timeout (a 504 once `ms` pass, while the handler runs on), with the moment of that 504 kept as the request's
 * `deadlineAt` (performance.now() ms): a handler starts no write past it, so a client told 504 that asks again does
 * not leave the write twice (a second turn, a second copy of a document without an id).
 */
export const requestDeadline = (ms: number) => {
  const answer504 = timeout(ms, () => new HTTPException(504, { message: requestTimeoutMessage(ms) }));
  return createMiddleware<AppEnv>((c, next) => {
    c.set("deadlineAt", performance.now() + ms);
    return answer504(c, next);
  });
};
