//! The leader's rule engine: once a second it looks at every node (the registry's cache,
//! which follows every primary's changes), the latest stats, new nodes and failed jobs,
//! steps each rule's state (`states::step`), and writes what changed — states, messages
//! and their deliveries — in one transaction fenced by the leader's epoch. Nothing is sent
//! here: the outbox does that, from what this committed. A new leader loads the states
//! and goes on where the last one stopped, so an outage is announced once whoever leads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use url::Url;

use crate::alerts::message::{JobFacts, NodeFacts, Notification, human_duration, percent};
use crate::alerts::model::{AlertEvent, DeliveryStatus, LoadedRule, MessageState, RuleRef};
use crate::alerts::repo::{self, DeliveryRow, MessageRow, StateRow};
use crate::alerts::states::{Phase, Said, State, step};
use crate::clock::{SharedClock, Timestamp};
use crate::db::Db;
use crate::error::AppResult;
use crate::jobs::{Job, JobService, JobState};
use crate::nodes::cache::CachedNode;
use crate::nodes::{NodeId, NodeStatus, Registry};
use crate::stats::SystemStats;

/// How often the rules are evaluated.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(1);
/// New nodes and failed jobs are looked for this far back (a leader change or restart
/// inside it loses none).
const LOOKBACK: Duration = Duration::from_secs(3600);
/// Stats for threshold rules are reread this often.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// Old messages and one-off marks are cleared this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Delivered and failed messages are kept this long.
const MESSAGES_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// What one term of leadership keeps between evaluations.
#[derive(Debug, Default)]
pub struct Memory {
    states: HashMap<(String, String), State>,
    last_status: HashMap<NodeId, NodeStatus>,
    stats: HashMap<NodeId, SystemStats>,
    stats_read: Option<Instant>,
    pruned: Option<Instant>,
}

/// What one evaluation decided, written in one transaction.
#[derive(Debug, Default)]
struct Plan {
    saves: Vec<StateRow>,
    deletes: Vec<(String, String)>,
    messages: Vec<(MessageRow, Vec<DeliveryRow>)>,
}

pub struct Engine {
    db: Db,
    clock: SharedClock,
    registry: Arc<Registry>,
    jobs: Arc<JobService>,
    base_url: Url,
    flap_window: Duration,
    /// Tells the outbox there is something to send.
    outbox_wake: Arc<Notify>,
}

impl Engine {
    pub fn new(
        db: Db,
        clock: SharedClock,
        registry: Arc<Registry>,
        jobs: Arc<JobService>,
        base_url: Url,
        flap_window: Duration,
        outbox_wake: Arc<Notify>,
    ) -> Engine {
        Engine { db, clock, registry, jobs, base_url, flap_window, outbox_wake }
    }

