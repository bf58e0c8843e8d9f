import type { UseQueryResult } from "@tanstack/react-query";
import { useMemo, useState, type ReactNode } from "react";
import { Link } from "react-router";

import { useNodeNames } from "../api/nodeNames";
import { useAlertChannels, useAlertRules, useDeleteChannel, useDeleteRule, useDeliveries, useTestChannel, type DeliveryFilter } from "../api/queries";
import type { Channel, Delivery, DeliveryStatus, Rule, TestResult } from "../api/types";
import { DeliveryStatusBadge } from "../components/DeliveryStatusBadge";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ErrorNotice } from "../components/ErrorNotice";
import { RelativeTime } from "../components/RelativeTime";
import { DELIVERY_STATUS_LABELS, DELIVERY_STATUSES, EVENT_LABELS, KIND_LABELS, MESSAGE_STATE_LABELS, conditionText, eventLabel, isMuted } from "../lib/alerts";
import { exactTime } from "../lib/format";
import { useNow } from "../lib/useNow";
import { usePageTitle } from "../lib/usePageTitle";

export function NotificationsPage() {
  usePageTitle("Notifications");
  const channels = useAlertChannels();
  const rules = useAlertRules();
  const hasChannels = (channels.data?.items.length ?? 0) > 0;

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Notifications</h1>
          <p className="muted">Messages about the fleet, sent where you will read them: channels say where, rules say when.</p>
        </div>
        <div className="actions">
          <Link to="/notifications/channels/new" className={`button${hasChannels ? "" : " button-primary"}`}>
            Add channel
          </Link>
          {hasChannels && (
            <Link to="/notifications/rules/new" className="button button-primary">
              Add rule
            </Link>
          )}
        </div>
      </header>
      <Channels channels={channels} rules={rules.data?.items ?? []} />
      <Rules rules={rules} channels={channels.data?.items ?? []} channelsLoaded={channels.isSuccess} />
      <HowItWorks />
      <Deliveries channels={channels.data?.items ?? []} />
    </div>
  );
}

/**
 * The channels' or the rules' card (`id`: "channels", for its heading's id and its error): Add in
 * its head (`add`), then the list's error, "Loading…", `empty` while there is none, or `table`;
 * `children` after it (its dialogs).
 */
function ListCard({
  id,
  title,
  add,
  query,
  empty,
  table,
  children,
}: {
  id: string;
  title: string;
  add: { to: string; label: string } | null;
  query: UseQueryResult<{ items: unknown[] }>;
  empty: ReactNode;
  table: ReactNode;
  children: ReactNode;
}) {
  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <div className="card-head">
        <h2 id={`${id}-title`}>{title}</h2>
        {add && (
          <Link to={add.to} className="button button-small">
            {add.label}
          </Link>
        )}
      </div>
      {query.isError ? (
        <ErrorNotice error={query.error} title={`Could not load the ${id}`} onRetry={() => void query.refetch()} />
      ) : query.isPending ? (
        <p className="muted">Loading…</p>
      ) : query.data.items.length === 0 ? (
        empty
      ) : (
        table
      )}
      {children}
    </section>
  );
}

/** A channel's or a rule's Edit and Delete buttons, named for screen readers. */
function EditAndDelete({ name, edit, onDelete }: { name: string; edit: string; onDelete: () => void }) {
  return (
    <>
      <Link to={edit} className="button button-small" aria-label={`Edit ${name}`}>
        Edit
      </Link>
      <button type="button" className="button button-small button-danger-ghost" onClick={onDelete} aria-label={`Delete ${name}`}>
        Delete
      </button>
    </>
  );
}

function Channels({ channels, rules }: { channels: ReturnType<typeof useAlertChannels>; rules: Rule[] }) {
  const [removing, setRemoving] = useState<Channel | null>(null);
  const items = channels.data?.items ?? [];
  return (
    <ListCard
      id="channels"
      title="Channels"
      add={items.length > 0 ? { to: "/notifications/channels/new", label: "Add channel" } : null}
      query={channels}
      empty={
        <div className="empty" data-testid="channels-empty">
          <p>
            <strong>No channels yet.</strong> Add a channel, then a rule.
          </p>
          <p className="small">
            A channel is where messages go: a webhook, ntfy, Gotify, Discord, Slack, Telegram or email. A rule then says which events are sent to it.
          </p>
          <Link to="/notifications/channels/new" className="button button-primary">
            Add a channel
          </Link>
        </div>
      }
      table={
        <div className="table-scroll">
          <table className="data-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col" className="hide-narrow">
                  URL
                </th>
                <th scope="col" className="hide-narrow">
                  Secret
                </th>
                <th scope="col">Last delivery</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody data-testid="channel-rows">
              {items.map((c) => (
                <ChannelRow key={c.id} channel={c} onRemove={() => setRemoving(c)} />
              ))}
            </tbody>
          </table>
        </div>
      }
    >
      {removing && <RemoveChannelDialog channel={removing} rules={rules} onClose={() => setRemoving(null)} />}
    </ListCard>
  );
}

