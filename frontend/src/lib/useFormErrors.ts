import { useState } from "react";

import { ApiError } from "../api/client";
import { describeError, errorField } from "./errors";

interface LocalError {
  field: string;
  message: string;
}

/**
 * A form's errors, each beside the field it is about: its own checks' (`setLocalError`) and
 * the API's answer to `mutation`. `fields`: the fields the form shows now (default: any), so an
 * API error about another one goes above the buttons (`formError`) rather than nowhere;
 * `conflictField`: the field a 409 is about (a taken name).
 */
export function useFormErrors(
  mutation: { error: unknown; isError: boolean; reset: () => void },
  { fields, conflictField }: { fields?: readonly string[]; conflictField?: string } = {},
) {
  const [localError, setLocalError] = useState<LocalError | null>(null);
  const error = mutation.error;
  const apiField = conflictField && error instanceof ApiError && error.status === 409 ? conflictField : errorField(error);
  const field = localError?.field ?? (apiField && (!fields || fields.includes(apiField)) ? apiField : null);
  return {
    /** The error to show beside field `f`, if any. */
    fieldError: (f: string) => (localError?.field === f ? localError.message : field === f ? describeError(error) : null),
    /** The API's error about no field shown, for above the buttons. */
    formError: error && !field ? describeError(error) : null,
    setLocalError,
    /** An error is about what was sent: editing anything clears it (the form's `onChange`). */
    onEdit: () => {
      if (mutation.isError) mutation.reset();
      if (localError) setLocalError(null);
    },
  };
}
