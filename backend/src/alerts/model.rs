//! What alerts are made of: channels (where messages go), rules (when they are sent), and
//! the messages themselves, parsed from what operators send (parse, don't validate) into
//! the values the rest of the domain trusts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::Timestamp;
use crate::error::AppError;
use crate::nodes::{Labels, NodeId, NodeStatus};

/// How a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ChannelKind {
    /// A JSON POST, signed with HMAC-SHA256 when the channel has a secret.
    Webhook,
    /// An ntfy topic URL; the secret, if any, is an access token.
    Ntfy,
    /// A Gotify server; the secret is an application token.
    Gotify,
    /// A Discord webhook URL (itself the secret).
    Discord,
    /// A Slack incoming-webhook URL (itself the secret).
    Slack,
    /// The Telegram Bot API; the secret is the bot token, `chat_id` the chat.
    Telegram,
    /// SMTP; the secret is the password.
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 7] = [
        ChannelKind::Webhook,
        ChannelKind::Ntfy,
        ChannelKind::Gotify,
        ChannelKind::Discord,
        ChannelKind::Slack,
        ChannelKind::Telegram,
        ChannelKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Gotify => "gotify",
            ChannelKind::Discord => "discord",
            ChannelKind::Slack => "slack",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(raw: &str) -> Result<ChannelKind, String> {
        one_of(&ChannelKind::ALL, ChannelKind::as_str, raw)
    }

    /// Whether the URL itself grants access (Slack, Discord): it is sealed like a secret and
    /// shown only by its host.
    fn url_is_secret(self) -> bool {
        matches!(self, ChannelKind::Discord | ChannelKind::Slack)
    }
}

/// The value of `all` named `raw`, or an error listing the names.
fn one_of<T: Copy>(all: &[T], name: fn(T) -> &'static str, raw: &str) -> Result<T, String> {
    all.iter().copied().find(|v| name(*v) == raw).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        format!("must be one of {}", names.join(", "))
    })
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum AlertEvent {
    /// A node is offline or unreachable.
    NodeOffline,
    /// A node is unreachable (11 failed checks and more).
    NodeUnreachable,
    /// A node is back online after an offline or unreachable alert fired for it.
    NodeOnline,
    /// A node was added to the fleet (by an operator or by registering itself).
    NodeRegistered,
    /// A job failed, timed out or was lost.
    JobFailed,
    CpuAbove,
    MemoryAbove,
    DiskAbove,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 8] = [
        AlertEvent::NodeOffline,
        AlertEvent::NodeUnreachable,
        AlertEvent::NodeOnline,
        AlertEvent::NodeRegistered,
        AlertEvent::JobFailed,
        AlertEvent::CpuAbove,
        AlertEvent::MemoryAbove,
        AlertEvent::DiskAbove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::NodeOffline => "node_offline",
            AlertEvent::NodeUnreachable => "node_unreachable",
            AlertEvent::NodeOnline => "node_online",
            AlertEvent::NodeRegistered => "node_registered",
            AlertEvent::JobFailed => "job_failed",
            AlertEvent::CpuAbove => "cpu_above",
            AlertEvent::MemoryAbove => "memory_above",
            AlertEvent::DiskAbove => "disk_above",
        }
    }

    pub fn parse(raw: &str) -> Result<AlertEvent, String> {
        one_of(&AlertEvent::ALL, AlertEvent::as_str, raw)
    }

    /// The events judged on a measured value against `threshold`.
    pub fn takes_threshold(self) -> bool {
        matches!(self, AlertEvent::CpuAbove | AlertEvent::MemoryAbove | AlertEvent::DiskAbove)
    }

    /// The events that are a lasting condition (and so may have to last `for` a while).
    pub fn is_condition(self) -> bool {
        self.takes_threshold() || self.is_down()
    }

    /// A node being down, which a `node_online` message later says is over.
    pub fn is_down(self) -> bool {
        matches!(self, AlertEvent::NodeOffline | AlertEvent::NodeUnreachable)
    }

    /// Whether a node with `status` is in this event's condition (for the down events).
    pub fn node_is_down(self, status: NodeStatus) -> bool {
        match self {
            AlertEvent::NodeOffline => matches!(status, NodeStatus::Offline | NodeStatus::Unreachable),
            AlertEvent::NodeUnreachable => status == NodeStatus::Unreachable,
            _ => false,
        }
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// No encryption: only for a relay on the same machine or a trusted network (port 25).
    None,
}

