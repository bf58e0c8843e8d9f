import { useMemo, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { useNodeNames } from "../api/nodeNames";
import { allNodes, useAlertChannels, useAlertRule, useCreateRule, useNodeList, useUpdateRule } from "../api/queries";
import type { AlertEvent, Rule, RuleInput } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { Field, FieldHelp, FormActions } from "../components/Form";
import { PageLoader } from "../components/PageLoader";
import { ALERT_EVENTS, EVENT_HELP, EVENT_LABELS, KIND_LABELS, forOf, fromLocalInput, isMuted, takesFor, takesThreshold, toLocalInput } from "../lib/alerts";
import { parseLabels } from "../lib/nodes";
import { useFormErrors } from "../lib/useFormErrors";
import { usePageTitle } from "../lib/usePageTitle";

/** `/notifications/rules/new`, and `/notifications/rules/:id/edit`. */
export function RuleFormPage() {
  const { id = "" } = useParams();
  const rule = useAlertRule(id);
  usePageTitle(id ? `Edit ${rule.data?.name ?? "rule"}` : "New rule");
  if (!id) return <RuleForm rule={null} />;
  return (
    <PageLoader query={rule} noun="rule" back={{ to: "/notifications", label: "Notifications" }} narrow>
      {(data) => <RuleForm key={data.id} rule={data} />}
    </PageLoader>
  );
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

  const shown = ["name", "event", "channels", "labels", "nodes", "muted_until"];
  if (takesThreshold(event)) shown.push("threshold");
  if (takesFor(event)) shown.push("for");
  const { fieldError, formError, setLocalError, onEdit } = useFormErrors(save, { fields: shown, conflictField: "name" });

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
      <form className="card form" onSubmit={onSubmit} onChange={onEdit} noValidate>
        <Field id="rule-name" label="Name" error={fieldError("name")} help="Unique, whatever the case; every message names its rule.">
          {(control) => (
            <input {...control} value={name} onChange={(e) => setName(e.target.value)} placeholder="web servers down" autoComplete="off" maxLength={100} />
          )}
        </Field>
        <Field id="rule-event" label="Event" error={fieldError("event")} help={EVENT_HELP[event]}>
          {(control) => (
            <select {...control} value={event} onChange={(e) => setEvent(e.target.value as AlertEvent)}>
              {ALERT_EVENTS.map((ev) => (
                <option key={ev} value={ev}>
                  {EVENT_LABELS[ev]}
                </option>
              ))}
            </select>
          )}
        </Field>
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
              <Field
                id="rule-threshold"
                label="Threshold (%)"
                error={fieldError("threshold")}
                help="Required: the message goes when use is above this percentage (0–100)."
              >
                {(control) => (
                  <input
                    {...control}
                    inputMode="decimal"
                    value={threshold}
                    onChange={(e) => setThreshold(e.target.value)}
                    placeholder="90"
                    autoComplete="off"
                  />
                )}
              </Field>
            )}
            {takesFor(event) && (
              <Field
                id="rule-for"
                label="For"
                error={fieldError("for")}
                help="How long it must last before the message goes: 30s, 5m, 1h (at most 24h). Empty: at once."
              >
                {(control) => (
                  <input {...control} className="mono" value={wait} onChange={(e) => setWait(e.target.value)} placeholder="5m" autoComplete="off" />
                )}
              </Field>
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
          <FieldHelp id="rule-channels-help" error={fieldError("channels")}>
            Where its messages go: 1 to 20 channels.
          </FieldHelp>
        </fieldset>

        <fieldset className="fieldset">
          <legend className="field-label">Which nodes</legend>
          <Field id="rule-labels" label="Labels" error={fieldError("labels")} help="Optional, comma-separated: the rule covers nodes having all of them.">
            {(control) => <input {...control} value={labels} onChange={(e) => setLabels(e.target.value)} placeholder="linux, web" autoComplete="off" />}
          </Field>
          <NodePicker nodes={nodes} onChange={setNodes} error={fieldError("nodes")} />
          <span className="field-help">With neither labels nor nodes, the rule covers every node, including those added later.</span>
        </fieldset>

        <Field
          id="rule-muted"
          label="Muted until"
          error={fieldError("muted_until")}
          help="Optional: no messages until then, for planned work. Empty: not muted."
        >
          {(control) => (
            <div className="actions">
              <input {...control} type="datetime-local" value={mutedUntil} onChange={(e) => setMutedUntil(e.target.value)} />
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
          )}
        </Field>

        <FormActions error={formError} pending={save.isPending} submit={rule ? "Save" : "Add rule"} busy="Saving…" cancelTo="/notifications" />
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
    <Field id="rule-nodes" label="Nodes" error={error} help="Optional: only these nodes. With labels too, a node must be one of these and have the labels.">
      {(control) => (
        <>
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
            {...control}
            value=""
            onChange={(e) => {
              if (e.target.value) onChange([...nodes, e.target.value]);
            }}
          >
            <option value="">{list.isPending ? "Loading nodes…" : options.length ? "Add a node…" : "No other node"}</option>
            {options.map((n) => (
              <option key={n.id} value={n.id}>
                {n.name}
                {n.is_primary ? " (primary)" : ""}
              </option>
            ))}
          </select>
        </>
      )}
    </Field>
  );
}
