import { act, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { useJobLog } from "./jobLog";
import { FakeSocket } from "../test/fakeSocket";

const factory = FakeSocket.factory;
const last = () => FakeSocket.last();
/** A chunk of output on `socket`, as the server sends it. */
const chunk = (socket: FakeSocket, seq: number, text = `line ${seq}\n`) =>
  socket.send({ type: "chunk", seq, stream: "stdout", text, at: "2026-11-23T19:00:00Z" });
const textOf = (lines: { lines: { segments: { text: string }[] }[] }) => lines.lines.map((l) => l.segments.map((s) => s.text).join(""));

describe("useJobLog", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("follows the output, reconnects after a drop from the last seq, and shows no duplicate", async () => {
    const { result, unmount } = renderHook(() => useJobLog("job-1", factory));
    expect(last().url).toMatch(/\/api\/jobs\/job-1\/logs\/ws$/);
    act(() => {
      last().open();
      chunk(last(), 0);
      chunk(last(), 1);
    });
    expect(result.current.state).toBe("live");
    await act(async () => vi.advanceTimersByTime(100));
    expect(textOf(result.current.lines)).toEqual(["line 0", "line 1"]);

    act(() => last().drop());
    expect(result.current.state).toBe("reconnecting");
    await act(async () => vi.advanceTimersByTime(1000));
    expect(FakeSocket.all).toHaveLength(2);
    expect(last().url).toMatch(/\?after_seq=1$/);
    act(() => {
      last().open();
      chunk(last(), 1); // a replay the server might still send
      chunk(last(), 2);
      last().send({ type: "end", status: "succeeded", exit_code: 0 });
    });
    await act(async () => vi.advanceTimersByTime(100));
    expect(textOf(result.current.lines)).toEqual(["line 0", "line 1", "line 2"]);
    expect(result.current.state).toBe("ended");
    expect(result.current.end).toEqual({ status: "succeeded", exitCode: 0 });

    // The server closes after "end": no reconnect.
    act(() => last().drop());
    await act(async () => vi.advanceTimersByTime(20_000));
    expect(FakeSocket.all).toHaveLength(2);
    unmount();
  });

  it("reopens at once on a resync or a gap, from the last chunk applied", async () => {
    const { result } = renderHook(() => useJobLog("job-2", factory));
    act(() => {
      last().open();
      chunk(last(), 0);
      last().send({ type: "resync" });
    });
    expect(FakeSocket.all[0]!.closed).toBe(true);
    await act(async () => vi.advanceTimersByTime(0));
    expect(last().url).toMatch(/after_seq=0$/);
    act(() => {
      last().open();
      chunk(last(), 5); // a gap: 1–4 missing
    });
    await act(async () => vi.advanceTimersByTime(0));
    expect(FakeSocket.all).toHaveLength(3);
    expect(last().url).toMatch(/after_seq=0$/);
    act(() => {
      last().open();
      for (let i = 1; i <= 5; i++) chunk(last(), i);
    });
    await act(async () => vi.advanceTimersByTime(100));
    expect(textOf(result.current.lines)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `line ${i}`));
    expect(result.current.reconnects).toBe(2);
  });

  it("ignores messages from a socket it has replaced", async () => {
    const { result } = renderHook(() => useJobLog("job-3", factory));
    const first = last();
    act(() => {
      first.open();
      first.send({ type: "resync" });
    });
    await act(async () => vi.advanceTimersByTime(0));
    act(() => chunk(first, 0, "stale\n"));
    await act(async () => vi.advanceTimersByTime(100));
    expect(result.current.lines.count).toBe(0);
  });
});
