import { useMemo, useState, type FormEvent, type ReactNode } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { ApiError } from "../api/client";
import { useNodeNames } from "../api/nodeNames";
import { allNodes, useAlertChannels, useAlertRule, useCreateRule, useNodeList, useUpdateRule } from "../api/queries";
import type { AlertEvent, Rule, RuleInput } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { ALERT_EVENTS, EVENT_HELP, EVENT_LABELS, KIND_LABELS, forOf, fromLocalInput, isMuted, takesFor, takesThreshold, toLocalInput } from "../lib/alerts";
import { describeError, errorField } from "../lib/errors";
import { parseLabels } from "../lib/nodes";

/** `/notifications/rules/new`, and `/notifications/rules/:id/edit`. */
export function RuleFormPage() {
  const { id = "" } = useParams();
  const rule = useAlertRule(id);
  if (!id) return <RuleForm rule={null} />;
  if (rule.isPending) {
    return (
      <div className="page page-narrow" aria-busy="true">
        <p className="muted">Loading rule…</p>
      </div>
    );
  }
  if (rule.isError) {
    return (
      <div className="page page-narrow">
        <p className="crumbs">
          <Link to="/notifications">Notifications</Link> /
        </p>
        <ErrorNotice
          error={rule.error}
          title="Could not load this rule"
          onRetry={rule.error instanceof ApiError && rule.error.status === 404 ? undefined : () => void rule.refetch()}
        />
      </div>
    );
  }
  return <RuleForm key={rule.data.id} rule={rule.data} />;
}

const ALL_NODES = { q: "", status: "", label: "" } as const;

const MUTE_FOR: [label: string, hours: number][] = [
  ["1 hour", 1],
  ["8 hours", 8],
  ["1 day", 24],
  ["1 week", 24 * 7],
];

