/**
 * `run` at most once at a time. A call while it runs waits for the next run, which starts once this one ends and
 * answers every call made meanwhile: each caller's answer is read after its call (a rating acknowledged before a
 * summary was asked is in that summary), and a crowd of calls costs two runs, not one each.
 */
export function coalesce<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let next: Promise<T> | undefined;
  const start = (): Promise<T> => {
    const started = run();
    running = started;
    const ended = () => {
      if (running === started) running = undefined;
    };
    started.then(ended, ended);
    return started;
  };
  return () => {
    if (next) return next;
    if (!running) return start();
    const after = running.then(
      () => {},
      () => {},
    );
    next = after.then(() => {
      next = undefined;
      return start();
    });
    return next;
  };
}
