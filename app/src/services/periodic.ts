/**
 * Runs `job` after `firstMs`, then every `everyMs`, one run at a time: a run due while the last one still goes is
 * skipped. The timers keep no process alive. `job` handles its own failures (it must not reject), and reads `stopped`
 * to end a run under way early once `stop` was called.
 */
export function runPeriodically(
  job: (stopped: () => boolean) => Promise<unknown>,
  firstMs: number,
  everyMs: number,
): { stop(): void } {
  let running = false;
  let ended = false;
  const stopped = () => ended;
  const run = () => {
    if (running) return;
    running = true;
    void job(stopped).finally(() => {
      running = false;
    });
  };
  const first = setTimeout(run, firstMs);
  first.unref();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return {
    stop: () => {
      ended = true;
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
