// Follows one job's output over /api/jobs/:id/logs/ws: reconnects after a drop (or a
// "resync") from the last seq it applied, so the lines shown have no gap and no duplicate,
// and re-renders at most every RENDER_EVERY ms however fast the chunks come.
import { useEffect, useState } from "react";

import type { JobState } from "../api/types";
import { LogFollower, LogLines, logSocketUrl, parseLogMessage } from "../lib/jobLog";
import { reconnectDelay, type SocketFactory, type SocketLike } from "./events";

export type LogState = "connecting" | "live" | "reconnecting" | "ended";

const RENDER_EVERY = 80;

const defaultFactory: SocketFactory = (url) => new WebSocket(url);

export interface JobLog {
  state: LogState;
  lines: LogLines;
  /** Changes whenever `lines` did (they are mutated in place). */
  version: number;
  end: { status: JobState; exitCode: number | null } | null;
  /** Times the socket was reopened (drops, resyncs). */
  reconnects: number;
}

export function useJobLog(jobId: string, factory: SocketFactory = defaultFactory): JobLog {
  // Kept across effect runs (a remount in StrictMode, a new factory): the next socket
  // resumes after the last chunk applied instead of replaying into the same lines.
  const [{ lines, follower }] = useState(() => ({ lines: new LogLines(), follower: new LogFollower() }));
  const [state, setState] = useState<LogState>("connecting");
  const [version, setVersion] = useState(0);
  const [end, setEnd] = useState<JobLog["end"]>(null);
  const [reconnects, setReconnects] = useState(0);

  useEffect(() => {
    let socket: SocketLike | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let render: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    let stopped = false;
    let ended = false;

    const scheduleRender = () => {
      if (render !== undefined) return;
      render = setTimeout(() => {
        render = undefined;
        setVersion((v) => v + 1);
      }, RENDER_EVERY);
    };

    const reopen = (delay: number) => {
      socket = null;
      setState("reconnecting");
      setReconnects((n) => n + 1);
      retry = setTimeout(connect, delay);
    };

    function connect() {
      if (stopped) return;
      const current = factory(logSocketUrl(window.location, jobId, follower.afterSeq));
      socket = current;
      current.onopen = () => {
        attempt = 0;
        setState("live");
      };
      current.onmessage = (ev) => {
        if (socket !== current) return;
        const message = parseLogMessage(ev.data);
        if (!message) return;
        const action = follower.apply(message);
        switch (action.kind) {
          case "append":
            lines.append(action.stream, action.text);
            scheduleRender();
            return;
          case "reconnect":
            // Reopen from the last chunk applied; the server replays what came after.
            current.close();
            reopen(0);
            return;
          case "end":
            ended = true;
            setEnd({ status: action.status, exitCode: action.exitCode });
            setState("ended");
            scheduleRender();
            return;
          default:
            return;
        }
      };
      current.onerror = () => {
        // onclose follows.
      };
      current.onclose = () => {
        if (stopped || ended || socket !== current) return;
        reopen(reconnectDelay(attempt));
        attempt += 1;
      };
    }

    connect();
    return () => {
      stopped = true;
      clearTimeout(retry);
      clearTimeout(render);
      socket?.close();
    };
  }, [jobId, factory, lines, follower]);

  return { state, lines, version, end, reconnects };
}