const CHANNEL_COLUMNS = 6;

function ChannelRow({ channel, onRemove }: { channel: Channel; onRemove: () => void }) {
  const test = useTestChannel(channel.id);
  const last = channel.last_delivery;
  return (
    <>
      <tr>
        <td>
          <strong>{channel.name}</strong>
          {channel.summary_over !== null && <div className="muted small">summarised above {channel.summary_over} waiting</div>}
        </td>
        <td>
          {KIND_LABELS[channel.kind] ?? channel.kind}
          {channel.kind === "telegram" && channel.chat_id && <div className="muted small mono">chat {channel.chat_id}</div>}
          {channel.kind === "email" && channel.to.length > 0 && <div className="muted small">to {channel.to.join(", ")}</div>}
        </td>
        <td className="mono small hide-narrow cell-error">{channel.url}</td>
        <td className="hide-narrow">{channel.has_secret ? "set" : <span className="muted">none</span>}</td>
        <td>
          {last ? (
            <>
              <div className="actions">
                <DeliveryStatusBadge status={last.status} />
                <span className="muted small">
                  <RelativeTime at={last.at} />
                </span>
              </div>
              {last.error && <div className="small text-error cell-error">{last.error}</div>}
            </>
          ) : (
            <span className="muted">none yet</span>
          )}
        </td>
        <td className="right">
          <div className="actions">
            <button type="button" className="button button-small" onClick={() => test.mutate()} disabled={test.isPending} aria-label={`Test ${channel.name}`}>
              {test.isPending ? "Testing…" : "Test"}
            </button>
            <EditAndDelete name={channel.name} edit={`/notifications/channels/${channel.id}/edit`} onDelete={onRemove} />
          </div>
        </td>
      </tr>
      {(test.isSuccess || test.isError) && (
        <tr className="test-result">
          <td colSpan={CHANNEL_COLUMNS}>
            {test.isSuccess ? <TestAnswer result={test.data} onDismiss={() => test.reset()} /> : <ErrorNotice error={test.error} title="Could not test" />}
          </td>
        </tr>
      )}
    </>
  );
}

