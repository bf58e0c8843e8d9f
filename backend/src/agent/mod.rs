//! The secondary's side of the conversation with its primary.
//!
//! - The link: [`PrimaryLink`] holds the primary's URLs and node ID. The URLs are
//!   `PRIMARY_NODE_URL`, one or several ([`PrimaryUrls`]): every call goes to the current
//!   one; a call it does not answer (no connection, a timeout, a 5xx) moves the next
//!   attempt to the next URL, wrapping around. All of them answer as one primary node ID
//!   (they share its database), so what follows holds whichever answers. The ID is
//!   `PRIMARY_NODE_ID`, else the one kept in `DATA_DIR/primary_node_id`, else learned from
//!   the first heartbeat reply and written there. A reply naming another ID is logged as an error, not adopted,
//!   and counts as a failed heartbeat. The internal API takes calls only from this ID (with
//!   this node's own key), so none before it is known.
//! - Registration: with `REGISTRATION_TOKEN` set, the agent registers
//!   (`POST /api/internal/nodes/register`) before its first heartbeat and again after any
//!   heartbeat answered 401 (the primary lost or never had this node). With `JOIN_TOKEN`
//!   (written by the install script) it registers with that token until the primary takes
//!   it, then notes in `DATA_DIR/joined` that it has joined and never shows the (spent)
//!   token again. A failed registration is retried before the next heartbeat but does not
//!   hold this one back: the primary may know the node already.
//! - Heartbeats: the first `FIRST_HEARTBEAT_AFTER` (2 s) after start, then every
//!   `HEARTBEAT_INTERVAL`, with version, labels, `max_jobs`, stats, uptime and, as
//!   `running_jobs`, the jobs the worker is still responsible for (`Runner::known_jobs`).
//!   A failed one (unreachable, any non-2xx, a reply naming another primary) is retried
//!   after [`retry_delay`]: doubling from `MIN_RETRY` (1 s) to at most `MAX_RETRY` (5 min),
//!   jittered to 50–100 % of the step, never below `MIN_RETRY`. The same delay applies
//!   when the failure moved to another primary.
//!
//! - The outbound socket (`tunnel`, `NODE_CONNECT=outbound`): how a primary that cannot
//!   reach this node calls it.
//!
//! This module knows nothing of the database or the HTTP server.

pub mod tunnel;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use tokio_util::sync::CancellationToken;

use crate::data_dir;
use crate::identity::{self, NodeIdentity};
use crate::nodes::{Labels, NodeId, NodeName, NodeUrl};
use crate::protocol::{
    Connect, Heartbeat, HeartbeatReply, JOIN_TOKEN_HEADER, NODE_ID_HEADER, NODE_KEY_HEADER, PrimaryUrls,
    REGISTRATION_TOKEN_HEADER, Registration, unanswered,
};
use crate::stats::StatsCollector;
use crate::worker::runner::Runner;

const FIRST_HEARTBEAT_AFTER: Duration = Duration::from_secs(2);
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What a secondary knows of its primary; shared with the internal API's authentication.
#[derive(Debug)]
pub struct PrimaryLink {
    pub urls: PrimaryUrls,
    primary_id: RwLock<Option<NodeId>>,
    data_dir: PathBuf,
}

impl PrimaryLink {
    /// The configured primary ID, else the one kept in `DATA_DIR`, else none yet.
    pub fn new(
        urls: PrimaryUrls,
        configured_id: Option<NodeId>,
        data_dir: PathBuf,
    ) -> anyhow::Result<PrimaryLink> {
        let id = match configured_id {
            Some(id) => Some(id),
            None => identity::load_primary_id(&data_dir)?,
        };
        Ok(PrimaryLink { urls, primary_id: RwLock::new(id), data_dir })
    }

    /// Whether this node has joined with its `JOIN_TOKEN` (kept in `DATA_DIR/joined`).
    fn joined(&self) -> bool {
        identity::joined_path(&self.data_dir).exists()
    }

    fn mark_joined(&self) {
        if let Err(e) =
            data_dir::read_or_create_file(&identity::joined_path(&self.data_dir), || "joined".into())
        {
            tracing::error!(error = %e, "could not note that this node has joined");
        }
    }

