import { useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { useAlertChannel, useCreateChannel, useUpdateChannel } from "../api/queries";
import type { Channel, ChannelInput, ChannelKind, EmailTls } from "../api/types";
import { Field, FieldHelp, FormActions, fieldControl } from "../components/Form";
import { PageLoader } from "../components/PageLoader";
import { CHANNEL_KINDS, EMAIL_TLS, KIND_LABELS, parseRecipients } from "../lib/alerts";
import { useFormErrors } from "../lib/useFormErrors";
import { usePageTitle } from "../lib/usePageTitle";

/** `/notifications/channels/new`, and `/notifications/channels/:id/edit`. */
export function ChannelFormPage() {
  const { id = "" } = useParams();
  const channel = useAlertChannel(id);
  usePageTitle(id ? `Edit ${channel.data?.name ?? "channel"}` : "New channel");
  if (!id) return <ChannelForm channel={null} />;
  return (
    <PageLoader query={channel} noun="channel" back={{ to: "/notifications", label: "Notifications" }} narrow>
      {(data) => <ChannelForm key={data.id} channel={data} />}
    </PageLoader>
  );
}

interface KindText {
  /** What the URL field is called, and what it is. */
  url: [label: string, help: string, placeholder: string] | null;
  /** What the secret is called and what it is; `required`: the kind does not work without one. */
  secret: { label: string; help: string; required: boolean } | null;
  intro: string;
}

const KINDS: Record<ChannelKind, KindText> = {
  webhook: {
    intro: "Fleetdeck POSTs each message as JSON to a URL of yours.",
    url: ["URL", "Each message is POSTed here as JSON.", "https://hooks.example.com/fleetdeck"],
    secret: {
      label: "Signing secret",
      help: "Optional. With it, each request carries X-Fleetdeck-Signature: sha256=<hex HMAC-SHA256 of the body with this secret>, for the receiver to check.",
      required: false,
    },
  },
  ntfy: {
    intro: "Push notifications to phones and desktops through an ntfy topic.",
    url: ["Topic URL", "The server and topic, e.g. https://ntfy.sh/my-fleet.", "https://ntfy.sh/my-fleet"],
    secret: { label: "Access token", help: "Optional: for a topic that needs a login (sent as a Bearer token).", required: false },
  },
  gotify: {
    intro: "Messages to a Gotify server of your own.",
    url: ["Server URL", "The Gotify server, e.g. https://gotify.example.com.", "https://gotify.example.com"],
    secret: { label: "App token", help: "Required: the token of a Gotify application (Apps → Create application).", required: true },
  },
  discord: {
    intro: "Messages in a Discord channel, through its webhook.",
    url: [
      "Webhook URL",
      "From the channel's settings, Integrations → Webhooks. The URL is itself the secret: afterwards it is shown only by its host (https://discord.com/…).",
      "https://discord.com/api/webhooks/…",
    ],
    secret: null,
  },
  slack: {
    intro: "Messages in a Slack channel, through an incoming webhook.",
    url: [
      "Webhook URL",
      "The app's incoming webhook URL. It is itself the secret: afterwards it is shown only by its host (https://hooks.slack.com/…).",
      "https://hooks.slack.com/services/…",
    ],
    secret: null,
  },
  telegram: {
    intro: "Messages from a Telegram bot to a chat, group or channel.",
    url: ["Bot API URL", "Optional: only for a Bot API server of your own. Empty: https://api.telegram.org.", "https://api.telegram.org"],
    secret: { label: "Bot token", help: "Required: the token @BotFather gave the bot.", required: true },
  },
  email: {
    intro: "Email through an SMTP server.",
    url: ["SMTP server", "smtp://host[:port]; the port defaults by the security chosen below.", "smtp://mail.example.com:587"],
    secret: { label: "Password", help: "With a user name, for a server that needs a login; leave both empty for one that does not.", required: false },
  },
};

/** The kinds whose URL is itself a secret: it is never shown again, so an edit keeps it unless a new one is typed. */
const URL_IS_SECRET: ChannelKind[] = ["discord", "slack"];

/** The fields the form shows for `kind`: an API error about one of them goes next to it, any other above the buttons. */
function fieldsOf(kind: ChannelKind): string[] {
  const fields = ["kind", "name", "summary_over"];
  if (KINDS[kind].url) fields.push("url");
  if (KINDS[kind].secret) fields.push("secret");
  if (kind === "telegram") fields.push("chat_id");
  if (kind === "email") fields.push("tls", "from", "to", "username");
  return fields;
}

function ChannelForm({ channel }: { channel: Channel | null }) {
  const navigate = useNavigate();
  const create = useCreateChannel();
  const update = useUpdateChannel(channel?.id ?? "");
  const save = channel ? update : create;

  const [kind, setKind] = useState<ChannelKind>(channel?.kind ?? "webhook");
  const [name, setName] = useState(channel?.name ?? "");
  const urlHidden = channel !== null && URL_IS_SECRET.includes(channel.kind);
  const [url, setUrl] = useState(channel && !urlHidden ? channel.url : "");
  const [secret, setSecret] = useState("");
  const [removeSecret, setRemoveSecret] = useState(false);
  const [chatId, setChatId] = useState(channel?.chat_id ?? "");
  const [tls, setTls] = useState<EmailTls>(channel?.tls ?? "starttls");
  const [from, setFrom] = useState(channel?.from ?? "");
  const [to, setTo] = useState(channel?.to.join(", ") ?? "");
  const [username, setUsername] = useState(channel?.username ?? "");
  const [summaryOver, setSummaryOver] = useState(channel?.summary_over?.toString() ?? "");

  const text = KINDS[kind];
  const urlText = text.url;
  // A taken name is a 409, not a validation error: it is still the name's.
  const { fieldError, formError, setLocalError, onEdit } = useFormErrors(save, { fields: fieldsOf(kind), conflictField: "name" });

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    setLocalError(null);
    if (!name.trim()) return setLocalError({ field: "name", message: "Name: give the channel a name." });
    const body: ChannelInput = { name: name.trim() };
    if (!channel) body.kind = kind;
    if (url.trim()) body.url = url.trim();
    if (secret) body.secret = secret;
    else if (removeSecret) body.secret = "";
    if (kind === "telegram") body.chat_id = chatId.trim();
    if (kind === "email") {
      body.tls = tls;
      body.from = from.trim();
      body.to = parseRecipients(to);
      body.username = username.trim();
      // No user name is no login: a stored password goes too.
      if (!username.trim() && !secret && channel?.has_secret) body.secret = "";
    }
    if (summaryOver.trim()) {
      const n = Number(summaryOver);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) {
        return setLocalError({ field: "summary_over", message: "Summarise above: a whole number from 1 to 10000, or empty." });
      }
      body.summary_over = n;
    } else {
      body.summary_over = null;
    }
    save.mutate(body, { onSuccess: () => void navigate("/notifications") });
  };

  const title = channel ? `Edit ${channel.name}` : "Add a channel";

  return (
    <div className="page page-narrow">
      <header className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/notifications">Notifications</Link> /
          </p>
          <h1>{title}</h1>
          <p className="muted">{text.intro}</p>
        </div>
      </header>
      <form className="card form" onSubmit={onSubmit} onChange={onEdit} noValidate>
        <Field
          id="channel-kind"
          label="Kind"
          error={fieldError("kind")}
          help={channel ? "A channel's kind cannot change: add a new channel instead." : "How messages are delivered."}
        >
          {(control) => (
            <select {...control} value={kind} onChange={(e) => setKind(e.target.value as ChannelKind)} disabled={channel !== null}>
              {CHANNEL_KINDS.map((k) => (
                <option key={k} value={k}>
                  {KIND_LABELS[k]}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id="channel-name" label="Name" error={fieldError("name")} help="Unique, whatever the case; rules and deliveries show it.">
          {(control) => (
            <input {...control} value={name} onChange={(e) => setName(e.target.value)} placeholder="ops on-call" autoComplete="off" maxLength={100} />
          )}
        </Field>
        {urlText && (
          <Field
            id="channel-url"
            label={urlText[0]}
            error={fieldError("url")}
            help={urlHidden ? `${urlText[1]} Leave it empty to keep the current one.` : urlText[1]}
          >
            {(control) => (
              <input
                {...control}
                className="mono"
                type="url"
                value={url}
                onChange={(e) => setUrl(e.target.value)}
                placeholder={urlHidden ? `${channel?.url} (kept when empty)` : urlText[2]}
                autoComplete="off"
                spellCheck={false}
              />
            )}
          </Field>
        )}
        {kind === "telegram" && (
          <Field
            id="channel-chat"
            label="Chat ID"
            error={fieldError("chat_id")}
            help="Required: the chat to post to, a numeric ID or @channel name. Add the bot to the chat first."
          >
            {(control) => (
              <input
                {...control}
                className="mono"
                value={chatId}
                onChange={(e) => setChatId(e.target.value)}
                placeholder="-1001234567890 or @my_channel"
                autoComplete="off"
                spellCheck={false}
              />
            )}
          </Field>
        )}
        {kind === "email" && (
          <>
            <Field
              id="channel-tls"
              label="Security"
              error={fieldError("tls")}
              help="How the connection to the SMTP server is encrypted. STARTTLS must succeed: mail is never sent in the clear by surprise."
            >
              {(control) => (
                <select {...control} value={tls} onChange={(e) => setTls(e.target.value as EmailTls)}>
                  {EMAIL_TLS.map(([value, label]) => (
                    <option key={value} value={value}>
                      {label}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field id="channel-from" label="From" error={fieldError("from")} help="Required: the sender, an address the server lets you send from.">
              {(control) => (
                <input {...control} value={from} onChange={(e) => setFrom(e.target.value)} placeholder="Fleetdeck <fleetdeck@example.com>" autoComplete="off" />
              )}
            </Field>
            <Field id="channel-to" label="To" error={fieldError("to")} help="Required: 1 to 20 recipients, separated by commas.">
              {(control) => (
                <input {...control} value={to} onChange={(e) => setTo(e.target.value)} placeholder="ops@example.com, oncall@example.com" autoComplete="off" />
              )}
            </Field>
            <Field
              id="channel-username"
              label="User name"
              error={fieldError("username")}
              help="For a server that needs a login, with the password below; leave both empty for one that does not."
            >
              {(control) => <input {...control} value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="off" />}
            </Field>
          </>
        )}
        {text.secret && (
          <div className="field">
            <label className="field-label" htmlFor="channel-secret">
              {text.secret.label}
            </label>
            <input
              {...fieldControl("channel-secret", fieldError("secret"))}
              className="mono"
              type="password"
              value={secret}
              onChange={(e) => {
                setSecret(e.target.value);
                if (e.target.value) setRemoveSecret(false);
              }}
              placeholder={channel?.has_secret ? "set (kept when empty)" : ""}
              autoComplete="new-password"
              spellCheck={false}
            />
            <FieldHelp id="channel-secret-help" error={fieldError("secret")}>
              {`${text.secret.help} It is stored encrypted and never shown again.`}
            </FieldHelp>
            {channel?.has_secret && !text.secret.required && kind !== "email" && (
              <label className="check">
                <input type="checkbox" checked={removeSecret} disabled={Boolean(secret)} onChange={(e) => setRemoveSecret(e.target.checked)} />
                Remove the {text.secret.label.toLowerCase()}
              </label>
            )}
          </div>
        )}
        <Field
          id="channel-summary"
          label="Summarise above"
          error={fieldError("summary_over")}
          help="Optional. When more than this many messages wait for this channel at once (a rack losing power), they go as one summary message. Empty: each message on its own."
        >
          {(control) => (
            <input
              {...control}
              className="input-short"
              inputMode="numeric"
              value={summaryOver}
              onChange={(e) => setSummaryOver(e.target.value)}
              placeholder="e.g. 5"
              autoComplete="off"
            />
          )}
        </Field>
        <FormActions error={formError} pending={save.isPending} submit={channel ? "Save" : "Add channel"} busy="Saving…" cancelTo="/notifications" />
      </form>
    </div>
  );
}
