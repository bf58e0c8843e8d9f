import { useState, type FormEvent } from "react";
import { Link } from "react-router";

import { useCreateJoinToken, useJoinTokens, useRevokeJoinToken } from "../api/queries";
import type { CreateJoinToken, IssuedJoinToken, JoinToken } from "../api/types";
import { ConfirmDialog } from "./ConfirmDialog";
import { ErrorNotice } from "./ErrorNotice";
import { Field } from "./Form";
import { RelativeTime } from "./RelativeTime";
import { SecretBlock } from "./SecretBlock";
import { parseLabels } from "../lib/nodes";
import { useFormErrors } from "../lib/useFormErrors";

const HOUR = 3600;
const VALIDITY = [
  { seconds: HOUR, label: "1 hour" },
  { seconds: 24 * HOUR, label: "1 day" },
  { seconds: 7 * 24 * HOUR, label: "7 days" },
];

/** The one-command way to add a node: a single-use join token, and the command that uses it. */
export function JoinCommand() {
  const create = useCreateJoinToken();
  const [name, setName] = useState("");
  const [labels, setLabels] = useState("");
  const [validity, setValidity] = useState(HOUR);
  const [issued, setIssued] = useState<IssuedJoinToken | null>(null);

  const { fieldError, formError, onEdit } = useFormErrors(create, { fields: ["name", "labels", "expires_in"] });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body: CreateJoinToken = { labels: parseLabels(labels), expires_in: validity };
    if (name.trim()) body.name = name.trim();
    create.mutate(body, { onSuccess: setIssued });
  };

  return (
    <>
      <section className="card" aria-labelledby="join-title">
        <h2 id="join-title">Join a machine with one command</h2>
        <p className="muted">
          Run the command on the machine as root. It downloads Fleetdeck from this primary (nothing from the internet), checks it, writes the node's settings
          and starts it as a systemd service; the node then joins on its own and shows up here within seconds.
        </p>

        {issued ? (
          <div className="issued" data-testid="join-issued">
            <div className="notice notice-warn" role="status">
              <span>
                <strong>Copy the command now.</strong> Its token is shown this once, works for one machine, and expires{" "}
                <RelativeTime at={issued.expires_at} upcoming />.
              </span>
            </div>
            <SecretBlock text={issued.command} label="command" testId="join-command" />
            <details className="details">
              <summary>Options and requirements</summary>
              <ul className="small">
                <li>
                  The machine must reach <code>{window.location.origin}</code>. The node keeps a connection open to this primary and is reached over it, so it
                  needs no open port (behind NAT or a firewall). To have the primary call it at an address instead, add <code>--endpoint URL</code>.
                </li>
                <li>
                  <code>--prefix DIR --no-service</code> installs under a directory without systemd; <code>--binary PATH</code> installs a build for another
                  architecture.
                </li>
                <li>Running the command again later upgrades the node in place; it keeps its identity.</li>
              </ul>
            </details>
            <div className="actions">
              <button
                type="button"
                className="button"
                onClick={() => {
                  setIssued(null);
                  setName("");
                  create.reset();
                }}
              >
                Create another command
              </button>
            </div>
          </div>
        ) : (
          <form className="form" onSubmit={submit} onChange={onEdit} noValidate>
            <Field id="join-name" label="Name" error={fieldError("name")} help="Optional. Unique; letters, digits, '.', '_' or '-'.">
              {(control) => (
                <input {...control} value={name} onChange={(e) => setName(e.target.value)} placeholder="the machine's host name" autoComplete="off" />
              )}
            </Field>
            <Field
              id="join-labels"
              label="Labels"
              error={fieldError("labels")}
              help="Optional, comma-separated. Jobs are routed by label; you can change them later on the node's page."
            >
              {(control) => (
                <input {...control} value={labels} onChange={(e) => setLabels(e.target.value)} placeholder="linux, amd64, gpu" autoComplete="off" />
              )}
            </Field>
            <Field id="join-validity" label="Valid for" error={fieldError("expires_in")} help="The command works once, until then.">
              {(control) => (
                <select {...control} value={validity} onChange={(e) => setValidity(Number(e.target.value))}>
                  {VALIDITY.map((v) => (
                    <option key={v.seconds} value={v.seconds}>
                      {v.label}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            {formError && (
              <div className="notice notice-error" role="alert">
                {formError}
              </div>
            )}
            <div className="actions">
              <button type="submit" className="button button-primary" disabled={create.isPending}>
                {create.isPending ? "Creating…" : "Create join command"}
              </button>
            </div>
          </form>
        )}
      </section>
      <JoinTokens />
    </>
  );
}

/** The join tokens created lately: which are still open, which a node used. */
function JoinTokens() {
  const tokens = useJoinTokens();
  const [revoking, setRevoking] = useState<JoinToken | null>(null);
  if (tokens.isError) return <ErrorNotice error={tokens.error} title="Could not load the join tokens" />;
  if (tokens.isPending || tokens.data.items.length === 0) return null;
  return (
    <section className="card" aria-labelledby="join-tokens-title">
      <h2 id="join-tokens-title">Join tokens</h2>
      <table className="data-table">
        <thead>
          <tr>
            <th scope="col">For</th>
            <th scope="col">State</th>
            <th scope="col" className="hide-narrow">
              Created
            </th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody data-testid="join-token-rows">
          {tokens.data.items.map((t) => (
            <tr key={t.id} className={t.state === "active" ? "" : "row-dim"}>
              <td>
                <strong>{t.name ?? "any machine"}</strong>
                {t.labels.length > 0 && <div className="muted small">{t.labels.join(", ")}</div>}
              </td>
              <td>
                {t.state === "active" && (
                  <>
                    open, expires <RelativeTime at={t.expires_at} upcoming />
                  </>
                )}
                {t.state === "used" && t.used_by && (
                  <>
                    used by <Link to={`/nodes/${t.used_by}`}>this node</Link> <RelativeTime at={t.used_at} />
                  </>
                )}
                {t.state === "expired" && (
                  <>
                    expired <RelativeTime at={t.expires_at} />
                  </>
                )}
              </td>
              <td className="hide-narrow">
                <RelativeTime at={t.created_at} />
                <div className="muted small">by {t.created_by}</div>
              </td>
              <td className="right">
                {t.state === "active" && (
                  <button type="button" className="button button-small button-danger-ghost" onClick={() => setRevoking(t)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {revoking && <RevokeJoinToken token={revoking} onClose={() => setRevoking(null)} />}
    </section>
  );
}

function RevokeJoinToken({ token, onClose }: { token: JoinToken; onClose: () => void }) {
  const revoke = useRevokeJoinToken();
  return (
    <ConfirmDialog
      title="Revoke this join token?"
      confirm="Revoke"
      action={revoke}
      onConfirm={() => revoke.mutate(token.id, { onSuccess: onClose })}
      onClose={onClose}
    >
      <p>Its command stops working: a machine that runs it is refused. Nodes that joined already stay.</p>
    </ConfirmDialog>
  );
}
