// A WebSocket stand-in for the live sockets' tests (`live/*.test.ts*`): each one made is
// kept in `FakeSocket.all`, and the test opens it, feeds it frames and drops it by hand.
import type { SocketLike } from "../live/socket";

export class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: SocketLike["onopen"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  onmessage: SocketLike["onmessage"] = null;
  closed = false;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  /** What the code under test is given to open sockets with. */
  static factory = (url: string) => new FakeSocket(url) as unknown as SocketLike;

  /** The socket opened most recently. */
  static last(): FakeSocket {
    return FakeSocket.all[FakeSocket.all.length - 1]!;
  }

  close() {
    this.closed = true;
  }

  open() {
    this.onopen?.call(this as unknown as WebSocket, new Event("open"));
  }

  /** The connection ends (the server went away). */
  drop() {
    this.onclose?.call(this as unknown as WebSocket, new CloseEvent("close"));
  }

  /** The connection fails: an error, then the close, as browsers report it. */
  fail() {
    this.onerror?.call(this as unknown as WebSocket, new Event("error"));
    this.drop();
  }

  /** A text frame, as it is. */
  receive(text: string) {
    this.onmessage?.call(this as unknown as WebSocket, new MessageEvent("message", { data: text }));
  }

  /** A JSON frame. */
  send(data: unknown) {
    this.receive(JSON.stringify(data));
  }
}
