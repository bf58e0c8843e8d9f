//! Alerts (SPEC §14): telling people when a node goes down, comes back, runs hot, or a job
//! fails. Operators keep **channels** (where messages go; secrets sealed under the master
//! key, never shown) and **rules** (which event, which nodes, which channels). The leader's
//! `engine` turns what it sees into messages, written to a durable outbox in the
//! transaction that decided them; the leader's `outbox` delivers them with retries.
//! `states` holds the pure rules of "one message per change, flapping summarised";
//! `message` the webhook body and texts; `send` each kind's protocol.
//!
//! This file is the service the API calls: channel and rule CRUD (checked in `model`),
//! the test button, the deliveries list and a node's fired alerts.

pub mod engine;
pub mod message;
pub mod model;
pub mod outbox;
pub mod repo;
pub mod send;
pub mod states;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::alerts::engine::Engine;
use crate::alerts::message::Notification;
use crate::alerts::model::{
    AlertEvent, Channel, ChannelInput, ChannelKind, ChannelRef, ChannelSecrets, ChannelSettings, ChannelSpec,
    Delivery, DeliveryStatus, FiredAlert, LastDelivery, LoadedRule, MessageState, NodeRef, Rule, RuleInput,
    RuleRef, RuleSpec, TestResult,
};
use crate::alerts::outbox::Outbox;
use crate::alerts::repo::{ChannelRow, DeliveryFilter, RuleRow};
use crate::alerts::send::{Content, Outcome, Sender, Target};
use crate::clock::{SharedClock, Timestamp};
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::jobs::JobService;
use crate::nodes::{Labels, NodeId, Registry};
use crate::secrets::MasterKey;

/// How alerts are set up (from `Config`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Where message links point: the web UI's address.
    pub base_url: Url,
    /// `ALERTS_BLOCK_PRIVATE`: no deliveries to private addresses.
    pub block_private: bool,
    /// `ALERTS_FLAP_WINDOW`: a node back in its condition within this of recovering is
    /// flapping; it is summarised once it has been steady this long.
    pub flap_window: Duration,
}

/// Channels, rules, deliveries; and the leader's engine and outbox.
pub struct Alerts {
    db: Db,
    clock: SharedClock,
    master_key: MasterKey,
    registry: Arc<Registry>,
    sender: Sender,
    base_url: Url,
    engine: Arc<Engine>,
    outbox: Arc<Outbox>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

impl Alerts {
    pub fn new(
        db: Db,
        clock: SharedClock,
        master_key: MasterKey,
        registry: Arc<Registry>,
        jobs: Arc<JobService>,
        settings: AlertSettings,
    ) -> anyhow::Result<Alerts> {
        let sender = Sender::new(settings.block_private)?;
        let wake = Arc::new(Notify::new());
        let engine = Arc::new(Engine::new(
            db.clone(),
            clock.clone(),
            registry.clone(),
            jobs,
            settings.base_url.clone(),
            settings.flap_window,
            wake.clone(),
        ));
        let outbox = Arc::new(Outbox::new(
            db.clone(),
            clock.clone(),
            registry.clone(),
            master_key.clone(),
            sender.clone(),
            wake,
        ));
        Ok(Alerts { db, clock, master_key, registry, sender, base_url: settings.base_url, engine, outbox })
    }