/// A channel's fields besides its URL and secret, as stored (JSON) and shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct ChannelSettings {
    /// Telegram: the chat to post to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Email: the sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Email: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: the SMTP user name, if the server needs a login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Email: how the connection is secured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<EmailTls>,
}

/// A channel's secrets, sealed together under the master key.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ChannelSecrets {
    /// The URL to call, when it is itself a secret (Slack, Discord).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The signing key, token or password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecrets([REDACTED])")
    }
}

/// A channel as an operator sends it (create, or an edit: what is left out stays).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct ChannelInput {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    /// Write-only. On an edit, left out: kept; `""`: removed.
    pub secret: Option<String>,
    pub chat_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub username: Option<String>,
    pub tls: Option<EmailTls>,
    /// When more than this many messages wait for the channel at once, they go as one
    /// summary message. `null`: every message on its own (the default).
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(test, ts(optional, type = "number | null"))]
    pub summary_over: Option<Option<u32>>,
}

/// A channel with every field checked: one to store, or a stored one to merge an edit into.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
    /// What the API shows.
    pub shown_url: String,
    pub settings: ChannelSettings,
    pub secrets: ChannelSecrets,
    pub summary_over: Option<u32>,
}

/// A channel's or rule's name: 1–100 characters on one line.
fn check_name(name: &str) -> Result<(), AppError> {
    if name.is_empty() {
        return Err(AppError::validation("name", "must not be empty"));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::validation("name", "must be at most 100 characters on one line"));
    }
    Ok(())
}

/// The Telegram Bot API, unless a channel names another (a local Bot API server).
pub const TELEGRAM_API: &str = "https://api.telegram.org";

