import type { ReactNode } from "react";
import { Link } from "react-router";

/** What a field's control takes: its id, whether it is invalid, and the help that describes it. */
export interface FieldControl {
  id: string;
  "aria-invalid": boolean;
  "aria-describedby": string;
}

/**
 * A form field: its label, its control (`children`, given the attributes that tie it to the
 * label and the help), and under it the help, or the error about the field in its place.
 * The help's id is the control's with `-help`.
 */
export function Field({
  id,
  label,
  help,
  error,
  children,
}: {
  id: string;
  label: ReactNode;
  help: ReactNode;
  error: string | null;
  children: (control: FieldControl) => ReactNode;
}) {
  return (
    <div className="field">
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      {children(fieldControl(id, error))}
      <FieldHelp id={`${id}-help`} error={error}>
        {help}
      </FieldHelp>
    </div>
  );
}

/** What `Field` gives its control, for a field laid out by hand (the channel secret, with a checkbox under its help). */
export function fieldControl(id: string, error: string | null): FieldControl {
  return { id, "aria-invalid": Boolean(error), "aria-describedby": `${id}-help` };
}

/** A field's help (`children`), or the error about the field in its place. */
export function FieldHelp({ id, error, children }: { id: string; error: string | null; children: ReactNode }) {
  return (
    <span id={id} className={error ? "field-error" : "field-help"}>
      {error ?? children}
    </span>
  );
}

/**
 * A form's last row: the error about no field it shows (`error`), above the submit button
 * (`busy` while sending, and disabled) and Cancel, a link back to `cancelTo`.
 */
export function FormActions({
  error,
  pending,
  submit,
  busy,
  cancelTo,
}: {
  error: string | null;
  pending: boolean;
  submit: string;
  busy: string;
  cancelTo: string;
}) {
  return (
    <>
      {error && (
        <div className="notice notice-error" role="alert">
          {error}
        </div>
      )}
      <div className="actions">
        <button type="submit" className="button button-primary" disabled={pending}>
          {pending ? busy : submit}
        </button>
        <Link to={cancelTo} className="button button-ghost">
          Cancel
        </Link>
      </div>
    </>
  );
}