    pub fn primary_id(&self) -> Option<NodeId> {
        self.primary_id.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Takes the ID from a heartbeat reply: kept the first time, refused if it ever differs.
    fn learn(&self, id: &NodeId) -> bool {
        let mut current = self.primary_id.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*current {
            Some(known) if known == id => true,
            Some(known) => {
                tracing::error!(expected = %known, answered = %id, "the primary answered with another node ID; ignoring it (set PRIMARY_NODE_ID or clear DATA_DIR/primary_node_id if the primary really changed)");
                false
            }
            None => {
                if let Err(e) = identity::store_primary_id(&self.data_dir, id) {
                    tracing::error!(error = %e, "could not keep the primary's ID");
                }
                tracing::info!(primary_node_id = %id, "learned the primary's node ID");
                *current = Some(id.clone());
                true
            }
        }
    }
}

/// Why a heartbeat failed.
#[derive(Debug)]
enum HeartbeatError {
    /// The primary does not know this node or its key (401).
    Unknown,
    Other(String),
}

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub name: NodeName,
    pub api_endpoint: NodeUrl,
    /// `NODE_LABELS`, sent with every heartbeat; `None`: the primary's labels stand.
    pub labels: Option<Labels>,
    pub max_jobs: u32,
    pub heartbeat_interval: Duration,
    pub registration_token: Option<SecretString>,
    pub join_token: Option<SecretString>,
    /// How the primaries reach this node, told with every heartbeat.
    pub connect: Connect,
}

/// The secondary's background conversation with its primary.
#[derive(Debug)]
pub struct Agent {
    link: Arc<PrimaryLink>,
    identity: NodeIdentity,
    settings: AgentSettings,
    stats: StatsCollector,
    runner: Arc<Runner>,
    client: reqwest::Client,
    started: Instant,
}

/// The delay before retrying after `failures` consecutive failed heartbeats: doubling from
/// 1 s, at most 5 min, with jitter that never goes below 1 s.
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let exp = MIN_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(MAX_RETRY);
    let jittered = capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    jittered.clamp(MIN_RETRY, MAX_RETRY)
}

impl Agent {
    pub fn new(
        link: Arc<PrimaryLink>,
        identity: NodeIdentity,
        settings: AgentSettings,
        stats: StatsCollector,
        runner: Arc<Runner>,
    ) -> anyhow::Result<Agent> {
        let client = link.urls.client(Duration::from_secs(10))?;
        Ok(Agent { link, identity, settings, stats, runner, client, started: Instant::now() })
    }

    /// Registers if a token is configured, then heartbeats until `shutdown`. A heartbeat
    /// the primary refuses (it lost or never had this node) makes it register again.
    pub async fn run(self, shutdown: CancellationToken) {
        let registration = if self.join_pending() {
            "joining with JOIN_TOKEN"
        } else if self.settings.join_token.is_some() {
            "joined with a join token"
        } else if self.settings.registration_token.is_some() {
            "self-registration with REGISTRATION_TOKEN"
        } else {
            "added by an operator on the primary"
        };
        let primaries = self.link.urls.all().iter().map(NodeUrl::as_str).collect::<Vec<_>>().join(",");
        tracing::info!(node_id = %self.identity.id, primary = %primaries, registration, "secondary node starting");
        let mut delay = FIRST_HEARTBEAT_AFTER;
        let mut failures = 0u32;
        let mut needs_registration = self.registers();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            if needs_registration {
                // Even when it fails, try the heartbeat: the primary may know us already.
                needs_registration = !self.register().await;
            }
            match self.heartbeat().await {
                Ok(reply) if self.link.learn(&reply.primary_node_id) => {
                    if failures > 0 || delay == FIRST_HEARTBEAT_AFTER {
                        tracing::info!(primary_node_id = %reply.primary_node_id, "heartbeat accepted: registered with the primary and online");
                    }
                    failures = 0;
                    delay = self.settings.heartbeat_interval;
                    continue;
                }
                Ok(_) => {}
                Err(HeartbeatError::Unknown) => {
                    needs_registration = self.registers();
                    if self.settings.join_token.is_some() && !needs_registration {
                        tracing::error!(node_id = %self.identity.id, "the primary does not know this node (removed since it joined?): create a join token on the primary and run its install command again (the node keeps its ID)");
                    } else {
                        tracing::error!(node_id = %self.identity.id, "the primary does not know this node or its key: add it on the primary (POST /api/nodes, or the UI) with this NODE_ID and NODE_API_KEY, or join it with a join token");
                    }
                }
                Err(HeartbeatError::Other(e)) => tracing::warn!(error = %e, "heartbeat failed"),
            }
            failures += 1;
            delay = retry_delay(failures, rand::thread_rng().r#gen());
            tracing::debug!(failures, retry_in = ?delay, "retrying the heartbeat");
        }
    }

