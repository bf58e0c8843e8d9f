import { describe, expect, it } from "vitest";

import { concurrencyLimit } from "./concurrency";

/** A task that runs until `finish` is called, counting how many run at once. */
function tasks() {
  let running = 0;
  let most = 0;
  const pending: (() => void)[] = [];
  const started: number[] = [];
  const task = (n: number) => () =>
    new Promise<number>((resolve) => {
      running += 1;
      most = Math.max(most, running);
      started.push(n);
      pending.push(() => {
        running -= 1;
        resolve(n);
      });
    });
  const finishOne = async () => {
    pending.shift()?.();
    // Let the limiter hand the slot on.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { task, finishOne, started, most: () => most, running: () => running };
}

describe("concurrencyLimit", () => {
  it("runs at most `max` tasks at once, the rest in order as slots free", async () => {
    const limit = concurrencyLimit(3);
    const t = tasks();
    const results = Array.from({ length: 10 }, (_, n) => limit(t.task(n)));
    await Promise.resolve();
    expect(t.started).toEqual([0, 1, 2]);
    while (t.running() > 0) await t.finishOne();
    expect(await Promise.all(results)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(t.started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(t.most()).toBe(3);
  });

  it("frees the slot of a task that failed", async () => {
    const limit = concurrencyLimit(1);
    await expect(limit(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(limit(() => Promise.resolve("next"))).resolves.toBe("next");
  });

  it("drops a waiting task whose request was abandoned, without running it", async () => {
    const limit = concurrencyLimit(1);
    const t = tasks();
    const first = limit(t.task(0));
    const abort = new AbortController();
    const dropped = limit(t.task(1), abort.signal);
    const third = limit(t.task(2));
    abort.abort(new Error("gone"));
    await expect(dropped).rejects.toThrow("gone");
    while (t.running() > 0) await t.finishOne();
    expect(await Promise.all([first, third])).toEqual([0, 2]);
    expect(t.started).toEqual([0, 2]);
  });

  it("does not start a task whose request was abandoned before it asked", async () => {
    const limit = concurrencyLimit(2);
    const abort = new AbortController();
    abort.abort(new Error("gone"));
    let ran = false;
    await expect(limit(async () => (ran = true), abort.signal)).rejects.toThrow("gone");
    expect(ran).toBe(false);
  });
});
