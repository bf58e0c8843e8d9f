import { exactTime, relativeTime } from "../lib/format";
import { useNow } from "../lib/useNow";

/** "5 minutes ago", with the exact time on hover (and for screen readers via title). */
export function RelativeTime({ at, empty = "never" }: { at: string | null | undefined; empty?: string }) {
  const now = useNow();
  if (!at) return <span className="muted">{empty}</span>;
  return (
    <time dateTime={at} title={exactTime(at)}>
      {relativeTime(at, now)}
    </time>
  );
}
