// A job's output as the log view shows it: the live-log protocol's bookkeeping (no gap, no
// duplicate, reconnect from the last seq) and the lines built from the chunks (ANSI parsed
// once, on arrival; at most MAX_LINES kept, the oldest dropped first).
import type { JobState, LogChunk, LogMessage } from "../api/types";
import { AnsiParser, type Segment } from "./ansi";

export type Stream = LogChunk["stream"];

export type { LogMessage };

export type FollowAction =
  | { kind: "append"; stream: Stream; text: string }
  | { kind: "ignore" }
  | { kind: "reconnect"; reason: "resync" | "gap" }
  | { kind: "end"; status: JobState; exitCode: number | null };

export function parseLogMessage(data: unknown): LogMessage | null {
  if (typeof data !== "string") return null;
  try {
    const parsed: unknown = JSON.parse(data);
    if (!parsed || typeof parsed !== "object" || !("type" in parsed)) return null;
    const m = parsed as LogMessage;
    if (m.type === "chunk" && (typeof m.seq !== "number" || typeof m.text !== "string")) return null;
    return m;
  } catch {
    return null;
  }
}

/**
 * Keeps the last sequence number applied. Chunks arrive numbered from 0 without gaps: one
 * already applied is ignored (a replay after a reconnect), one past the next expected
 * means something was missed, and the socket is reopened from the last one applied.
 */
export class LogFollower {
  lastSeq: number | null = null;

  /** The `after_seq` to connect with (none before the first chunk). */
  get afterSeq(): number | null {
    return this.lastSeq;
  }

  apply(message: LogMessage): FollowAction {
    switch (message.type) {
      case "chunk": {
        const expected = this.lastSeq === null ? 0 : this.lastSeq + 1;
        if (message.seq < expected) return { kind: "ignore" };
        if (message.seq > expected) return { kind: "reconnect", reason: "gap" };
        this.lastSeq = message.seq;
        return { kind: "append", stream: message.stream, text: message.text };
      }
      case "resync":
        return { kind: "reconnect", reason: "resync" };
      case "end":
        return { kind: "end", status: message.status, exitCode: message.exit_code };
      default:
        return { kind: "ignore" };
    }
  }
}

export function logSocketUrl(location: { protocol: string; host: string }, jobId: string, afterSeq: number | null): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = afterSeq === null ? "" : `?after_seq=${afterSeq}`;
  return `${scheme}//${location.host}/api/jobs/${encodeURIComponent(jobId)}/logs/ws${query}`;
}

export interface LogSegment extends Segment {
  stream: Stream;
}

export interface LogLine {
  segments: LogSegment[];
  /** Characters in the line. */
  length: number;
}

/** Lines kept for display; the download has everything. */
export const MAX_LINES = 50_000;

const utf8 = new TextEncoder();

/** The output as lines of styled segments. */
export class LogLines {
  readonly lines: LogLine[] = [];
  /** Lines dropped from the front to stay within `max`. */
  dropped = 0;
  /** Characters received in all. */
  chars = 0;
  /** Their size in UTF-8: the output received so far, as the API counts it (`log_bytes`). */
  bytes = 0;
  private open = false;
  private readonly parsers: Record<Stream, AnsiParser> = { stdout: new AnsiParser(), stderr: new AnsiParser() };

  constructor(private readonly max: number = MAX_LINES) {}

  append(stream: Stream, text: string): void {
    this.chars += text.length;
    this.bytes += utf8.encode(text).length;
    for (const segment of this.parsers[stream].push(text)) {
      segment.text.split("\n").forEach((piece, i) => {
        if (i > 0) {
          // A newline ends the current line (an empty one if none is open).
          if (!this.open) this.lines.push({ segments: [], length: 0 });
          this.open = false;
        }
        if (piece !== "") this.addText({ text: piece, style: segment.style, stream });
      });
    }
    // Dropped in batches: splicing a long array for every chunk would cost more than it saves.
    if (this.lines.length > this.max + Math.ceil(this.max / 10)) {
      const excess = this.lines.length - this.max;
      this.lines.splice(0, excess);
      this.dropped += excess;
    }
  }

  private addText(segment: LogSegment) {
    let current = this.open ? this.lines[this.lines.length - 1] : undefined;
    if (!current) {
      current = { segments: [], length: 0 };
      this.lines.push(current);
      this.open = true;
    }
    const line = current;
    // A carriage return (not ending a CRLF) rewrites the line, as a terminal shows progress bars.
    const parts = segment.text.split("\r");
    parts.forEach((part, i) => {
      if (i > 0 && part !== "") {
        line.segments = [];
        line.length = 0;
      }
      if (part === "") return;
      const prev = line.segments[line.segments.length - 1];
      if (prev && prev.style === segment.style && prev.stream === segment.stream) prev.text += part;
      else line.segments.push({ ...segment, text: part });
      line.length += part.length;
    });
  }

  get count(): number {
    return this.lines.length;
  }
}