    /// The engine and the outbox, each while this primary leads.
    pub fn run(&self, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.engine.clone().run(shutdown.clone())),
            tokio::spawn(self.outbox.clone().run(shutdown.clone())),
        ]
    }

    // Channels

    pub async fn channels(&self) -> AppResult<Vec<Channel>> {
        let (rows, last) = self
            .db
            .run(|conn| {
                let channels = repo::channels(conn)?;
                let ids: Vec<String> = channels.iter().map(|c| c.id.clone()).collect();
                Ok((channels, repo::last_deliveries(conn, &ids)?))
            })
            .await?;
        Ok(rows.into_iter().map(|row| self.channel_view(row, &last)).collect())
    }

    pub async fn channel(&self, id: &str) -> AppResult<Channel> {
        let row = self.channel_row(id).await?;
        let ids = vec![row.id.clone()];
        let last = self.db.run(move |conn| repo::last_deliveries(conn, &ids)).await?;
        Ok(self.channel_view(row, &last))
    }

    pub async fn create_channel(&self, input: ChannelInput) -> AppResult<Channel> {
        let spec = input.into_spec(None)?;
        let now = self.clock.now().0;
        let row = self.channel_row_of(uuid::Uuid::now_v7().to_string(), &spec, now, now);
        let insert = row.clone();
        self.db.write(move |conn| repo::insert_channel(conn, &insert)).await.map_err(name_taken)?;
        Ok(self.channel_view(row, &[]))
    }

    pub async fn update_channel(&self, id: &str, input: ChannelInput) -> AppResult<Channel> {
        let stored = self.channel_row(id).await?;
        let current = ChannelSpec {
            kind: ChannelKind::parse(&stored.kind).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?,
            name: stored.name.clone(),
            shown_url: stored.url.clone(),
            settings: serde_json::from_str(&stored.settings).unwrap_or_default(),
            secrets: self.open(&stored.sealed).ok_or_else(cannot_open)?,
            summary_over: stored.summary_over.and_then(|n| u32::try_from(n).ok()),
        };
        let spec = input.into_spec(Some(&current))?;
        let row = self.channel_row_of(stored.id, &spec, stored.created_at, self.clock.now().0);
        let n = self.db.write(move |conn| repo::update_channel(conn, &row)).await.map_err(name_taken)?;
        if n == 0 {
            return Err(channel_not_found(id));
        }
        self.channel(id).await
    }

    /// The row that stores `spec`, its secrets sealed.
    fn channel_row_of(&self, id: String, spec: &ChannelSpec, created_at: i64, updated_at: i64) -> ChannelRow {
        ChannelRow {
            id,
            name: spec.name.clone(),
            kind: spec.kind.as_str().to_owned(),
            url: spec.shown_url.clone(),
            settings: serde_json::to_string(&spec.settings).unwrap_or_default(),
            sealed: self.seal(&spec.secrets),
            summary_over: spec.summary_over.and_then(|n| i32::try_from(n).ok()),
            created_at,
            updated_at,
        }
    }

    /// Removes a channel (and what waits to be sent to it); whether it existed.
    pub async fn delete_channel(&self, id: &str) -> AppResult<bool> {
        let key = id.to_owned();
        Ok(self.db.write(move |conn| repo::delete_channel(conn, &key)).await? > 0)
    }

    /// Sends a test message to the channel now and says what the receiver answered.
    pub async fn test_channel(&self, id: &str) -> AppResult<TestResult> {
        let row = self.channel_row(id).await?;
        let target = open_target(&self.master_key, &row).ok_or_else(cannot_open)?;
        let now = self.clock.now();
        let test = Notification {
            id: uuid::Uuid::now_v7().to_string(),
            event: "test".into(),
            state: MessageState::Test,
            rule: RuleRef { id: String::new(), name: "Test".into() },
            node: None,
            job: None,
            value: None,
            threshold: None,
            at: now,
            title: "Fleetdeck test message".into(),
            text: format!("This is a test from Fleetdeck: channel {} works.", row.name),
            url: self.base_url.to_string(),
        };
        Ok(match self.sender.send(&target, Content::One(&test), now).await {
            Outcome::Delivered { status, answer } => TestResult { ok: true, status, detail: answer },
            Outcome::Retry { error, status, .. } | Outcome::Refused { error, status } => {
                TestResult { ok: false, status, detail: error }
            }
        })
    }

    async fn channel_row(&self, id: &str) -> AppResult<ChannelRow> {
        let key = id.to_owned();
        self.db.run(move |conn| repo::find_channel(conn, &key)).await?.ok_or_else(|| channel_not_found(id))
    }

    fn channel_view(&self, row: ChannelRow, last: &[repo::LastDeliveryRow]) -> Channel {
        let has_secret = self.open(&row.sealed).is_some_and(|s| s.secret.is_some());
        let last_delivery = last.iter().find(|l| l.0 == row.id).map(|(_, status, at, error)| LastDelivery {
            status: DeliveryStatus::parse(status).unwrap_or(DeliveryStatus::Pending),
            at: Timestamp(*at),
            error: error.clone(),
        });
        Channel {
            kind: ChannelKind::parse(&row.kind).unwrap_or(ChannelKind::Webhook),
            id: row.id,
            name: row.name,
            url: row.url,
            has_secret,
            settings: serde_json::from_str::<ChannelSettings>(&row.settings).unwrap_or_default(),
            summary_over: row.summary_over.and_then(|n| u32::try_from(n).ok()),
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            last_delivery,
        }
    }

    fn seal(&self, secrets: &ChannelSecrets) -> Vec<u8> {
        self.master_key.seal(&serde_json::to_string(secrets).unwrap_or_default())
    }

    fn open(&self, sealed: &[u8]) -> Option<ChannelSecrets> {
        open_secrets(&self.master_key, sealed)
    }

    // Rules

    pub async fn rules(&self) -> AppResult<Vec<Rule>> {
        let rows = self.db.run(repo::rules).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(row, channels)| rule_from_row(row, channels).ok())
            .map(rule_view)
            .collect())
    }

    pub async fn rule(&self, id: &str) -> AppResult<Rule> {
        Ok(rule_view(self.loaded_rule(id).await?))
    }

    pub async fn create_rule(&self, input: RuleInput) -> AppResult<Rule> {
        let spec = input.into_spec(None)?;
        self.check_references(&spec).await?;
        let now = self.clock.now();
        let rule =
            LoadedRule { id: uuid::Uuid::now_v7().to_string(), spec, created_at: now, updated_at: now };
        let row = rule_row(&rule);
        let channels = rule.spec.channels.clone();
        self.db.write(move |conn| repo::insert_rule(conn, &row, &channels)).await.map_err(name_taken)?;
        Ok(rule_view(rule))
    }

    pub async fn update_rule(&self, id: &str, input: RuleInput) -> AppResult<Rule> {
        let mut rule = self.loaded_rule(id).await?;
        rule.spec = input.into_spec(Some(&rule.spec))?;
        self.check_references(&rule.spec).await?;
        rule.updated_at = self.clock.now();
        let row = rule_row(&rule);
        let channels = rule.spec.channels.clone();
        let n =
            self.db.write(move |conn| repo::update_rule(conn, &row, &channels)).await.map_err(name_taken)?;
        if n == 0 {
            return Err(rule_not_found(id));
        }
        self.rule(id).await
    }

    /// Removes a rule (its states go with it; its messages stay in the history).
    pub async fn delete_rule(&self, id: &str) -> AppResult<bool> {
        let key = id.to_owned();
        Ok(self.db.write(move |conn| repo::delete_rule(conn, &key)).await? > 0)
    }

    async fn loaded_rule(&self, id: &str) -> AppResult<LoadedRule> {
        let key = id.to_owned();
        let (row, channels) =
            self.db.run(move |conn| repo::find_rule(conn, &key)).await?.ok_or_else(|| rule_not_found(id))?;
        rule_from_row(row, channels).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))
    }

    /// Every channel a rule names exists, and every node.
    async fn check_references(&self, spec: &RuleSpec) -> AppResult<()> {
        let ids = spec.channels.clone();
        let existing = self.db.run(move |conn| repo::existing_channels(conn, &ids)).await?;
        if let Some(missing) = spec.channels.iter().find(|c| !existing.contains(c)) {
            return Err(AppError::validation("channels", format!("there is no channel {missing}")));
        }
        if let Some(missing) = spec.nodes.iter().find(|n| self.registry.cached(n).is_none()) {
            return Err(AppError::validation("nodes", format!("there is no node {missing}")));
        }
        Ok(())
    }

    // Deliveries and fired alerts

    pub async fn deliveries(&self, filter: DeliveryFilter) -> AppResult<Vec<Delivery>> {
        let rows = self.db.run(move |conn| repo::deliveries(conn, &filter)).await?;
        Ok(rows
            .into_iter()
            .map(|(d, m, c)| Delivery {
                id: d.id,
                channel: ChannelRef {
                    id: c.id,
                    name: c.name,
                    kind: ChannelKind::parse(&c.kind).unwrap_or(ChannelKind::Webhook),
                },
                message_id: m.id,
                rule: m.rule_id.map(|id| RuleRef { id, name: m.rule_name }),
                event: m.event,
                state: MessageState::from_db(&m.state),
                node: m.node_id.zip(m.node_name).map(|(id, name)| NodeRef { id, name }),
                job_id: m.job_id,
                text: m.text,
                status: DeliveryStatus::parse(&d.status).unwrap_or(DeliveryStatus::Pending),
                attempts: u32::try_from(d.attempts).unwrap_or(0),
                last_error: d.last_error,
                last_attempt_at: d.last_attempt_at.map(Timestamp),
                next_try_at: d
                    .next_try_at
                    .filter(|_| d.status == DeliveryStatus::Pending.as_str())
                    .map(Timestamp),
                created_at: Timestamp(d.created_at),
                delivered_at: d.delivered_at.map(Timestamp),
            })
            .collect())
    }

    /// The alerts that fired for a node, newest first.
    pub async fn node_alerts(&self, node: &NodeId, limit: i64) -> AppResult<Vec<FiredAlert>> {
        let key = node.to_string();
        let rows = self.db.run(move |conn| repo::node_messages(conn, &key, limit)).await?;
        Ok(rows
            .into_iter()
            .map(|(m, statuses)| {
                let count = |s: DeliveryStatus| {
                    u32::try_from(statuses.iter().filter(|x| *x == s.as_str()).count()).unwrap_or(0)
                };
                FiredAlert {
                    delivered: count(DeliveryStatus::Delivered),
                    pending: count(DeliveryStatus::Pending),
                    failed: count(DeliveryStatus::Failed),
                    id: m.id,
                    rule: m.rule_id.map(|id| RuleRef { id, name: m.rule_name }),
                    event: m.event,
                    state: MessageState::from_db(&m.state),
                    job_id: m.job_id,
                    text: m.text,
                    at: Timestamp(m.created_at),
                }
            })
            .collect())
    }
}

