/**
 * `promise`, or, once `ms` pass without it settling, a rejection with what `onDeadline` returns. `onDeadline` runs
 * once, at the deadline (a caller counts the miss or cancels its work there); the timer is cleared either way.
 */
export function beforeDeadline<T>(promise: Promise<T>, ms: number, onDeadline: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onDeadline()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
