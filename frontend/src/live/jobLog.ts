// Follows one job's output over /api/jobs/:id/logs/ws: reconnects after a drop (or a
// "resync") from the last seq it applied, so the lines shown have no gap and no duplicate,
// and re-renders at most every RENDER_EVERY ms however fast the chunks come.
import { useEffect, useState } from "react";

import type { JobState } from "../api/types";
import { LogFollower, LogLines, logSocketUrl, parseLogMessage } from "../lib/jobLog";
import { browserSocket, openReconnectingSocket, type SocketFactory } from "./socket";

export type LogState = "connecting" | "live" | "reconnecting" | "ended";

const RENDER_EVERY = 80;

export interface JobLog {
  state: LogState;
  lines: LogLines;
  /** Changes whenever `lines` did (they are mutated in place). */
  version: number;
  end: { status: JobState; exitCode: number | null } | null;
  /** Times the socket was reopened (drops, resyncs). */
  reconnects: number;
}

export function useJobLog(jobId: string, factory: SocketFactory = browserSocket): JobLog {
  // Kept across effect runs (a remount in StrictMode, a new factory): the next socket
  // resumes after the last chunk applied instead of replaying into the same lines.
  const [{ lines, follower }] = useState(() => ({ lines: new LogLines(), follower: new LogFollower() }));
  const [state, setState] = useState<LogState>("connecting");
  const [version, setVersion] = useState(0);
  const [end, setEnd] = useState<JobLog["end"]>(null);
  const [reconnects, setReconnects] = useState(0);

  useEffect(() => {
    let render: ReturnType<typeof setTimeout> | undefined;
    const scheduleRender = () => {
      if (render !== undefined) return;
      render = setTimeout(() => {
        render = undefined;
        setVersion((v) => v + 1);
      }, RENDER_EVERY);
    };

    const socket = openReconnectingSocket({
      url: () => logSocketUrl(window.location, jobId, follower.afterSeq),
      factory,
      onOpen: () => setState("live"),
      onMessage: (data) => {
        const message = parseLogMessage(data);
        if (!message) return;
        const action = follower.apply(message);
        switch (action.kind) {
          case "append":
            lines.append(action.stream, action.text);
            scheduleRender();
            return;
          case "reconnect":
            // Reopen at once from the last chunk applied; the server replays what came after.
            socket.reconnect(0);
            return;
          case "end":
            // The server closes next; that close is the end, not a drop.
            socket.finish();
            setEnd({ status: action.status, exitCode: action.exitCode });
            setState("ended");
            scheduleRender();
            return;
          default:
            return;
        }
      },
      onReconnecting: () => {
        setState("reconnecting");
        setReconnects((n) => n + 1);
      },
    });
    return () => {
      clearTimeout(render);
      socket.close();
    };
  }, [jobId, factory, lines, follower]);

  return { state, lines, version, end, reconnects };
}