impl ChannelInput {
    /// Checks a new channel (`current` None) or an edit of `current`, naming the first
    /// field that is wrong.
    pub fn into_spec(self, current: Option<&ChannelSpec>) -> Result<ChannelSpec, AppError> {
        let name = match (self.name, &current) {
            (Some(name), _) => name.trim().to_owned(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => String::new(),
        };
        check_name(&name)?;
        let kind = match (self.kind.as_deref(), &current) {
            (Some(raw), Some(c)) if raw != c.kind.as_str() => {
                return Err(AppError::validation("kind", "cannot change; add a new channel instead"));
            }
            (Some(raw), _) => ChannelKind::parse(raw).map_err(|e| AppError::validation("kind", e))?,
            (None, Some(c)) => c.kind,
            (None, None) => return Err(AppError::validation("kind", "is required")),
        };
        let (mut secrets, mut settings, mut shown_url) = match current.cloned() {
            Some(c) => (c.secrets, c.settings, Some(c.shown_url)),
            None => (ChannelSecrets::default(), ChannelSettings::default(), None),
        };
        match self.secret {
            Some(s) if s.is_empty() => secrets.secret = None,
            Some(s) => {
                if s.len() > 4096 || s.chars().any(char::is_control) {
                    return Err(AppError::validation(
                        "secret",
                        "must be at most 4096 characters, with no control characters",
                    ));
                }
                secrets.secret = Some(s);
            }
            None => {}
        }
        if let Some(url) = self.url {
            let checked = match kind {
                ChannelKind::Email => smtp_url(&url, self.tls.or(settings.tls).unwrap_or_default())?,
                _ => http_url(&url)?,
            };
            if kind.url_is_secret() {
                shown_url = Some(shown_form(&checked));
                secrets.url = Some(checked);
            } else {
                shown_url = Some(checked);
            }
        }
        if shown_url.is_none() && kind == ChannelKind::Telegram {
            shown_url = Some(TELEGRAM_API.to_owned());
        }
        let Some(shown_url) = shown_url else {
            return Err(AppError::validation("url", kind_url_hint(kind)));
        };
        if let Some(chat_id) = self.chat_id {
            settings.chat_id = Some(chat_id.trim().to_owned()).filter(|c| !c.is_empty());
        }
        if let Some(from) = self.from {
            settings.from = Some(from.trim().to_owned()).filter(|f| !f.is_empty());
        }
        if let Some(to) = self.to {
            settings.to = to.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        }
        if let Some(username) = self.username {
            settings.username = Some(username.trim().to_owned()).filter(|u| !u.is_empty());
        }
        if let Some(tls) = self.tls {
            settings.tls = Some(tls);
        }
        check_kind_fields(kind, &mut settings, &secrets)?;
        let summary_over = match (self.summary_over, &current) {
            (Some(Some(n)), _) if !(1..=10_000).contains(&n) => {
                return Err(AppError::validation("summary_over", "must be from 1 to 10000, or null"));
            }
            (Some(n), _) => n,
            (None, Some(c)) => c.summary_over,
            (None, None) => None,
        };
        Ok(ChannelSpec { name, kind, shown_url, settings, secrets, summary_over })
    }
}

/// The fields a kind needs, and none it does not use.
fn check_kind_fields(
    kind: ChannelKind,
    settings: &mut ChannelSettings,
    secrets: &ChannelSecrets,
) -> Result<(), AppError> {
    let email = kind == ChannelKind::Email;
    for (field, set) in [
        ("from", settings.from.is_some()),
        ("to", !settings.to.is_empty()),
        ("username", settings.username.is_some()),
        ("tls", settings.tls.is_some()),
    ] {
        if set && !email {
            return Err(AppError::validation(field, "is only for email channels"));
        }
    }
    if settings.chat_id.is_some() && kind != ChannelKind::Telegram {
        return Err(AppError::validation("chat_id", "is only for telegram channels"));
    }
    match kind {
        ChannelKind::Gotify if secrets.secret.is_none() => {
            Err(AppError::validation("secret", "is required: the Gotify application token"))
        }
        ChannelKind::Telegram if secrets.secret.is_none() => {
            Err(AppError::validation("secret", "is required: the bot token from @BotFather"))
        }
        ChannelKind::Telegram => match &settings.chat_id {
            None => Err(AppError::validation("chat_id", "is required: the chat to post to")),
            Some(id) if id.len() > 64 || id.chars().any(char::is_whitespace) => {
                Err(AppError::validation("chat_id", "must be a chat ID or @channel name"))
            }
            Some(_) => Ok(()),
        },
        ChannelKind::Discord | ChannelKind::Slack if secrets.secret.is_some() => {
            Err(AppError::validation("secret", "is not used: the webhook URL is the secret"))
        }
        ChannelKind::Email => {
            let from = settings.from.as_deref().ok_or_else(|| AppError::validation("from", "is required"))?;
            check_mailbox("from", from)?;
            if settings.to.is_empty() || settings.to.len() > 20 {
                return Err(AppError::validation("to", "must list 1 to 20 recipients"));
            }
            for to in &settings.to {
                check_mailbox("to", to)?;
            }
            if settings.username.is_some() != secrets.secret.is_some() {
                return Err(AppError::validation(
                    "username",
                    "and secret (the password) go together: give both or neither",
                ));
            }
            settings.tls.get_or_insert_default();
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_mailbox(field: &str, raw: &str) -> Result<(), AppError> {
    raw.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| AppError::validation(field, format!("{raw:?} is not an email address ({e})")))
}

fn kind_url_hint(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "is required: the URL to POST to",
        ChannelKind::Ntfy => "is required: the topic URL, e.g. https://ntfy.sh/my-fleet",
        ChannelKind::Gotify => "is required: the Gotify server, e.g. https://gotify.example.com",
        ChannelKind::Discord => "is required: the webhook URL from the channel's Integrations",
        ChannelKind::Slack => "is required: the incoming webhook URL",
        ChannelKind::Telegram => "is required",
        ChannelKind::Email => "is required: the SMTP server, e.g. smtp://mail.example.com:587",
    }
}

/// An http(s) URL with a host, no credentials, at most 2048 characters.
pub fn http_url(raw: &str) -> Result<String, AppError> {
    let invalid = |m: String| AppError::validation("url", m);
    if raw.len() > 2048 {
        return Err(invalid("must be at most 2048 characters".into()));
    }
    let url = Url::parse(raw.trim())
        .map_err(|e| invalid(format!("is not a valid URL: {}", crate::urls::problem(e))))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("must be an http:// or https:// URL, not {}:", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain credentials (put a token in secret)".into()));
    }
    Ok(url.to_string())
}

/// `smtp://host[:port]`, the port defaulting by `tls`.
fn smtp_url(raw: &str, tls: EmailTls) -> Result<String, AppError> {
    let invalid = |m: String| AppError::validation("url", m);
    let url = Url::parse(raw.trim())
        .map_err(|e| invalid(format!("is not a valid URL: {}", crate::urls::problem(e))))?;
    if url.scheme() != "smtp" {
        return Err(invalid(format!(
            "must be smtp://host[:port] (TLS is chosen with tls), not {}:",
            url.scheme()
        )));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(invalid("must name the SMTP server".into()));
    };
    if !url.username().is_empty() || url.password().is_some() || !matches!(url.path(), "" | "/") {
        return Err(invalid(
            "must be only smtp://host[:port] (the login goes in username and secret)".into(),
        ));
    }
    let port = url.port().unwrap_or(match tls {
        EmailTls::Starttls => 587,
        EmailTls::Tls => 465,
        EmailTls::None => 25,
    });
    Ok(format!("smtp://{host}:{port}"))
}

/// A secret URL as shown: scheme and host only.
fn shown_form(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or_default()),
        Err(_) => "…".into(),
    }
}

