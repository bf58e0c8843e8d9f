import type { NodeStatus } from "../api/types";

const LABELS: Record<NodeStatus, string> = {
  online: "Online",
  offline: "Offline",
  unreachable: "Unreachable",
  pending: "Pending",
};

export function StatusBadge({ status }: { status: NodeStatus }) {
  return (
    <span className={`badge badge-${status}`} data-status={status}>
      <span className="badge-dot" aria-hidden="true" />
      {LABELS[status]}
    </span>
  );
}
