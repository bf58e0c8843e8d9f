import { useState, type FormEvent } from "react";
import { Link } from "react-router";

import { ApiError } from "../api/client";
import { useCreateNode } from "../api/queries";
import type { CreateNode, IssuedKeyResponse } from "../api/types";
import { SecretBlock } from "../components/SecretBlock";
import { describeError } from "../lib/errors";
import { parseLabels } from "../lib/nodes";
import { JoinCommand } from "../components/JoinCommand";
import { usePageTitle } from "../lib/usePageTitle";

type Way = "command" | "env";

export function AddNodePage() {
  usePageTitle("Add a node");
  const [way, setWay] = useState<Way>("command");
  return (
    <div className="page page-narrow">
      <header className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/nodes">Nodes</Link> /
          </p>
          <h1>Add a node</h1>
          <p className="muted">Install Fleetdeck on a machine and join it to this primary.</p>
        </div>
      </header>
      <div className="segmented way-choice" role="group" aria-label="How to add the node">
        <button type="button" aria-pressed={way === "command"} onClick={() => setWay("command")}>
          One command
        </button>
        <button type="button" aria-pressed={way === "env"} onClick={() => setWay("env")}>
          A .env file
        </button>
      </div>
      {way === "command" ? <JoinCommand /> : <EnvFile />}
    </div>
  );
}

