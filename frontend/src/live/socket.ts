// The one way the UI keeps a WebSocket open: connect, reconnect after a drop with capped
// backoff, reopen at once when asked (a "resync", a gap), and stop for good when the
// conversation is over. The live events socket (./events.ts) and a job's log socket
// (./jobLog.ts) say only what a message means; how the socket is kept is here.

/** The part of a WebSocket the live code uses (tests pass a fake). */
export type SocketLike = Pick<WebSocket, "onopen" | "onclose" | "onerror" | "onmessage" | "close">;

export type SocketFactory = (url: string) => SocketLike;

export const browserSocket: SocketFactory = (url) => new WebSocket(url);

/** Delay before reconnect attempt `n` (0-based): 1 s doubling to 15 s, with jitter. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(15_000, 1000 * 2 ** Math.min(attempt, 4));
  return Math.round(base * (0.5 + random() * 0.5));
}

export interface ReconnectingSocketOptions {
  /** The address of each attempt, asked anew every time (a job's log resumes after its last chunk). */
  url: () => string;
  factory?: SocketFactory;
  /** Delay before reconnect attempt `n` after a drop; `reconnectDelay` unless a test says otherwise. */
  backoff?: (attempt: number) => number;
  /** A socket opened; `reconnected` unless it is the first one tried (anything may have been missed). */
  onOpen?: (reconnected: boolean) => void;
  /** A message from the current socket (one that was replaced or closed is not heard). */
  onMessage: (data: unknown) => void;
  /** The current socket is gone and another one is on its way (after a drop or `reconnect`). */
  onReconnecting?: () => void;
}

export interface ReconnectingSocket {
  /** Drops the current socket and opens a new one after `delay` ms; the backoff is not used. */
  reconnect(delay?: number): void;
  /** The conversation is over (the server closes next): when the socket closes, it stays closed. */
  finish(): void;
  /** Closes the socket and cancels any reconnect, for good; nothing is heard from it again. */
  close(): void;
}

/** Opens a socket to `options.url()` at once and keeps one open until `close()` or `finish()`. */
export function openReconnectingSocket(options: ReconnectingSocketOptions): ReconnectingSocket {
  const { url, factory = browserSocket, backoff = reconnectDelay, onOpen, onMessage, onReconnecting } = options;
  let current: SocketLike | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Failed attempts since the last open: the backoff's exponent.
  let attempt = 0;
  let sockets = 0;
  let finished = false;
  let closed = false;

  const schedule = (delay: number) => {
    current = null;
    clearTimeout(timer);
    onReconnecting?.();
    timer = setTimeout(connect, delay);
  };

  function connect() {
    timer = undefined;
    if (closed) return;
    const socket = factory(url());
    current = socket;
    sockets += 1;
    // Any socket but the first follows a drop (or a failed first attempt), or a reconnect.
    const reconnected = sockets > 1;
    socket.onopen = () => {
      if (socket !== current) return;
      attempt = 0;
      onOpen?.(reconnected);
    };
    socket.onmessage = (ev) => {
      if (socket === current) onMessage(ev.data);
    };
    socket.onerror = () => {
      // onclose follows and decides what next.
    };
    socket.onclose = () => {
      if (socket !== current || closed || finished) return;
      const delay = backoff(attempt);
      attempt += 1;
      schedule(delay);
    };
  }

  connect();
  return {
    reconnect(delay = 0) {
      if (closed) return;
      const old = current;
      schedule(delay);
      old?.close();
    },
    finish() {
      finished = true;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      const old = current;
      current = null;
      old?.close();
    },
  };
}