    fn heartbeat_payload(&self) -> Heartbeat {
        let running_jobs = self.runner.known_jobs();
        let mut stats = self.stats.latest();
        stats.labels = self.settings.labels.as_ref().map(|l| l.as_slice().to_vec()).unwrap_or_default();
        stats.max_jobs = self.settings.max_jobs;
        stats.running_jobs.clone_from(&running_jobs);
        Heartbeat {
            version: crate::VERSION.to_owned(),
            connect: self.settings.connect,
            labels: self.settings.labels.as_ref().map(|l| l.as_slice().to_vec()),
            max_jobs: self.settings.max_jobs,
            running_jobs,
            stats: Some(stats),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    async fn heartbeat(&self) -> Result<HeartbeatReply, HeartbeatError> {
        let primary = self.link.urls.current();
        let outcome = self
            .client
            .post(primary.join(&format!("/api/internal/nodes/{}/heartbeat", self.identity.id)))
            .header(NODE_ID_HEADER, self.identity.id.as_str())
            .header(NODE_KEY_HEADER, self.identity.api_key.expose())
            .json(&self.heartbeat_payload())
            .send()
            .await;
        if unanswered(&outcome) {
            self.link.urls.failed(&primary);
        }
        let response =
            outcome.map_err(|e| HeartbeatError::Other(format!("cannot reach the primary: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(HeartbeatError::Unknown);
        }
        if !status.is_success() {
            let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
            return Err(HeartbeatError::Other(format!(
                "the primary answered HTTP {}: {body}",
                status.as_u16()
            )));
        }
        response.json().await.map_err(|e| HeartbeatError::Other(format!("unreadable reply: {e}")))
    }

    /// Whether a `JOIN_TOKEN` is set that the primary has not taken yet.
    fn join_pending(&self) -> bool {
        self.settings.join_token.is_some() && !self.link.joined()
    }

    /// Whether this node registers itself (with its join token, or `REGISTRATION_TOKEN`).
    fn registers(&self) -> bool {
        self.join_pending() || self.settings.registration_token.is_some()
    }

    /// One registration attempt; `true` when the primary has us.
    async fn register(&self) -> bool {
        let joining = self.join_pending();
        let (header, token) = match (&self.settings.join_token, &self.settings.registration_token) {
            (Some(token), _) if joining => (JOIN_TOKEN_HEADER, token),
            (_, Some(token)) => (REGISTRATION_TOKEN_HEADER, token),
            _ => return true,
        };
        let primary = self.link.urls.current();
        let body = Registration {
            id: self.identity.id.to_string(),
            name: self.settings.name.to_string(),
            api_endpoint: self.settings.api_endpoint.to_string(),
            api_key: self.identity.api_key.expose().to_owned(),
            labels: self.settings.labels.as_ref().map(|l| l.as_slice().to_vec()).unwrap_or_default(),
        };
        let result = self
            .client
            .post(primary.join("/api/internal/nodes/register"))
            .header(header, token.expose_secret())
            .json(&body)
            .send()
            .await;
        if unanswered(&result) {
            self.link.urls.failed(&primary);
        }
        match result {
            Ok(r) if r.status().is_success() => {
                if joining {
                    self.link.mark_joined();
                }
                tracing::info!(node_id = %self.identity.id, "registered with the primary");
                true
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                tracing::error!(%primary, status, answer = %body.chars().take(300).collect::<String>(), "the primary refused this node's registration");
                false
            }
            Err(e) => {
                tracing::warn!(%primary, error = %e, "cannot reach the primary to register");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_within_bounds_and_jitters() {
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(retry_delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(30, 1.0), Duration::from_secs(300));
        assert_eq!(retry_delay(30, 0.0), Duration::from_secs(150));
        for failures in 0..40 {
            for jitter in [0.0, 0.3, 1.0] {
                let d = retry_delay(failures, jitter);
                assert!((MIN_RETRY..=MAX_RETRY).contains(&d));
            }
        }
    }
}