/// A rule as an operator sends it (create, or an edit: what is left out stays).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct RuleInput {
    pub name: Option<String>,
    pub event: Option<String>,
    pub channels: Option<Vec<String>>,
    pub labels: Option<Vec<String>>,
    pub nodes: Option<Vec<String>>,
    /// Percent, for `cpu_above`, `memory_above`, `disk_above`.
    pub threshold: Option<f64>,
    /// How long the condition must last before the message goes ("5m"); down and
    /// threshold events only.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// No messages until then (`null` unmutes).
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(test, ts(optional, type = "string | null"))]
    pub muted_until: Option<Option<Timestamp>>,
}

/// A field that may be left out (`None`), `null` (`Some(None)`) or set.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A rule ready to store (channel and node IDs are checked to exist by the service).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    pub event: AlertEvent,
    pub channels: Vec<String>,
    pub labels: Labels,
    pub nodes: Vec<NodeId>,
    pub threshold: Option<f64>,
    pub for_: Duration,
    pub muted_until: Option<Timestamp>,
}

/// A stored rule, parsed.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub id: String,
    pub spec: RuleSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The longest a rule's `for` may be.
const MAX_FOR: Duration = Duration::from_secs(24 * 3600);

impl RuleInput {
    /// Checks a new rule (`current` None) or an edit of `current`, naming the first field
    /// that is wrong.
    pub fn into_spec(self, current: Option<&RuleSpec>) -> Result<RuleSpec, AppError> {
        let name =
            self.name.map(|n| n.trim().to_owned()).or_else(|| current.as_ref().map(|c| c.name.clone()));
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| AppError::validation("name", "must not be empty"))?;
        check_name(&name)?;
        let event = match (self.event, &current) {
            (Some(raw), _) => AlertEvent::parse(&raw).map_err(|e| AppError::validation("event", e))?,
            (None, Some(c)) => c.event,
            (None, None) => return Err(AppError::validation("event", "is required")),
        };
        let channels = match (self.channels, &current) {
            (Some(ids), _) => {
                let mut ids: Vec<String> = ids.into_iter().map(|i| i.trim().to_owned()).collect();
                for id in &ids {
                    crate::nodes::check_uuid(id)
                        .map_err(|e| AppError::validation("channels", format!("{id:?} {e}")))?;
                }
                ids.sort();
                ids.dedup();
                ids
            }
            (None, Some(c)) => c.channels.clone(),
            (None, None) => Vec::new(),
        };
        if channels.is_empty() || channels.len() > 20 {
            return Err(AppError::validation("channels", "must name 1 to 20 channels"));
        }
        let labels = match (self.labels, &current) {
            (Some(raw), _) => Labels::parse(&raw).map_err(|e| AppError::validation("labels", e))?,
            (None, Some(c)) => c.labels.clone(),
            (None, None) => Labels::default(),
        };
        let nodes = match (self.nodes, &current) {
            (Some(raw), _) => {
                let mut ids = raw
                    .iter()
                    .map(|n| {
                        NodeId::parse(n.trim())
                            .map_err(|e| AppError::validation("nodes", format!("{n:?} {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort();
                ids.dedup();
                if ids.len() > 1000 {
                    return Err(AppError::validation("nodes", "must name at most 1000 nodes"));
                }
                ids
            }
            (None, Some(c)) => c.nodes.clone(),
            (None, None) => Vec::new(),
        };
        let threshold = match (self.threshold, &current) {
            (Some(t), _) => Some(t),
            (None, Some(c)) if c.event.takes_threshold() && event.takes_threshold() => c.threshold,
            _ => None,
        };
        match threshold {
            Some(t) if !event.takes_threshold() => {
                let _ = t;
                return Err(AppError::validation(
                    "threshold",
                    "is only for cpu_above, memory_above and disk_above",
                ));
            }
            Some(t) if !(0.0..=100.0).contains(&t) || t.is_nan() => {
                return Err(AppError::validation("threshold", "must be a percentage from 0 to 100"));
            }
            None if event.takes_threshold() => {
                return Err(AppError::validation("threshold", "is required: a percentage from 0 to 100"));
            }
            _ => {}
        }
        let for_ = match (self.for_, &current) {
            (Some(raw), _) => {
                let d = humantime::parse_duration(raw.trim()).map_err(|e| {
                    AppError::validation("for", format!("{raw:?} is not a duration ({e}); e.g. 30s, 5m, 1h"))
                })?;
                if d > MAX_FOR {
                    return Err(AppError::validation("for", "must be at most 24h"));
                }
                d
            }
            (None, Some(c)) if event.is_condition() => c.for_,
            _ => Duration::ZERO,
        };
        if !for_.is_zero() && !event.is_condition() {
            return Err(AppError::validation(
                "for",
                "is only for node_offline, node_unreachable and the threshold events",
            ));
        }
        let muted_until = match (self.muted_until, &current) {
            (Some(m), _) => m,
            (None, Some(c)) => c.muted_until,
            (None, None) => None,
        };
        Ok(RuleSpec { name, event, channels, labels, nodes, threshold, for_, muted_until })
    }
}

impl RuleSpec {
    /// Whether the rule covers a node with `id` and `labels`.
    pub fn covers(&self, id: &NodeId, labels: &Labels) -> bool {
        (self.nodes.is_empty() || self.nodes.contains(id))
            && self.labels.as_slice().iter().all(|l| labels.as_slice().contains(l))
    }

    pub fn is_muted(&self, now: Timestamp) -> bool {
        self.muted_until.is_some_and(|until| now < until)
    }
}

/// A stored channel, as the API shows it: secrets never, only whether there is one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub has_secret: bool,
    #[serde(flatten)]
    pub settings: ChannelSettings,
    pub summary_over: Option<u32>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The channel's latest delivery, if it had any.
    pub last_delivery: Option<LastDelivery>,
}

/// How a channel's latest delivery went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LastDelivery {
    pub status: DeliveryStatus,
    pub at: Timestamp,
    pub error: Option<String>,
}

/// A stored rule, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub event: AlertEvent,
    pub channels: Vec<String>,
    pub labels: Labels,
    pub nodes: Vec<NodeId>,
    pub threshold: Option<f64>,
    /// As a duration ("5m"); "0s" when the message goes at once.
    #[serde(rename = "for")]
    pub for_: String,
    pub muted_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum DeliveryStatus {
    /// Waiting for its first or next try.
    Pending,
    /// The receiver took it.
    Delivered,
    /// Refused for good (a 4xx, a blocked address) or given up after the retry period.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<DeliveryStatus, String> {
        match raw {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err("must be pending, delivered or failed".into()),
        }
    }
}

/// Whether a message says something began, ended, or a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum MessageState {
    /// A condition began (or a one-off event happened).
    Firing,
    /// A condition ended.
    Resolved,
    /// A node flipped in and out of a condition; one message says how often.
    Flapping,
    /// Sent from the channel's Test button.
    Test,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Firing => "firing",
            MessageState::Resolved => "resolved",
            MessageState::Flapping => "flapping",
            MessageState::Test => "test",
        }
    }

    pub fn from_db(raw: &str) -> MessageState {
        match raw {
            "resolved" => MessageState::Resolved,
            "flapping" => MessageState::Flapping,
            "test" => MessageState::Test,
            _ => MessageState::Firing,
        }
    }
}

