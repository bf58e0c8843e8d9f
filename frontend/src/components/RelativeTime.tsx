import { exactTime, relativeTime } from "../lib/format";
import { useNow } from "../lib/useNow";

/**
 * "5 minutes ago", with the exact time on hover (and for screen readers via title). Something
 * that happened is never shown in the future; `upcoming` is for what may lie ahead (an
 * expiry, a next try).
 */
export function RelativeTime({ at, empty = "never", upcoming = false }: { at: string | null | undefined; empty?: string; upcoming?: boolean }) {
  const now = useNow();
  if (!at) return <span className="muted">{empty}</span>;
  return (
    <time dateTime={at} title={exactTime(at)}>
      {relativeTime(at, now, { happened: !upcoming })}
    </time>
  );
}