/// A stored rule, parsed.
pub(crate) fn rule_from_row(row: RuleRow, channels: Vec<String>) -> Result<LoadedRule, String> {
    let spec = RuleSpec {
        name: row.name,
        event: AlertEvent::parse(&row.event)?,
        channels,
        labels: Labels::from_db(&row.labels),
        nodes: row.nodes.split(',').filter(|s| !s.is_empty()).map(NodeId::from_db_str).collect(),
        threshold: row.threshold,
        for_: Duration::from_secs(u64::try_from(row.for_secs).unwrap_or(0)),
        muted_until: row.muted_until.map(Timestamp),
    };
    Ok(LoadedRule {
        id: row.id,
        spec,
        created_at: Timestamp(row.created_at),
        updated_at: Timestamp(row.updated_at),
    })
}

fn rule_row(rule: &LoadedRule) -> RuleRow {
    let spec = &rule.spec;
    RuleRow {
        id: rule.id.clone(),
        name: spec.name.clone(),
        event: spec.event.as_str().to_owned(),
        labels: spec.labels.to_list(),
        nodes: spec.nodes.iter().map(NodeId::as_str).collect::<Vec<_>>().join(","),
        threshold: spec.threshold,
        for_secs: i64::try_from(spec.for_.as_secs()).unwrap_or(i64::MAX),
        muted_until: spec.muted_until.map(|t| t.0),
        created_at: rule.created_at.0,
        updated_at: rule.updated_at.0,
    }
}

