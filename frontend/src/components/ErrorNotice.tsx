import { describeError } from "../lib/errors";

export function ErrorNotice({ error, title, onRetry }: { error: unknown; title?: string; onRetry?: () => void }) {
  return (
    <div className="notice notice-error" role="alert">
      <div>
        {title && <strong>{title}. </strong>}
        {describeError(error)}
      </div>
      {onRetry && (
        <button type="button" className="button button-small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
