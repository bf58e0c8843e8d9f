import { percent } from "../lib/format";
import { HIGH_USAGE } from "../lib/nodes";

/** A usage bar with its percentage; amber from 75 %, red from 90 %. */
export function Meter({ value, label }: { value: number | null; label: string }) {
  if (value === null) return <span className="muted">—</span>;
  const level = value >= HIGH_USAGE ? "high" : value >= 75 ? "warn" : "ok";
  return (
    <span className="meter" title={`${label} ${percent(value)}`}>
      <span className="meter-track" aria-hidden="true">
        <span className={`meter-fill meter-${level}`} style={{ width: `${Math.min(100, Math.max(0, value))}%` }} />
      </span>
      <span className="meter-value">{percent(value)}</span>
    </span>
  );
}
