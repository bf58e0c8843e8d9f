// The one way the UI talks to the primary: same-origin fetches that carry the session
// cookie, send the CSRF header the backend asks of state-changing requests, and turn the
// API's `{"error":{"code","message","field"}}` bodies (`ErrorBody`) into `ApiError`s.

import type { ErrorBody } from "./generated";

/** The header the backend's same-origin check accepts (backend/src/api/user_auth.rs). */
export const REQUESTED_WITH = { "X-Requested-With": "fleetdeck" } as const;

/** An error answer from the API, or a failure to reach it (`status` 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  /** For `validation_failed`: the field the error is about (`name`, `labels[1]`, `env.PATH`). */
  readonly field: string | null;

  constructor(status: number, code: string, message: string, requestId: string | null = null, field: string | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.field = field;
  }
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

export interface RequestOptions {
  signal?: AbortSignal;
}

async function request<T>(method: Method, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET") Object.assign(headers, REQUESTED_WITH);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "cannot reach the server");
  }
  const requestId = response.headers.get("X-Request-Id");
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!response.ok) {
    const error = (parsed as Partial<ErrorBody> | undefined)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? "http_" + response.status,
      error?.message ?? (response.statusText || "request failed"),
      requestId,
      error?.field ?? null,
    );
  }
  return parsed as T;
}

export const api = {
  get: <T>(path: string, options?: RequestOptions) => request<T>("GET", path, undefined, options),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  delete: <T = void>(path: string) => request<T>("DELETE", path),
};

/** `?a=1&b=2` from the defined entries of `params` ("" when none). */
export function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
