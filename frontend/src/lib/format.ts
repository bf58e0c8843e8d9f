// How numbers and times read in the UI.

const UNITS: [number, Intl.RelativeTimeFormatUnit][] = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Number.POSITIVE_INFINITY, "year"],
];

const relativeFormat = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/**
 * "just now", "5 minutes ago", "in 2 hours". A time that `happened` (the default) is never
 * in the future: one ahead of `now` (the server's clock ahead of the browser's) is "just now".
 */
export function relativeTime(iso: string | null | undefined, now: number = Date.now(), { happened = true } = {}): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "unknown";
  let value = (happened ? Math.min(t, now) - now : t - now) / 1000;
  if (Math.abs(value) < 10) return "just now";
  for (const [size, unit] of UNITS) {
    if (Math.abs(value) < size) return relativeFormat.format(Math.round(value), unit);
    value /= size;
  }
  return relativeFormat.format(Math.round(value), "year");
}

const exactFormat = new Intl.DateTimeFormat("en", {
  dateStyle: "medium",
  timeStyle: "medium",
});

/** The exact local time, for hovers and tables. */
export function exactTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : exactFormat.format(t);
}

/** A throughput: 1536 → "1.5 KiB/s". */
export function perSecond(n: number): string {
  return `${bytes(n)}/s`;
}

/** A size in bytes, binary units: 1536 → "1.5 KiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value >= 100 || unit === 0 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

export function percent(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return `${n < 10 ? n.toFixed(1) : Math.round(n)}%`;
}

/** used / total as a percentage, or null when unknown. */
export function ratio(used: number | undefined, total: number | undefined): number | null {
  if (!used && used !== 0) return null;
  if (!total) return null;
  return (used / total) * 100;
}

/** 93784 → "1d 2h". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m`;
}

export const count = new Intl.NumberFormat("en").format;

/** 1, "node" → "1 node"; 3, "node" → "3 nodes". */
export function plural(n: number, word: string): string {
  return `${count(n)} ${word}${n === 1 ? "" : "s"}`;
}
