import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { FakeSocket } from "../test/fakeSocket";
import { openReconnectingSocket, reconnectDelay, type ReconnectingSocketOptions } from "./socket";

const factory = FakeSocket.factory;
const last = () => FakeSocket.last();
/** The backoff without jitter: 1 s, 2 s, 4 s, 8 s, then 15 s. */
const steady = (attempt: number) => reconnectDelay(attempt, () => 1);

function open(overrides: Partial<ReconnectingSocketOptions> = {}) {
  let n = 0;
  const events = { opens: [] as boolean[], messages: [] as unknown[], reconnecting: 0 };
  const socket = openReconnectingSocket({
    url: () => `ws://fleet.test/ws?n=${n++}`,
    factory,
    backoff: steady,
    onOpen: (reconnected) => events.opens.push(reconnected),
    onMessage: (data) => events.messages.push(data),
    onReconnecting: () => (events.reconnecting += 1),
    ...overrides,
  });
  return { socket, events };
}

describe("openReconnectingSocket", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("connects at once, passes on messages, and says whether an open is a reconnection", () => {
    const { socket, events } = open();
    expect(FakeSocket.all.map((s) => s.url)).toEqual(["ws://fleet.test/ws?n=0"]);
    last().open();
    last().receive("hello");
    expect(events.opens).toEqual([false]);
    expect(events.messages).toEqual(["hello"]);

    last().fail();
    expect(events.reconnecting).toBe(1);
    vi.advanceTimersByTime(1000);
    // The address is asked for again: it may have changed (a log's last seq).
    expect(last().url).toBe("ws://fleet.test/ws?n=1");
    last().open();
    expect(events.opens).toEqual([false, true]);
    socket.close();
  });

  it("backs off 1 s doubling to at most 15 s while attempts fail, and starts again after an open", () => {
    const { socket } = open();
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = FakeSocket.all.length;
      last().fail();
      let waited = 0;
      while (FakeSocket.all.length === before) {
        vi.advanceTimersByTime(500);
        waited += 500;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000]);

    last().open();
    last().fail();
    vi.advanceTimersByTime(999);
    expect(FakeSocket.all).toHaveLength(8);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(9);
    socket.close();
  });

  it("counts a failed first attempt as a drop: the open after it is a reconnection", () => {
    const { socket, events } = open();
    last().fail();
    vi.advanceTimersByTime(1000);
    last().open();
    expect(events.opens).toEqual([true]);
    socket.close();
  });

  it("reopens when asked, after the delay given, without backoff, and no longer hears the old socket", () => {
    const { socket, events } = open();
    const first = last();
    first.open();
    socket.reconnect();
    expect(first.closed).toBe(true);
    expect(events.reconnecting).toBe(1);
    vi.advanceTimersByTime(0);
    expect(FakeSocket.all).toHaveLength(2);

    // A late message or close from the replaced socket changes nothing.
    first.receive("stale");
    first.fail();
    vi.advanceTimersByTime(20_000);
    expect(events.messages).toEqual([]);
    expect(FakeSocket.all).toHaveLength(2);

    socket.reconnect(5000);
    vi.advanceTimersByTime(4999);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(3);
    socket.close();
  });

  it("stops on close(): the socket is closed and nothing reconnects or is heard", () => {
    const { socket, events } = open();
    const first = last();
    first.open();
    socket.close();
    expect(first.closed).toBe(true);
    first.receive("late");
    first.fail();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(events.messages).toEqual([]);
    expect(events.reconnecting).toBe(0);
  });

  it("does not reconnect once disposed while a reconnect is pending", () => {
    const { socket } = open();
    last().fail();
    socket.close();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    socket.reconnect();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("after finish() hears the rest, and does not reconnect when the server closes", () => {
    const { socket, events } = open();
    last().open();
    socket.finish();
    last().receive("end");
    last().fail();
    vi.advanceTimersByTime(60_000);
    expect(events.messages).toEqual(["end"]);
    expect(FakeSocket.all).toHaveLength(1);
    expect(events.reconnecting).toBe(0);
    socket.close();
  });

  it("uses jittered backoff by default", () => {
    expect(reconnectDelay(0, () => 0)).toBe(500);
    expect(reconnectDelay(0, () => 1)).toBe(1000);
    expect(reconnectDelay(3, () => 0.5)).toBe(6000);
    expect(reconnectDelay(30, () => 1)).toBe(15000);
  });
});