    /// Evaluates every `EVALUATE_EVERY` while this primary leads.
    pub async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let cluster = self.registry.cluster().clone();
        cluster
            .leadership()
            .during_terms(&shutdown, || {
                let engine = self.clone();
                async move {
                    let mut memory = match engine.load().await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot load the alert states");
                            return;
                        }
                    };
                    let mut tick = tokio::time::interval(EVALUATE_EVERY);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    loop {
                        tick.tick().await;
                        if let Err(e) = engine.evaluate(&mut memory).await {
                            tracing::warn!(error = %e, "evaluating alert rules failed");
                        }
                    }
                }
            })
            .await;
    }

    /// The states as the database has them (at the start of a term).
    pub async fn load(&self) -> AppResult<Memory> {
        let rows = self.db.run(repo::states).await?;
        let states = rows.iter().map(|r| ((r.rule_id.clone(), r.subject.clone()), from_row(r))).collect();
        Ok(Memory { states, ..Memory::default() })
    }

    /// One evaluation: returns how many messages it decided.
    pub async fn evaluate(&self, memory: &mut Memory) -> AppResult<usize> {
        let fence = self.registry.leader_fence()?;
        let now = self.clock.now();
        let rules = self.rules().await?;
        // A removed rule's states went with it.
        memory.states.retain(|(rule, _), _| rules.iter().any(|r| r.id == *rule));
        let nodes = self.registry.probe_targets();
        if rules.iter().any(|r| r.spec.event.takes_threshold())
            && memory.stats_read.is_none_or(|t| t.elapsed() >= STATS_EVERY)
        {
            memory.stats = self
                .registry
                .latest_stats()
                .await?
                .into_iter()
                .filter_map(|(n, s)| Some((n.id, s?)))
                .collect();
            memory.stats_read = Some(Instant::now());
        }
        let mut plan = Plan::default();
        let mut back_online: Vec<&CachedNode> = Vec::new();
        for rule in rules.iter().filter(|r| r.spec.event.is_condition()) {
            let mut covered = HashSet::new();
            for node in nodes.iter().filter(|n| rule.spec.covers(&n.id, &n.labels)) {
                covered.insert(node.id.as_str());
                let Some((holds, value)) = self.condition(rule, node, memory) else { continue };
                let key = (rule.id.clone(), node.id.to_string());
                let before = memory.states.get(&key).copied();
                let (after, said) = step(before, holds, now, rule.spec.for_, self.flap_window);
                if after != before {
                    match after {
                        Some(s) => plan.saves.push(state_row(&key, s)),
                        None => plan.deletes.push(key.clone()),
                    }
                }
                match said {
                    None => {}
                    Some(_) if rule.spec.is_muted(now) => {}
                    Some(Said::Recover) if rule.spec.event.is_down() => back_online.push(node),
                    Some(said) => {
                        let since = before.map_or(now, |s| s.since);
                        let message = self.node_message(rule, node, memory, said, value, since, now);
                        plan.messages.push(message);
                    }
                }
            }
            // Nodes the rule no longer covers (removed, relabelled, the scope changed).
            let gone = memory
                .states
                .keys()
                .filter(|(r, subject)| *r == rule.id && !covered.contains(subject.as_str()));
            plan.deletes.extend(gone.cloned());
        }
        // Once per node, however many of its down alerts ended.
        back_online.sort_by(|a, b| a.id.cmp(&b.id));
        back_online.dedup_by(|a, b| a.id == b.id);
        for node in back_online {
            for rule in rules.iter().filter(|r| r.spec.event == AlertEvent::NodeOnline) {
                if rule.spec.covers(&node.id, &node.labels) && !rule.spec.is_muted(now) {
                    let is_down_rule = |id: &str| rules.iter().any(|r| r.id == id && r.spec.event.is_down());
                    let down_since = memory
                        .states
                        .iter()
                        .filter(|((rule, subject), s)| {
                            subject == node.id.as_str() && s.phase == Phase::Firing && is_down_rule(rule)
                        })
                        .map(|(_, s)| s.since)
                        .min()
                        .unwrap_or(now);
                    let message = self.node_message(rule, node, memory, Said::Recover, None, down_since, now);
                    plan.messages.push(message);
                }
            }
        }
        self.one_offs(&rules, memory, &mut plan, now).await?;
        for node in &nodes {
            memory.last_status.insert(node.id.clone(), node.health.status);
        }
        let count = plan.messages.len();
        if !plan.saves.is_empty() || !plan.deletes.is_empty() || count > 0 {
            let (saves, deletes, messages) = (plan.saves.clone(), plan.deletes.clone(), plan.messages);
            self.db
                .transaction(move |conn| -> AppResult<()> {
                    crate::cluster::check_fence(conn, &fence)?;
                    for row in &saves {
                        repo::save_state(conn, row)?;
                    }
                    for (rule, subject) in &deletes {
                        repo::delete_state(conn, rule, subject)?;
                    }
                    for (message, deliveries) in &messages {
                        repo::insert_message(conn, message, deliveries)?;
                    }
                    Ok(())
                })
                .await?;
            for row in plan.saves {
                let key = (row.rule_id.clone(), row.subject.clone());
                memory.states.insert(key, from_row(&row));
            }
            for key in plan.deletes {
                memory.states.remove(&key);
            }
            if count > 0 {
                tracing::info!(messages = count, "alerts decided");
                self.outbox_wake.notify_one();
            }
        }
        if memory.pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            memory.pruned = Some(Instant::now());
            self.prune(now).await;
        }
        Ok(count)
    }

    async fn rules(&self) -> AppResult<Vec<LoadedRule>> {
        let rows = self.db.run(repo::rules).await?;
        Ok(rows.into_iter().filter_map(|(row, channels)| super::rule_from_row(row, channels).ok()).collect())
    }

    /// Whether `rule`'s condition holds for `node` now, with the measured value; `None`
    /// when it cannot be told (a threshold rule on a node not online, or with no stats).
    fn condition(
        &self,
        rule: &LoadedRule,
        node: &CachedNode,
        memory: &Memory,
    ) -> Option<(bool, Option<f64>)> {
        let event = rule.spec.event;
        if event.is_down() {
            return Some((event.node_is_down(node.health.status), None));
        }
        if node.health.status != NodeStatus::Online {
            return None;
        }
        let value = measure(event, memory.stats.get(&node.id)?)?;
        Some((value > rule.spec.threshold.unwrap_or(100.0), Some(value)))
    }

    /// New nodes and failed jobs: one message each, marked `sent` so none repeats.
    async fn one_offs(
        &self,
        rules: &[LoadedRule],
        memory: &Memory,
        plan: &mut Plan,
        now: Timestamp,
    ) -> AppResult<()> {
        let registered: Vec<&LoadedRule> =
            rules.iter().filter(|r| r.spec.event == AlertEvent::NodeRegistered).collect();
        let failed: Vec<&LoadedRule> =
            rules.iter().filter(|r| r.spec.event == AlertEvent::JobFailed).collect();
        let earliest = |rules: &[&LoadedRule]| {
            rules.iter().map(|r| r.created_at).min().map(|t| t.max(now.minus(LOOKBACK)))
        };
        if let Some(since) = earliest(&registered) {
            for node in self.registry.added_since(since).await? {
                if node.id == *self.registry.own_id() {
                    continue;
                }
                for rule in registered
                    .iter()
                    .filter(|r| r.created_at <= node.created_at && r.spec.covers(&node.id, &node.labels))
                {
                    let key = (rule.id.clone(), node.id.to_string());
                    if memory.states.contains_key(&key) {
                        continue;
                    }
                    plan.saves.push(state_row(&key, sent(now)));
                    if !rule.spec.is_muted(now) {
                        let facts = NodeFacts {
                            id: node.id.to_string(),
                            name: node.name.to_string(),
                            labels: node.labels.as_slice().to_vec(),
                            status: node.status,
                            previous_status: None,
                        };
                        let labels = if node.labels.as_slice().is_empty() {
                            String::new()
                        } else {
                            format!(" (labels: {})", node.labels.as_slice().join(", "))
                        };
                        let title = format!("{} joined the fleet", node.name);
                        let text = format!("New node {}{labels} joined the fleet.", node.name);
                        let n = self.notification(
                            rule,
                            AlertEvent::NodeRegistered,
                            MessageState::Firing,
                            Some(facts),
                            None,
                            title,
                            text,
                            now,
                        );
                        plan.messages.push(message_rows(rule, &n, now));
                    }
                }
            }
        }
        if let Some(since) = earliest(&failed) {
            for job in self.jobs.failed_since(since, 10_000).await? {
                let node = job
                    .assigned_node_id
                    .as_deref()
                    .and_then(|id| NodeId::parse(id).ok())
                    .and_then(|id| self.registry.cached(&id));
                for rule in failed.iter().filter(|r| job.finished_at.is_some_and(|f| r.created_at <= f)) {
                    let covered = match &node {
                        Some(n) => rule.spec.covers(&n.id, &n.labels),
                        None => rule.spec.nodes.is_empty() && rule.spec.labels.as_slice().is_empty(),
                    };
                    let key = (rule.id.clone(), job.id.clone());
                    if !covered || memory.states.contains_key(&key) {
                        continue;
                    }
                    plan.saves.push(state_row(&key, sent(now)));
                    if !rule.spec.is_muted(now) {
                        let n = self.job_notification(rule, &job, node.as_deref(), now);
                        plan.messages.push(message_rows(rule, &n, now));
                    }
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn node_message(
        &self,
        rule: &LoadedRule,
        node: &CachedNode,
        memory: &Memory,
        said: Said,
        value: Option<f64>,
        since: Timestamp,
        now: Timestamp,
    ) -> (MessageRow, Vec<DeliveryRow>) {
        let event = rule.spec.event;
        let status = node.health.status;
        // What it was at the engine's last look; a node that went down or came back was
        // online or down before, even if this term of leadership began too late to see it.
        let previous = memory.last_status.get(&node.id).copied().filter(|s| *s != status).or(match said {
            Said::Fire if event.is_down() => Some(NodeStatus::Online),
            Said::Recover if event == AlertEvent::NodeOnline => Some(NodeStatus::Offline),
            _ => None,
        });
        let facts = NodeFacts {
            id: node.id.to_string(),
            name: node.name.clone(),
            labels: node.labels.as_slice().to_vec(),
            status,
            previous_status: previous,
        };
        let name = &node.name;
        let what = measured_name(event);
        let limit = rule.spec.threshold.map(percent).unwrap_or_default();
        let shown = value.map(percent).unwrap_or_default();
        let (state, title, text) = match said {
            Said::Fire if event.is_down() => (
                MessageState::Firing,
                format!("{name} is {status}"),
                format!("{name} is {status}: {} health checks in a row failed.", node.health.failures),
            ),
            Said::Fire => {
                let lasted = if rule.spec.for_.is_zero() {
                    String::new()
                } else {
                    format!(" for {}", human_duration(rule.spec.for_))
                };
                (
                    MessageState::Firing,
                    format!("{name}: {what} at {shown}"),
                    format!("{what} on {name} is at {shown}, above {limit}{lasted}."),
                )
            }
            Said::Recover if event == AlertEvent::NodeOnline => (
                MessageState::Resolved,
                format!("{name} is back online"),
                format!("{name} is back online after {} down.", human_duration(now.since(since))),
            ),
            Said::Recover => (
                MessageState::Resolved,
                format!("{name}: {what} back to {shown}"),
                format!("{what} on {name} is back to {shown}, below {limit}."),
            ),
            Said::Flapped { flips, during, holds } => {
                let now_is = match (event.is_down(), holds) {
                    (true, true) => format!("it is {status} now"),
                    (true, false) => "it is back online now".to_owned(),
                    (false, true) => format!("{what} is above {limit} now"),
                    (false, false) => format!("{what} is below {limit} now"),
                };
                let how =
                    if event.is_down() { "went down".to_owned() } else { format!("went above {limit}") };
                (
                    MessageState::Flapping,
                    format!("{name} is flapping"),
                    format!("{name} {how} {flips} times in {}; {now_is}.", human_duration(during)),
                )
            }
        };
        let n = self.notification(rule, event, state, Some(facts), value, title, text, now);
        message_rows(rule, &n, now)
    }

    fn job_notification(
        &self,
        rule: &LoadedRule,
        job: &Job,
        node: Option<&CachedNode>,
        now: Timestamp,
    ) -> Notification {
        let label = job.name.clone().unwrap_or_else(|| format!("job {}", &job.id[..8.min(job.id.len())]));
        let on = node.map(|n| format!(" on {}", n.name)).unwrap_or_default();
        let why = match job.status {
            JobState::TimedOut => {
                format!("timed out after {}", human_duration(Duration::from_secs(job.timeout_sec)))
            }
            JobState::Lost => "was lost: its node stopped answering".to_owned(),
            _ => match (job.exit_code, &job.error) {
                (Some(code), _) => format!("failed with exit code {code}"),
                (None, Some(error)) => format!("failed: {error}"),
                (None, None) => "failed".to_owned(),
            },
        };
        let facts = node.map(|n| NodeFacts {
            id: n.id.to_string(),
            name: n.name.clone(),
            labels: n.labels.as_slice().to_vec(),
            status: n.health.status,
            previous_status: None,
        });
        let mut n = self.notification(
            rule,
            AlertEvent::JobFailed,
            MessageState::Firing,
            facts,
            None,
            format!("{label}{on} {why}"),
            format!("{label}{on} {why}."),
            now,
        );
        n.job = Some(JobFacts {
            id: job.id.clone(),
            name: job.name.clone(),
            status: job.status.as_str().to_owned(),
            exit_code: job.exit_code,
            error: job.error.clone(),
        });
        n.url = self.link(&format!("/jobs/{}", job.id));
        n
    }

    #[allow(clippy::too_many_arguments)]
    fn notification(
        &self,
        rule: &LoadedRule,
        event: AlertEvent,
        state: MessageState,
        node: Option<NodeFacts>,
        value: Option<f64>,
        title: String,
        text: String,
        now: Timestamp,
    ) -> Notification {
        let url = node.as_ref().map_or_else(|| self.link("/"), |n| self.link(&format!("/nodes/{}", n.id)));
        Notification {
            id: uuid::Uuid::now_v7().to_string(),
            event: event.as_str().to_owned(),
            state,
            rule: RuleRef { id: rule.id.clone(), name: rule.spec.name.clone() },
            node,
            job: None,
            value: value.map(|v| (v * 10.0).round() / 10.0),
            threshold: rule.spec.threshold,
            at: now,
            title,
            text,
            url,
        }
    }

    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    async fn prune(&self, now: Timestamp) {
        let result = self
            .db
            .write(move |conn| {
                let marks = repo::prune_sent(conn, now.minus(LOOKBACK * 2))?;
                let messages = repo::prune_messages(conn, now.minus(MESSAGES_KEPT))?;
                Ok(marks + messages)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "removing old alert messages failed");
        }
    }
}

/// A message and one pending delivery per channel of its rule, due now.
fn message_rows(rule: &LoadedRule, n: &Notification, now: Timestamp) -> (MessageRow, Vec<DeliveryRow>) {
    let deliveries = rule
        .spec
        .channels
        .iter()
        .map(|channel| DeliveryRow {
            id: uuid::Uuid::now_v7().to_string(),
            message_id: n.id.clone(),
            channel_id: channel.clone(),
            status: DeliveryStatus::Pending.as_str().to_owned(),
            attempts: 0,
            next_try_at: Some(now.0),
            last_attempt_at: None,
            last_error: None,
            created_at: now.0,
            delivered_at: None,
        })
        .collect();
    let message = MessageRow {
        id: n.id.clone(),
        rule_id: Some(rule.id.clone()),
        rule_name: rule.spec.name.clone(),
        event: n.event.clone(),
        state: n.state.as_str().to_owned(),
        node_id: n.node.as_ref().map(|f| f.id.clone()),
        node_name: n.node.as_ref().map(|f| f.name.clone()),
        job_id: n.job.as_ref().map(|j| j.id.clone()),
        text: n.text.clone(),
        body: serde_json::to_string(&n).unwrap_or_default(),
        created_at: now.0,
    };
    (message, deliveries)
}

fn sent(now: Timestamp) -> State {
    State { phase: Phase::Sent, since: now, flapping_since: None, flips: 0, holds: true }
}

fn state_row(key: &(String, String), s: State) -> StateRow {
    StateRow {
        rule_id: key.0.clone(),
        subject: key.1.clone(),
        phase: s.phase.as_str().to_owned(),
        since: s.since.0,
        flapping_since: s.flapping_since.map(|t| t.0),
        flips: i32::try_from(s.flips).unwrap_or(i32::MAX),
        holds: s.holds,
    }
}

fn from_row(r: &StateRow) -> State {
    State {
        phase: Phase::from_db(&r.phase),
        since: Timestamp(r.since),
        flapping_since: r.flapping_since.map(Timestamp),
        flips: u32::try_from(r.flips).unwrap_or(0),
        holds: r.holds,
    }
}

/// The percentage a threshold event watches.
fn measure(event: AlertEvent, stats: &SystemStats) -> Option<f64> {
    let share = |used: u64, total: u64| {
        #[allow(clippy::cast_precision_loss)]
        (total > 0).then(|| used as f64 * 100.0 / total as f64)
    };
    match event {
        AlertEvent::CpuAbove => Some(stats.cpu_usage_percent),
        AlertEvent::MemoryAbove => share(stats.memory.used_bytes, stats.memory.total_bytes),
        AlertEvent::DiskAbove => {
            let (used, total) = stats.data_disk();
            share(used, total)
        }
        _ => None,
    }
}

fn measured_name(event: AlertEvent) -> &'static str {
    match event {
        AlertEvent::CpuAbove => "CPU",
        AlertEvent::MemoryAbove => "Memory",
        AlertEvent::DiskAbove => "Disk",
        _ => "",
    }
}
