// Bounded concurrency for requests that come in bursts (a page of jobs naming fifty nodes
// nobody has fetched yet): at most `max` tasks run at once, the rest wait their turn in
// order, and a task whose request was abandoned while waiting leaves the queue unrun.

export type Limited = <T>(task: () => Promise<T>, signal?: AbortSignal) => Promise<T>;

export function concurrencyLimit(max: number): Limited {
  let active = 0;
  const waiting: (() => void)[] = [];

  // A finished task hands its slot straight to the next one waiting, so a task arriving in
  // between cannot take it as well.
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active -= 1;
  };

  const acquire = (signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      if (active < max) {
        active += 1;
        resolve();
        return;
      }
      const abandon = () => {
        const at = waiting.indexOf(grant);
        if (at >= 0) waiting.splice(at, 1);
        reject(signal?.reason);
      };
      const grant = () => {
        signal?.removeEventListener("abort", abandon);
        resolve();
      };
      waiting.push(grant);
      signal?.addEventListener("abort", abandon, { once: true });
    });

  return async (task, signal) => {
    await acquire(signal);
    try {
      return await task();
    } finally {
      release();
    }
  };
}
