import { Link } from "react-router";
import { usePageTitle } from "../lib/usePageTitle";

export function NotFoundPage() {
  usePageTitle("Not found");
  return (
    <div className="page page-narrow">
      <h1>Page not found</h1>
      <p className="muted">There is nothing at this address. It may have been a link to a node that was removed.</p>
      <Link className="button button-primary" to="/">
        Back to the dashboard
      </Link>
    </div>
  );
}