/** What the receiver answered a test message. */
function TestAnswer({ result, onDismiss }: { result: TestResult; onDismiss: () => void }) {
  const status = result.status !== null && !result.detail.includes(String(result.status)) ? ` (${result.status})` : "";
  return (
    <div className={`notice ${result.ok ? "notice-ok" : "notice-error"}`} role="status" data-testid="test-result">
      <div>
        {result.ok ? (
          <>
            <strong>Delivered.</strong> The receiver answered {result.status ?? "OK"}
            {result.detail ? `: ${result.detail}` : "."}
          </>
        ) : (
          <>
            <strong>Not delivered{status}.</strong> {result.detail}
          </>
        )}
      </div>
      <button type="button" className="button button-small button-ghost" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}

function RemoveChannelDialog({ channel, rules, onClose }: { channel: Channel; rules: Rule[]; onClose: () => void }) {
  const remove = useDeleteChannel();
  const using = rules.filter((r) => r.channels.includes(channel.id));
  const stranded = using.filter((r) => r.channels.length === 1);
  return (
    <ConfirmDialog
      title={`Delete channel ${channel.name}?`}
      confirm={`Delete ${channel.name}`}
      busy="Deleting…"
      action={remove}
      onConfirm={() => remove.mutate(channel.id, { onSuccess: onClose })}
      onClose={onClose}
    >
      <p>Its delivery history goes with it, and messages still waiting for it are dropped.</p>
      {using.length > 0 && (
        <p>
          {using.length === 1 ? "Rule" : "Rules"} sending to it: {using.map((r) => r.name).join(", ")}.
          {stranded.length > 0 && ` ${stranded.map((r) => r.name).join(", ")} would send nothing until given another channel.`}
        </p>
      )}
    </ConfirmDialog>
  );
}

function Rules({ rules, channels, channelsLoaded }: { rules: ReturnType<typeof useAlertRules>; channels: Channel[]; channelsLoaded: boolean }) {
  const [removing, setRemoving] = useState<Rule | null>(null);
  const now = useNow();
  const items = useMemo(() => rules.data?.items ?? [], [rules.data]);
  const names = useNodeNames(items.flatMap((r) => r.nodes));
  const channelNames = new Map(channels.map((c) => [c.id, c.name]));
  return (
    <ListCard
      id="rules"
      title="Rules"
      add={items.length > 0 && channels.length > 0 ? { to: "/notifications/rules/new", label: "Add rule" } : null}
      query={rules}
      empty={
        <div className="empty" data-testid="rules-empty">
          {channelsLoaded && channels.length === 0 ? (
            <p>No rules yet. A rule sends to channels, so add a channel first, then a rule.</p>
          ) : (
            <>
              <p>
                <strong>No rules yet.</strong> A rule says when to send: a node going offline, a job failing, a disk filling up…
              </p>
              <Link to="/notifications/rules/new" className="button button-primary">
                Add a rule
              </Link>
            </>
          )}
        </div>
      }
      table={
        <div className="table-scroll">
          <table className="data-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Event</th>
                <th scope="col">Scope</th>
                <th scope="col" className="hide-narrow">
                  When
                </th>
                <th scope="col">Channels</th>
                <th scope="col" className="hide-narrow">
                  Muted until
                </th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody data-testid="rule-rows">
              {items.map((r) => (
                <tr key={r.id}>
                  <td>
                    <strong>{r.name}</strong> {isMuted(r, now) && <span className="pill">muted</span>}
                  </td>
                  <td>{EVENT_LABELS[r.event] ?? r.event}</td>
                  <td>
                    <RuleScope rule={r} names={names} />
                  </td>
                  <td className="hide-narrow nowrap">{conditionText(r)}</td>
                  <td>
                    {r.channels.length === 0 ? (
                      <span className="text-error small">none: it sends nothing</span>
                    ) : (
                      r.channels.map((id) => (
                        <span key={id} className="tag">
                          {channelNames.get(id) ?? "removed channel"}
                        </span>
                      ))
                    )}
                  </td>
                  <td className="hide-narrow">{isMuted(r, now) ? <RelativeTime at={r.muted_until} upcoming /> : <span className="muted">—</span>}</td>
                  <td className="right">
                    <div className="actions">
                      <EditAndDelete name={r.name} edit={`/notifications/rules/${r.id}/edit`} onDelete={() => setRemoving(r)} />
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      }
    >
      {removing && <RemoveRuleDialog rule={removing} onClose={() => setRemoving(null)} />}
    </ListCard>
  );
}

function RuleScope({ rule, names }: { rule: Rule; names: ReadonlyMap<string, string> }) {
  if (rule.labels.length === 0 && rule.nodes.length === 0) return <span className="muted">all nodes</span>;
  return (
    <>
      {rule.labels.length > 0 && (
        <div>
          <span className="muted small">labels </span>
          {rule.labels.map((l) => (
            <span key={l} className="tag">
              {l}
            </span>
          ))}
        </div>
      )}
      {rule.nodes.length > 0 && (
        <div>
          <span className="muted small">nodes </span>
          {rule.nodes.map((id, i) => (
            <span key={id}>
              {i > 0 && ", "}
              <Link to={`/nodes/${id}`}>{names.get(id) ?? `${id.slice(0, 8)}…`}</Link>
            </span>
          ))}
        </div>
      )}
    </>
  );
}

function RemoveRuleDialog({ rule, onClose }: { rule: Rule; onClose: () => void }) {
  const remove = useDeleteRule();
  return (
    <ConfirmDialog
      title={`Delete rule ${rule.name}?`}
      confirm={`Delete ${rule.name}`}
      busy="Deleting…"
      action={remove}
      onConfirm={() => remove.mutate(rule.id, { onSuccess: onClose })}
      onClose={onClose}
    >
      <p>It sends nothing from now on. The messages it already sent stay in the deliveries below and on the nodes' pages.</p>
    </ConfirmDialog>
  );
}

function HowItWorks() {
  return (
    <section className="card card-muted" aria-labelledby="how-title">
      <h2 id="how-title">How messages are sent</h2>
      <ul>
        <li>
          A <strong>Node offline</strong> rule and a <strong>Node back online</strong> rule on the same channel give one “down” message and one “back” message
          per outage, not one per failed check.
        </li>
        <li>
          With <strong>for</strong> (say 5m) the condition has to last that long first: a short blip sends nothing.
        </li>
        <li>A node that flaps, going down and coming back again and again, is summarised: one message says how often, instead of one per flip.</li>
        <li>A delivery that fails is retried with backoff for up to a day; a receiver that refuses it (a 4xx answer) is not asked again.</li>
      </ul>
    </section>
  );
}

const DELIVERY_COLUMNS = 9;

function Deliveries({ channels }: { channels: Channel[] }) {
  const [status, setStatus] = useState<DeliveryStatus | "">("");
  const [channel, setChannel] = useState("");
  const filter: DeliveryFilter = useMemo(() => ({ status, channel, node: "" }), [status, channel]);
  const deliveries = useDeliveries(filter);
  const items = deliveries.data?.pages.flatMap((p) => p.items) ?? [];
  const filtered = Boolean(status || channel);
  return (
    <section className="card" aria-labelledby="deliveries-title">
      <div className="card-head">
        <h2 id="deliveries-title">Recent deliveries</h2>
        <div className="toolbar" role="search">
          <label className="field">
            <span className="sr-only">Status</span>
            <select value={status} onChange={(e) => setStatus(e.target.value as DeliveryStatus | "")} aria-label="Filter deliveries by status">
              <option value="">All statuses</option>
              {DELIVERY_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {DELIVERY_STATUS_LABELS[s]}
                </option>
              ))}
            </select>
          </label>
          {channels.length > 1 && (
            <label className="field">
              <span className="sr-only">Channel</span>
              <select value={channel} onChange={(e) => setChannel(e.target.value)} aria-label="Filter deliveries by channel">
                <option value="">All channels</option>
                {channels.map((c) => (
                  <option key={c.id} value={c.id}>
                    {c.name}
                  </option>
                ))}
              </select>
            </label>
          )}
        </div>
      </div>
      {deliveries.isError && <ErrorNotice error={deliveries.error} title="Could not load the deliveries" onRetry={() => void deliveries.refetch()} />}
      <div className="table-scroll">
        <table className="data-table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Channel</th>
              <th scope="col" className="hide-narrow">
                Rule
              </th>
              <th scope="col">Event</th>
              <th scope="col">Node</th>
              <th scope="col">Status</th>
              <th scope="col" className="hide-narrow">
                Attempts
              </th>
              <th scope="col">Last error</th>
              <th scope="col" className="hide-narrow">
                Next try
              </th>
            </tr>
          </thead>
          <tbody data-testid="delivery-rows">
            {deliveries.isPending ? (
              <tr>
                <td colSpan={DELIVERY_COLUMNS} className="muted">
                  Loading…
                </td>
              </tr>
            ) : items.length === 0 ? (
              <tr>
                <td colSpan={DELIVERY_COLUMNS} className="muted">
                  {filtered
                    ? "No delivery matches these filters."
                    : "Nothing sent yet. Each message a rule sends shows here, once per channel; the Test button's messages do not."}
                </td>
              </tr>
            ) : (
              items.map((d) => <DeliveryRow key={d.id} delivery={d} />)
            )}
          </tbody>
        </table>
      </div>
      {deliveries.hasNextPage && (
        <div className="list-more">
          <button type="button" className="button" onClick={() => void deliveries.fetchNextPage()} disabled={deliveries.isFetchingNextPage}>
            {deliveries.isFetchingNextPage ? "Loading…" : "Show older deliveries"}
          </button>
        </div>
      )}
    </section>
  );
}

function DeliveryRow({ delivery: d }: { delivery: Delivery }) {
  return (
    <tr>
      <td className="nowrap" title={exactTime(d.created_at)}>
        <RelativeTime at={d.created_at} />
      </td>
      <td>{d.channel.name}</td>
      <td className="hide-narrow">{d.rule?.name ?? <span className="muted">removed rule</span>}</td>
      <td>
        {eventLabel(d.event)} {d.state !== "firing" && <span className="pill">{MESSAGE_STATE_LABELS[d.state] ?? d.state}</span>}
        <div className="muted small cell-error">{d.text}</div>
      </td>
      <td className="nowrap">
        {d.node ? (
          <Link to={`/nodes/${d.node.id}`}>{d.node.name}</Link>
        ) : d.job_id ? (
          <Link to={`/jobs/${d.job_id}`}>job</Link>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td>
        <DeliveryStatusBadge status={d.status} />
        {d.delivered_at && (
          <div className="muted small">
            <RelativeTime at={d.delivered_at} />
          </div>
        )}
      </td>
      <td className="hide-narrow tabular">{d.attempts}</td>
      <td className="small text-error cell-error">{d.last_error ?? <span className="muted">—</span>}</td>
      <td className="hide-narrow nowrap">
        {d.status === "pending" && d.next_try_at ? <RelativeTime at={d.next_try_at} upcoming /> : <span className="muted">—</span>}
      </td>
    </tr>
  );
}