fn rule_view(rule: LoadedRule) -> Rule {
    let spec = rule.spec;
    Rule {
        id: rule.id,
        name: spec.name,
        event: spec.event,
        channels: spec.channels,
        labels: spec.labels,
        nodes: spec.nodes,
        threshold: spec.threshold,
        for_: humantime::format_duration(spec.for_).to_string(),
        muted_until: spec.muted_until,
        created_at: rule.created_at,
        updated_at: rule.updated_at,
    }
}

fn open_secrets(master_key: &MasterKey, sealed: &[u8]) -> Option<ChannelSecrets> {
    serde_json::from_str(&master_key.open(sealed)?).ok()
}

/// A stored channel with its secrets opened, ready to send to.
pub(crate) fn open_target(master_key: &MasterKey, row: &ChannelRow) -> Option<Target> {
    let secrets = open_secrets(master_key, &row.sealed)?;
    let kind = ChannelKind::parse(&row.kind).ok()?;
    let settings = serde_json::from_str(&row.settings).unwrap_or_default();
    Some(Target::new(kind, &row.url, secrets, settings))
}

fn channel_not_found(id: &str) -> AppError {
    AppError::NotFound(format!("no channel {id}"))
}

fn rule_not_found(id: &str) -> AppError {
    AppError::NotFound(format!("no rule {id}"))
}

fn cannot_open() -> AppError {
    AppError::Internal(anyhow::anyhow!("a channel's secrets cannot be opened with this master key"))
}

/// A unique name taken: a 409 that says so.
fn name_taken(e: crate::db::DbError) -> AppError {
    match AppError::from(e) {
        AppError::Conflict(_) => {
            AppError::Conflict("that name is taken (names are unique, whatever their case)".into())
        }
        other => other,
    }
}
