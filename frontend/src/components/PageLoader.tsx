import type { UseQueryResult } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link } from "react-router";

import { ApiError } from "../api/client";
import { ErrorNotice } from "./ErrorNotice";

/**
 * A page about one thing `query` fetches (a node, a job, a channel to edit): "Loading node…"
 * while it comes; if it does not, the error under the way `back` (Try again, unless there is no
 * such thing); then the page itself, `children` given the thing.
 */
export function PageLoader<T>({
  query,
  noun,
  back,
  narrow = false,
  children,
}: {
  query: UseQueryResult<T>;
  noun: string;
  back: { to: string; label: string };
  narrow?: boolean;
  children: (data: T) => ReactNode;
}) {
  const className = narrow ? "page page-narrow" : "page";
  if (query.isPending) {
    return (
      <div className={className} aria-busy="true">
        <p className="muted">{`Loading ${noun}…`}</p>
      </div>
    );
  }
  if (query.isError) {
    return (
      <div className={className}>
        <p className="crumbs">
          <Link to={back.to}>{back.label}</Link> /
        </p>
        <ErrorNotice
          error={query.error}
          title={`Could not load this ${noun}`}
          onRetry={query.error instanceof ApiError && query.error.status === 404 ? undefined : () => void query.refetch()}
        />
      </div>
    );
  }
  return children(query.data);
}
