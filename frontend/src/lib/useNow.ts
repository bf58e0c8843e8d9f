import { useSyncExternalStore } from "react";

// One shared clock for relative times, ticking every 15 s, so thousands of "5 minutes ago"
// labels re-render together instead of each keeping a timer. It ticks only while something
// shows a time; the first to show one after a pause (a page opened later) reads the clock
// afresh rather than the time it stood still at.
let now = Date.now();
const listeners = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | undefined;

function subscribe(listener: () => void) {
  listeners.add(listener);
  if (!timer) {
    timer = setInterval(() => {
      now = Date.now();
      listeners.forEach((l) => l());
    }, 15_000);
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

function snapshot(): number {
  if (!timer && Math.abs(Date.now() - now) >= 1000) now = Date.now();
  return now;
}

export function useNow(): number {
  return useSyncExternalStore(subscribe, snapshot);
}
