import { exactTime, percent } from "../lib/format";
import { HIGH_USAGE } from "../lib/nodes";

/**
 * A usage bar with its percentage; amber from 75 %, red from 90 %. `asOf`: the figure is old
 * (its node is not online): greyed, and its time in the tooltip.
 */
export function Meter({ value, label, asOf }: { value: number | null; label: string; asOf?: string | null }) {
  if (value === null) return <span className="muted">—</span>;
  const level = asOf !== undefined ? "stale" : value >= HIGH_USAGE ? "high" : value >= 75 ? "warn" : "ok";
  const title = asOf !== undefined ? `${label} ${percent(value)} as of ${exactTime(asOf)}` : `${label} ${percent(value)}`;
  return (
    <span className={`meter${asOf !== undefined ? " meter-is-stale" : ""}`} title={title}>
      <span className="meter-track" aria-hidden="true">
        <span className={`meter-fill meter-${level}`} style={{ width: `${Math.min(100, Math.max(0, value))}%` }} />
      </span>
      <span className="meter-value">{percent(value)}</span>
      {asOf !== undefined && <span className="sr-only">as of {exactTime(asOf)}</span>}
    </span>
  );
}
