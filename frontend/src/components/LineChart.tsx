import { useEffect, useMemo, useRef, useState } from "react";

import { exactTime } from "../lib/format";

export interface Point {
  t: number;
  v: number;
}

const HEIGHT = 150;
const PAD = { top: 10, right: 12, bottom: 22, left: 44 };

/** A second line on the same scale and times (network out beside in). */
export interface Series {
  label: string;
  points: Point[];
  color: string;
}

/** A small time-series chart (SVG), with a hover readout and a text summary for screen readers. */
export function LineChart({
  title,
  points,
  max,
  format,
  color = "var(--accent)",
  label,
  second,
}: {
  title: string;
  points: Point[];
  /** Fixed top of the scale (100 for percentages); else from the data. */
  max?: number;
  format: (v: number) => string;
  color?: string;
  /** The main line's name, when there is a `second`. */
  label?: string;
  second?: Series;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  const [hover, setHover] = useState<number | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(([entry]) => {
      if (entry) setWidth(Math.max(200, Math.round(entry.contentRect.width)));
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const geometry = useMemo(() => {
    if (points.length === 0) return null;
    const t0 = points[0]!.t;
    const t1 = points[points.length - 1]!.t;
    const span = Math.max(1, t1 - t0);
    const top = max ?? niceMax(Math.max(...points.map((p) => p.v), ...(second?.points ?? []).map((p) => p.v)));
    const innerW = width - PAD.left - PAD.right;
    const innerH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t: number) => PAD.left + ((t - t0) / span) * innerW;
    const y = (v: number) => PAD.top + innerH - (Math.min(v, top) / top) * innerH;
    const path = (ps: Point[]) => ps.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    const line = path(points);
    const area = `${line}L${x(t1).toFixed(1)},${PAD.top + innerH}L${x(t0).toFixed(1)},${PAD.top + innerH}Z`;
    const line2 = second && path(second.points);
    return { t0, t1, top, x, y, line, line2, area, innerW, innerH };
  }, [points, second, width, max]);

  const latest = points[points.length - 1];
  const peakOf = (ps: Point[]) => ps.reduce((m, p) => Math.max(m, p.v), 0);
  const hovered = hover !== null ? points[hover] : undefined;
  const hovered2 = hover !== null ? second?.points[hover] : undefined;
  // "in 1.2 MB/s · out 300 kB/s" with two lines; the value alone with one.
  const reading = (v: number, v2: number | undefined) =>
    second && v2 !== undefined ? `${label ?? ""} ${format(v)} · ${second.label} ${format(v2)}`.trim() : format(v);
  const latest2 = second?.points[second.points.length - 1];
  const peaks = reading(peakOf(points), second && peakOf(second.points));
  const summary = latest ? `${title}: now ${reading(latest.v, latest2?.v)}, peak ${peaks} over ${points.length} points` : `${title}: no data yet`;

  return (
    <figure className="chart" aria-label={summary}>
      <figcaption className="chart-head">
        <span className="chart-title">
          {title}
          {second && (
            <span className="chart-legend" aria-hidden="true">
              <span className="chart-key" style={{ borderColor: color }} /> {label}
              <span className="chart-key chart-key-dashed" style={{ borderColor: second.color }} /> {second.label}
            </span>
          )}
        </span>
        <span className="chart-value">
          {hovered ? `${reading(hovered.v, hovered2?.v)} · ${exactTime(new Date(hovered.t).toISOString())}` : latest ? reading(latest.v, latest2?.v) : "—"}
        </span>
      </figcaption>
      <div ref={box} className="chart-box">
        {!geometry ? (
          <div className="chart-empty">No samples in this period yet. Samples arrive with heartbeats, at most one a minute.</div>
        ) : (
          <svg
            width={width}
            height={HEIGHT}
            role="img"
            aria-hidden="true"
            onMouseLeave={() => setHover(null)}
            onMouseMove={(e) => {
              const rect = e.currentTarget.getBoundingClientRect();
              const px = e.clientX - rect.left;
              const t = geometry.t0 + ((px - PAD.left) / geometry.innerW) * (geometry.t1 - geometry.t0);
              setHover(nearest(points, t));
            }}
          >
            {[0, 0.5, 1].map((f) => {
              const v = geometry.top * f;
              const yy = geometry.y(v);
              return (
                <g key={f}>
                  <line x1={PAD.left} x2={width - PAD.right} y1={yy} y2={yy} className="chart-rule" />
                  <text x={PAD.left - 6} y={yy + 4} className="chart-axis" textAnchor="end">
                    {format(v)}
                  </text>
                </g>
              );
            })}
            <text x={PAD.left} y={HEIGHT - 4} className="chart-axis">
              {shortTime(geometry.t0)}
            </text>
            <text x={width - PAD.right} y={HEIGHT - 4} className="chart-axis" textAnchor="end">
              {shortTime(geometry.t1)}
            </text>
            <path d={geometry.area} fill={color} opacity={0.12} />
            <path d={geometry.line} fill="none" stroke={color} strokeWidth={1.75} strokeLinejoin="round" />
            {second && geometry.line2 && (
              <path d={geometry.line2} fill="none" stroke={second.color} strokeWidth={1.75} strokeLinejoin="round" strokeDasharray="4 3" />
            )}
            {hovered && (
              <g>
                <line x1={geometry.x(hovered.t)} x2={geometry.x(hovered.t)} y1={PAD.top} y2={PAD.top + geometry.innerH} className="chart-cursor" />
                <circle cx={geometry.x(hovered.t)} cy={geometry.y(hovered.v)} r={3.5} fill={color} />
              </g>
            )}
          </svg>
        )}
      </div>
    </figure>
  );
}

/** A round number at or above `v` for the top of a scale. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (v <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function nearest(points: Point[], t: number): number {
  let lo = 0;
  let hi = points.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid]!.t < t) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(points[lo - 1]!.t - t) < Math.abs(points[lo]!.t - t)) return lo - 1;
  return lo;
}

const timeFormat = new Intl.DateTimeFormat("en", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

function shortTime(t: number): string {
  return timeFormat.format(t);
}
