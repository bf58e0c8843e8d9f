import type { DeliveryStatus } from "../api/types";
import { DELIVERY_STATUS_LABELS } from "../lib/alerts";

export function DeliveryStatusBadge({ status }: { status: DeliveryStatus }) {
  return (
    <span className={`badge badge-delivery-${status}`} data-delivery-status={status}>
      <span className={`badge-dot${status === "pending" ? " badge-dot-pulse" : ""}`} aria-hidden="true" />
      {DELIVERY_STATUS_LABELS[status] ?? status}
    </span>
  );
}
