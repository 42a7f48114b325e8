/**
 * Runs `job` after `firstMs`, then every `everyMs`, one run at a time: a run due while the last one still goes is
 * skipped. The timers keep no process alive. `job` handles its own failures (it must not reject).
 */
export function runPeriodically(job: () => Promise<unknown>, firstMs: number, everyMs: number): { stop(): void } {
  let running = false;
  const run = () => {
    if (running) return;
    running = true;
    void job().finally(() => {
      running = false;
    });
  };
  const first = setTimeout(run, firstMs);
  first.unref();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return {
    stop: () => {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
