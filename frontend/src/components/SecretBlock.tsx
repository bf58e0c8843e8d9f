import { CopyButton } from "./CopyButton";

/** A block of text to copy (a `.env`, a key), with a copy button. */
export function SecretBlock({ text, label, testId }: { text: string; label: string; testId?: string }) {
  return (
    <div className="secret">
      <div className="secret-head">
        <span className="secret-label">{label}</span>
        <CopyButton text={text} label={`Copy ${label}`} />
      </div>
      <pre className="secret-body" data-testid={testId} tabIndex={0}>
        {text}
      </pre>
    </div>
  );
}