function RuleForm({ rule }: { rule: Rule | null }) {
  const navigate = useNavigate();
  const create = useCreateRule();
  const update = useUpdateRule(rule?.id ?? "");
  const save = rule ? update : create;
  const channels = useAlertChannels();
  const channelList = channels.data?.items ?? [];

  const [name, setName] = useState(rule?.name ?? "");
  const [event, setEvent] = useState<AlertEvent>(rule?.event ?? "node_offline");
  const [threshold, setThreshold] = useState(rule?.threshold?.toString() ?? "90");
  const [wait, setWait] = useState(rule ? (forOf(rule) ?? "") : "");
  const [chosen, setChosen] = useState<string[]>(rule?.channels ?? []);
  const [labels, setLabels] = useState(rule?.labels.join(", ") ?? "");
  const [nodes, setNodes] = useState<string[]>(rule?.nodes ?? []);
  const [mutedUntil, setMutedUntil] = useState(() => (rule && isMuted(rule) ? toLocalInput(rule.muted_until) : ""));
  const [localError, setLocalError] = useState<{ field: string; message: string } | null>(null);

  const error = save.error;
  const apiField = error instanceof ApiError && error.status === 409 ? "name" : errorField(error);
  const shown = ["name", "event", "channels", "labels", "nodes", "muted_until"];
  if (takesThreshold(event)) shown.push("threshold");
  if (takesFor(event)) shown.push("for");
  const field = localError?.field ?? (apiField && shown.includes(apiField) ? apiField : null);
  const fieldError = (f: string) => (localError?.field === f ? localError.message : field === f ? describeError(error) : null);

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    setLocalError(null);
    if (!name.trim()) return setLocalError({ field: "name", message: "Name: give the rule a name." });
    if (chosen.length === 0) return setLocalError({ field: "channels", message: "Channels: choose at least one channel to send to." });
    const body: RuleInput = { name: name.trim(), event, channels: chosen, labels: parseLabels(labels), nodes };
    if (takesThreshold(event)) {
      const n = Number(threshold);
      if (!threshold.trim() || !Number.isFinite(n) || n < 0 || n > 100) {
        return setLocalError({ field: "threshold", message: "Threshold: a percentage from 0 to 100." });
      }
      body.threshold = n;
    }
    if (takesFor(event)) body.for = wait.trim() || "0s";
    if (mutedUntil) {
      const at = fromLocalInput(mutedUntil);
      if (!at) return setLocalError({ field: "muted_until", message: "Muted until: a date and time, or empty." });
      body.muted_until = at;
    } else {
      body.muted_until = null;
    }
    save.mutate(body, { onSuccess: () => void navigate("/notifications") });
  };

  const help = (f: string, id: string, children: ReactNode) => (
    <span id={id} className={fieldError(f) ? "field-error" : "field-help"}>
      {fieldError(f) ?? children}
    </span>
  );

  return (
    <div className="page page-narrow">
      <header className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/notifications">Notifications</Link> /
          </p>
          <h1>{rule ? `Edit ${rule.name}` : "Add a rule"}</h1>
          <p className="muted">A rule says when a message is sent, about which nodes, and to which channels.</p>
        </div>
      </header>
      {channels.isSuccess && channelList.length === 0 && (
        <div className="notice notice-info" role="status" data-testid="no-channels">
          <div>
            A rule sends to channels, and there is none yet. <Link to="/notifications/channels/new">Add a channel</Link> first, then come back for the rule.
          </div>
        </div>
      )}
      <form
        className="card form"
        onSubmit={onSubmit}
        onChange={() => {
          if (save.isError) save.reset();
          if (localError) setLocalError(null);
        }}
        noValidate
      >
        <div className="field">
          <label className="field-label" htmlFor="rule-name">
            Name
          </label>
          <input
            id="rule-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="web servers down"
            autoComplete="off"
            maxLength={100}
            aria-invalid={Boolean(fieldError("name"))}
            aria-describedby="rule-name-help"
          />
          {help("name", "rule-name-help", "Unique, whatever the case; every message names its rule.")}
        </div>
        <div className="field">
          <label className="field-label" htmlFor="rule-event">
            Event
          </label>
          <select
            id="rule-event"
            value={event}
            onChange={(e) => setEvent(e.target.value as AlertEvent)}
            aria-invalid={Boolean(fieldError("event"))}
            aria-describedby="rule-event-help"
          >
            {ALERT_EVENTS.map((ev) => (
              <option key={ev} value={ev}>
                {EVENT_LABELS[ev]}
              </option>
            ))}
          </select>
          {help("event", "rule-event-help", EVENT_HELP[event])}
        </div>
        {(event === "node_offline" || event === "node_unreachable" || event === "node_online") && (
          <p className="notice notice-info small" data-testid="down-and-back">
            <span>
              Pair a <strong>Node offline</strong> rule with a <strong>Node back online</strong> rule on the same channel: each outage then gives one “down”
              message and one “back” message. A node that keeps going down and coming back is summarised in one message instead of one per flip.
            </span>
          </p>
        )}
        {(takesThreshold(event) || takesFor(event)) && (
          <div className="form-row">
            {takesThreshold(event) && (
              <div className="field">
                <label className="field-label" htmlFor="rule-threshold">
                  Threshold (%)
                </label>
                <input
                  id="rule-threshold"
                  inputMode="decimal"
                  value={threshold}
                  onChange={(e) => setThreshold(e.target.value)}
                  placeholder="90"
                  autoComplete="off"
                  aria-invalid={Boolean(fieldError("threshold"))}
                  aria-describedby="rule-threshold-help"
                />
                {help("threshold", "rule-threshold-help", "Required: the message goes when use is above this percentage (0–100).")}
              </div>
            )}
            {takesFor(event) && (
              <div className="field">
                <label className="field-label" htmlFor="rule-for">
                  For
                </label>
                <input
                  id="rule-for"
                  className="mono"
                  value={wait}
                  onChange={(e) => setWait(e.target.value)}
                  placeholder="5m"
                  autoComplete="off"
                  aria-invalid={Boolean(fieldError("for"))}
                  aria-describedby="rule-for-help"
                />
                {help("for", "rule-for-help", "How long it must last before the message goes: 30s, 5m, 1h (at most 24h). Empty: at once.")}
              </div>
            )}
          </div>
        )}

        <fieldset className="fieldset" aria-describedby="rule-channels-help">
          <legend className="field-label">Channels</legend>
          {channels.isPending ? (
            <span className="muted small">Loading channels…</span>
          ) : channels.isError ? (
            <ErrorNotice error={channels.error} title="Could not load the channels" onRetry={() => void channels.refetch()} />
          ) : (
            <div className="check-list">
              {channelList.map((c) => (
                <label key={c.id} className="check">
                  <input
                    type="checkbox"
                    checked={chosen.includes(c.id)}
                    onChange={(e) => setChosen(e.target.checked ? [...chosen, c.id] : chosen.filter((id) => id !== c.id))}
                  />
                  {c.name} <span className="muted small">{KIND_LABELS[c.kind]}</span>
                </label>
              ))}
            </div>
          )}
          {help("channels", "rule-channels-help", "Where its messages go: 1 to 20 channels.")}
        </fieldset>

        <fieldset className="fieldset">
          <legend className="field-label">Which nodes</legend>
          <div className="field">
            <label className="field-label" htmlFor="rule-labels">
              Labels
            </label>
            <input
              id="rule-labels"
              value={labels}
              onChange={(e) => setLabels(e.target.value)}
              placeholder="linux, web"
              autoComplete="off"
              aria-invalid={Boolean(fieldError("labels"))}
              aria-describedby="rule-labels-help"
            />
            {help("labels", "rule-labels-help", "Optional, comma-separated: the rule covers nodes having all of them.")}
          </div>
          <NodePicker nodes={nodes} onChange={setNodes} error={fieldError("nodes")} />
          <span className="field-help">With neither labels nor nodes, the rule covers every node, including those added later.</span>
        </fieldset>

        <div className="field">
          <label className="field-label" htmlFor="rule-muted">
            Muted until
          </label>
          <div className="actions">
            <input
              id="rule-muted"
              type="datetime-local"
              value={mutedUntil}
              onChange={(e) => setMutedUntil(e.target.value)}
              aria-invalid={Boolean(fieldError("muted_until"))}
              aria-describedby="rule-muted-help"
            />
            {MUTE_FOR.map(([label, hours]) => (
              <button
                key={label}
                type="button"
                className="button button-small"
                aria-label={`Mute for ${label}`}
                onClick={() => setMutedUntil(toLocalInput(new Date(Date.now() + hours * 3600_000).toISOString()))}
              >
                {label}
              </button>
            ))}
            {mutedUntil && (
              <button type="button" className="button button-small button-ghost" onClick={() => setMutedUntil("")}>
                Unmute
              </button>
            )}
          </div>
          {help("muted_until", "rule-muted-help", "Optional: no messages until then, for planned work. Empty: not muted.")}
        </div>

        {error && !field && (
          <div className="notice notice-error" role="alert">
            {describeError(error)}
          </div>
        )}
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={save.isPending}>
            {save.isPending ? "Saving…" : rule ? "Save" : "Add rule"}
          </button>
          <Link to="/notifications" className="button button-ghost">
            Cancel
          </Link>
        </div>
      </form>
    </div>
  );
}