/// A delivery as `GET /api/alerts/deliveries` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Delivery {
    pub id: String,
    pub channel: ChannelRef,
    pub message_id: String,
    pub rule: Option<RuleRef>,
    #[cfg_attr(test, ts(as = "AlertEvent"))]
    #[schema(value_type = AlertEvent)]
    pub event: String,
    pub state: MessageState,
    pub node: Option<NodeRef>,
    pub job_id: Option<String>,
    pub text: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Timestamp>,
    pub next_try_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChannelRef {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RuleRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NodeRef {
    pub id: String,
    pub name: String,
}

/// An alert that fired, as a node's page lists it: one per message, whatever the channels.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct FiredAlert {
    pub id: String,
    pub rule: Option<RuleRef>,
    #[cfg_attr(test, ts(as = "AlertEvent"))]
    #[schema(value_type = AlertEvent)]
    pub event: String,
    pub state: MessageState,
    pub job_id: Option<String>,
    pub text: String,
    pub at: Timestamp,
    /// Deliveries by status.
    pub delivered: u32,
    pub pending: u32,
    pub failed: u32,
}

/// What `POST /api/alerts/channels/:id/test` answers: what the receiver said.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TestResult {
    pub ok: bool,
    /// The receiver's HTTP status or SMTP reply code, if it answered.
    pub status: Option<u16>,
    /// The start of its answer, or why nothing was sent.
    pub detail: String,
}
