import type { ReactNode } from "react";

import { describeError } from "../lib/errors";
import { Dialog } from "./Dialog";

/**
 * Asks before a destructive action: what it does (`children`), the API's refusal if it came,
 * then the action (`confirm`, `busy` while it runs) and Cancel, focused: the safe choice.
 */
export function ConfirmDialog({
  title,
  confirm,
  busy = confirm,
  action,
  onConfirm,
  onClose,
  children,
}: {
  title: string;
  confirm: string;
  busy?: string;
  /** The mutation doing it. */
  action: { isPending: boolean; isError: boolean; error: unknown };
  onConfirm: () => void;
  onClose: () => void;
  children: ReactNode;
}) {
  return (
    <Dialog open title={title} onClose={onClose}>
      {children}
      {action.isError && (
        <div className="notice notice-error" role="alert">
          {describeError(action.error)}
        </div>
      )}
      <div className="actions">
        <button type="button" className="button button-danger" disabled={action.isPending} onClick={onConfirm}>
          {action.isPending ? busy : confirm}
        </button>
        <button type="button" className="button button-ghost" onClick={onClose} autoFocus>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}
