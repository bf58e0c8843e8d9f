import { useVirtualizer } from "@tanstack/react-virtual";
import { useLayoutEffect, useRef, type ReactNode } from "react";

import { segmentProps } from "../lib/ansi";
import type { LogLine, LogLines } from "../lib/jobLog";

const LINE_HEIGHT = 20;
/** Characters of one line drawn; the rest is in the download. */
const MAX_LINE_CHARS = 4000;

function Line({ line }: { line: LogLine }) {
  let budget = MAX_LINE_CHARS;
  const parts: ReactNode[] = [];
  for (let i = 0; i < line.segments.length && budget > 0; i++) {
    const seg = line.segments[i]!;
    const text = seg.text.length > budget ? seg.text.slice(0, budget) : seg.text;
    budget -= text.length;
    const { className, style } = segmentProps(seg.style);
    const cls = [seg.stream === "stderr" ? "log-err" : null, className].filter(Boolean).join(" ");
    parts.push(
      <span key={i} className={cls || undefined} style={style}>
        {text}
      </span>,
    );
  }
  if (line.length > MAX_LINE_CHARS)
    parts.push(
      <span key="more" className="log-truncated">
        {" "}
        … {line.length - MAX_LINE_CHARS} more characters (download the log for all)
      </span>,
    );
  return <>{parts}</>;
}

/**
 * Job output, virtualized: only the lines in view are in the DOM, so a log of hundreds of
 * thousands of lines scrolls as smoothly as ten. While `follow` is on it stays at the
 * bottom; scrolling up turns it off, scrolling back to the bottom turns it on again.
 */
export function LogView({
  lines,
  version,
  follow,
  onFollowChange,
  empty,
}: {
  lines: LogLines;
  version: number;
  follow: boolean;
  onFollowChange: (follow: boolean) => void;
  empty: ReactNode;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const lastTop = useRef(0);
  const count = lines.count;
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scroller.current,
    estimateSize: () => LINE_HEIGHT,
    overscan: 20,
  });

  useLayoutEffect(() => {
    const el = scroller.current;
    if (follow && el) {
      el.scrollTop = el.scrollHeight;
      lastTop.current = el.scrollTop;
    }
  }, [version, count, follow]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < LINE_HEIGHT;
    if (el.scrollTop < lastTop.current - 2 && !atBottom && follow) onFollowChange(false);
    else if (atBottom && !follow) onFollowChange(true);
    lastTop.current = el.scrollTop;
  };

  return (
    <div className="log" ref={scroller} onScroll={onScroll} tabIndex={0} role="log" aria-label="Job output" aria-live="off" data-testid="job-log">
      {count === 0 ? (
        <div className="log-empty">{empty}</div>
      ) : (
        <div className="log-inner" style={{ height: virtualizer.getTotalSize() }}>
          {virtualizer.getVirtualItems().map((item) => {
            const line = lines.lines[item.index];
            if (!line) return null;
            const stderrOnly = line.segments.length > 0 && line.segments.every((s) => s.stream === "stderr");
            return (
              <div
                key={item.key}
                className={`log-line${stderrOnly ? " log-line-err" : ""}`}
                style={{ transform: `translateY(${item.start}px)` }}
                data-stream={stderrOnly ? "stderr" : "stdout"}
              >
                <span className="log-no" aria-hidden="true">
                  {lines.dropped + item.index + 1}
                </span>
                <span className="log-text">
                  <Line line={line} />
                </span>
              </div>
            );
          })}
        </div>
      )}
    </div>
  );
}
