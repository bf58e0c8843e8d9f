import SwaggerUI from "swagger-ui-react";
import "swagger-ui-react/swagger-ui.css";
import { usePageTitle } from "../lib/usePageTitle";

/** The API's own OpenAPI document (`/api/openapi.json`), browsable. Loaded only when opened:
 * the renderer is a large chunk of its own. */
export function ApiPage() {
  usePageTitle("API reference");
  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>API reference</h1>
          <p className="muted">
            Every endpoint this primary serves, from its OpenAPI document (<a href="/api/openapi.json">/api/openapi.json</a>). Scripts authenticate with an API
            token from Settings; <code>fleetdeck ctl</code> is a ready-made client.
          </p>
        </div>
      </header>
      <section className="card api-reference" aria-label="API reference">
        <SwaggerUI url="/api/openapi.json" docExpansion="list" defaultModelsExpandDepth={0} tryItOutEnabled={false} />
      </section>
    </div>
  );
}