/** The manual way, for machines that cannot run the install script: register, then paste a `.env`. */
function EnvFile() {
  const create = useCreateNode();
  const [name, setName] = useState("");
  const [endpoint, setEndpoint] = useState("");
  const [labels, setLabels] = useState("");
  const [id, setId] = useState("");
  const [key, setKey] = useState("");
  const [issued, setIssued] = useState<IssuedKeyResponse | null>(null);

  const error = create.error;
  const field = error instanceof ApiError ? (error.field?.replace(/\[\d+\]$/, "") ?? null) : null;
  const fieldError = (f: string) => (field === f ? describeError(error) : null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body: CreateNode = { name: name.trim(), api_endpoint: endpoint.trim(), labels: parseLabels(labels) };
    if (id.trim()) body.id = id.trim();
    if (key.trim()) body.api_key = key.trim();
    create.mutate(body, { onSuccess: setIssued });
  };

  if (issued) {
    return (
      <>
        <section className="card">
          <h2>Node {issued.node.name} added</h2>
          <p className="muted">It stays pending until the secondary sends its first heartbeat.</p>
        </section>
        <div className="notice notice-warn" role="status">
          <strong>Copy the key now.</strong> It is shown this once; Fleetdeck keeps only a hash of it. If it is lost, rotate the key on the node's page.
        </div>
        <section className="card">
          <h2>
            1. Put this in the secondary's <code>.env</code>
          </h2>
          <SecretBlock text={issued.env} label=".env" testId="env-block" />
          <h2>2. Start it</h2>
          <p>
            Copy the <code>fleetdeck</code> binary onto the machine (this primary serves its own at{" "}
            <a href="/api/download/fleetdeck" download>
              /api/download/fleetdeck
            </a>
            ), then, in the folder holding that <code>.env</code>, run <code>fleetdeck serve</code> (or set <code>ENV_FILE</code> to the file's path). It
            appears online here within seconds.
          </p>
          <details className="details">
            <summary>Only the key</summary>
            <SecretBlock text={issued.api_key} label="API key" testId="api-key" />
          </details>
        </section>
        <div className="actions">
          <Link className="button button-primary" to={`/nodes/${issued.node.id}`}>
            Watch {issued.node.name}
          </Link>
          <button
            type="button"
            className="button"
            onClick={() => {
              setIssued(null);
              setName("");
              setEndpoint("");
              setId("");
              setKey("");
              create.reset();
            }}
          >
            Add another node
          </button>
        </div>
      </>
    );
  }

  return (
    <>
      <form className="card form" onSubmit={submit} noValidate aria-label="Register a node">
        <p className="muted">Register the node here, then paste the generated settings on it.</p>
        <div className="field">
          <label className="field-label" htmlFor="name">
            Name
          </label>
          <input
            id="name"
            required
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="web-01"
            autoComplete="off"
            aria-invalid={Boolean(fieldError("name"))}
            aria-describedby="name-help"
          />
          <span id="name-help" className={fieldError("name") ? "field-error" : "field-help"}>
            {fieldError("name") ?? "Unique; letters, digits, '.', '_' or '-'."}
          </span>
        </div>
        <div className="field">
          <label className="field-label" htmlFor="endpoint">
            Endpoint
          </label>
          <input
            id="endpoint"
            required
            type="url"
            value={endpoint}
            onChange={(e) => setEndpoint(e.target.value)}
            placeholder="http://10.0.0.5:8080"
            autoComplete="off"
            aria-invalid={Boolean(fieldError("api_endpoint"))}
            aria-describedby="endpoint-help"
          />
          <span id="endpoint-help" className={fieldError("api_endpoint") ? "field-error" : "field-help"}>
            {fieldError("api_endpoint") ?? "The URL where the primary reaches this node's API."}
          </span>
        </div>
        <div className="field">
          <label className="field-label" htmlFor="labels">
            Labels
          </label>
          <input
            id="labels"
            value={labels}
            onChange={(e) => setLabels(e.target.value)}
            placeholder="linux, amd64, gpu"
            autoComplete="off"
            aria-invalid={Boolean(fieldError("labels"))}
            aria-describedby="labels-help"
          />
          <span id="labels-help" className={fieldError("labels") ? "field-error" : "field-help"}>
            {fieldError("labels") ?? "Optional, comma-separated. Jobs are routed by label."}
          </span>
        </div>
        <details className="details">
          <summary>Advanced: bring your own ID or key</summary>
          <div className="field">
            <label className="field-label" htmlFor="node-id">
              Node ID
            </label>
            <input
              id="node-id"
              value={id}
              onChange={(e) => setId(e.target.value)}
              placeholder="generated when empty"
              className="mono"
              autoComplete="off"
              aria-invalid={Boolean(fieldError("id"))}
            />
            {fieldError("id") && <span className="field-error">{fieldError("id")}</span>}
          </div>
          <div className="field">
            <label className="field-label" htmlFor="api-key">
              API key
            </label>
            <input
              id="api-key"
              value={key}
              onChange={(e) => setKey(e.target.value)}
              placeholder="generated when empty (32–256 characters)"
              className="mono"
              autoComplete="off"
              aria-invalid={Boolean(fieldError("api_key"))}
            />
            {fieldError("api_key") && <span className="field-error">{fieldError("api_key")}</span>}
          </div>
        </details>
        {error && !field && (
          <div className="notice notice-error" role="alert">
            {describeError(error)}
          </div>
        )}
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={create.isPending}>
            {create.isPending ? "Adding…" : "Add node"}
          </button>
          <Link to="/nodes" className="button button-ghost">
            Cancel
          </Link>
        </div>
      </form>

      <section className="card card-muted" aria-labelledby="selfreg-title">
        <h2 id="selfreg-title">Or let secondaries register themselves</h2>
        <p>
          Set <code>REGISTRATION_TOKEN</code> on the primary (generate one with <code>fleetdeck keygen</code>). Each secondary started with the same token
          registers on its own, keeping the ID and key it generates in its <code>DATA_DIR</code>:
        </p>
        <pre className="code">{`NODE_IS_PRIMARY=false
PRIMARY_NODE_URL=${window.location.origin}
NODE_API_ENDPOINT=http://<this machine>:8080
REGISTRATION_TOKEN=<the primary's token>`}</pre>
        <p className="muted small">A node that registers itself shows up here as pending, then online after its first heartbeat.</p>
      </section>
    </>
  );
}
