import { describe, expect, it } from "vitest";

import { LogFollower, LogLines, logSocketUrl, parseLogMessage, type LogMessage } from "./jobLog";

const chunk = (seq: number, text = `line ${seq}\n`, stream: "stdout" | "stderr" = "stdout"): LogMessage => ({
  type: "chunk",
  seq,
  stream,
  text,
  at: "2026-11-23T19:00:00Z",
});

const textOf = (lines: LogLines) => lines.lines.map((l) => l.segments.map((s) => s.text).join(""));

describe("LogFollower", () => {
  it("applies chunks in order and ignores replays of ones it has", () => {
    const f = new LogFollower();
    expect(f.afterSeq).toBeNull();
    expect(f.apply(chunk(0))).toMatchObject({ kind: "append", text: "line 0\n" });
    expect(f.apply(chunk(1))).toMatchObject({ kind: "append" });
    expect(f.apply(chunk(1))).toEqual({ kind: "ignore" });
    expect(f.apply(chunk(0))).toEqual({ kind: "ignore" });
    expect(f.afterSeq).toBe(1);
  });

  it("asks to reconnect from the last seq on a gap or a resync, and resumes without duplicates", () => {
    const f = new LogFollower();
    f.apply(chunk(0));
    expect(f.apply(chunk(2))).toEqual({ kind: "reconnect", reason: "gap" });
    expect(f.afterSeq).toBe(0);
    expect(f.apply({ type: "resync" })).toEqual({ kind: "reconnect", reason: "resync" });
    // The new socket (after_seq=0) replays from 1; an overlap is skipped.
    expect(f.apply(chunk(0))).toEqual({ kind: "ignore" });
    expect(f.apply(chunk(1))).toMatchObject({ kind: "append" });
    expect(f.apply(chunk(2))).toMatchObject({ kind: "append" });
    expect(f.apply({ type: "end", status: "succeeded", exit_code: 0 })).toEqual({ kind: "end", status: "succeeded", exitCode: 0 });
  });

  it("builds the socket URL with after_seq once it has something", () => {
    expect(logSocketUrl({ protocol: "http:", host: "h:8080" }, "j1", null)).toBe("ws://h:8080/api/jobs/j1/logs/ws");
    expect(logSocketUrl({ protocol: "https:", host: "h" }, "j1", 41)).toBe("wss://h/api/jobs/j1/logs/ws?after_seq=41");
  });

  it("parses only well-formed messages", () => {
    expect(parseLogMessage('{"type":"resync"}')).toEqual({ type: "resync" });
    expect(parseLogMessage("not json")).toBeNull();
    expect(parseLogMessage('{"type":"chunk","seq":"1","text":"x"}')).toBeNull();
    expect(parseLogMessage(42)).toBeNull();
  });
});

describe("LogLines", () => {
  it("joins chunks that split lines and keeps blank lines", () => {
    const lines = new LogLines();
    lines.append("stdout", "hel");
    lines.append("stdout", "lo\n\nwor");
    lines.append("stdout", "ld\r\n");
    expect(textOf(lines)).toEqual(["hello", "", "world"]);
    lines.append("stdout", "next");
    expect(textOf(lines)).toEqual(["hello", "", "world", "next"]);
  });

  it("marks each segment with its stream and keeps colours per stream", () => {
    const lines = new LogLines();
    lines.append("stdout", "\x1b[32mok ");
    lines.append("stderr", "bad\n");
    lines.append("stdout", "still green\n");
    const [first, second] = lines.lines;
    expect(first!.segments.map((s) => [s.stream, s.text, s.style?.fg ?? null])).toEqual([
      ["stdout", "ok ", 2],
      ["stderr", "bad", null],
    ]);
    expect(second!.segments[0]!.style?.fg).toBe(2);
  });

  it("rewrites a line on a bare carriage return, as progress bars expect", () => {
    const lines = new LogLines();
    lines.append("stdout", "10%\r50%\r100%\ndone\n");
    expect(textOf(lines)).toEqual(["100%", "done"]);
  });

  it("keeps at most about `max` lines, counting the dropped ones", () => {
    const lines = new LogLines(100);
    for (let i = 0; i < 1000; i++) lines.append("stdout", `${i}\n`);
    expect(lines.count).toBeLessThanOrEqual(110);
    expect(lines.dropped + lines.count).toBe(1000);
    expect(textOf(lines).at(-1)).toBe("999");
    expect(textOf(lines)[0]).toBe(String(lines.dropped));
  });
});