/** The nodes a rule names: picked from the node list, each removable. */
function NodePicker({ nodes, onChange, error }: { nodes: string[]; onChange: (nodes: string[]) => void; error: string | null }) {
  const list = useNodeList(ALL_NODES);
  const names = useNodeNames(nodes);
  const options = useMemo(
    () =>
      allNodes(list.data)
        .filter((n) => !nodes.includes(n.id))
        .sort((a, b) => a.name.localeCompare(b.name)),
    [list.data, nodes],
  );
  return (
    <div className="field">
      <label className="field-label" htmlFor="rule-nodes">
        Nodes
      </label>
      {nodes.length > 0 && (
        <div className="chips" data-testid="rule-nodes">
          {nodes.map((id) => {
            const name = names.get(id) ?? id;
            return (
              <span key={id} className="chip">
                {name}
                <button type="button" aria-label={`Remove ${name}`} onClick={() => onChange(nodes.filter((n) => n !== id))}>
                  ×
                </button>
              </span>
            );
          })}
        </div>
      )}
      <select
        id="rule-nodes"
        value=""
        onChange={(e) => {
          if (e.target.value) onChange([...nodes, e.target.value]);
        }}
        aria-invalid={Boolean(error)}
        aria-describedby="rule-nodes-help"
      >
        <option value="">{list.isPending ? "Loading nodes…" : options.length ? "Add a node…" : "No other node"}</option>
        {options.map((n) => (
          <option key={n.id} value={n.id}>
            {n.name}
            {n.is_primary ? " (primary)" : ""}
          </option>
        ))}
      </select>
      <span id="rule-nodes-help" className={error ? "field-error" : "field-help"}>
        {error ?? "Optional: only these nodes. With labels too, a node must be one of these and have the labels."}
      </span>
    </div>
  );
}
