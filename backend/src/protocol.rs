//! The messages nodes exchange, shared by both ends: the secondary's `agent` sends them and
//! the primary's `api` receives them. Receivers ignore unknown fields, so a newer node can
//! talk to an older primary. It also holds what both senders on a secondary (`agent` and
//! `worker::shipper`) share about where to send: [`PrimaryUrls`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::config::AccessServiceToken;
use crate::nodes::{NodeId, NodeUrl};
use crate::stats::SystemStats;

/// Who is calling, on every node-to-node request: the caller's node ID...
pub const NODE_ID_HEADER: &str = "X-Node-ID";
/// ...and a key: the secondary's own, whichever way the call goes.
pub const NODE_KEY_HEADER: &str = "X-Node-API-Key";
/// What a self-registering secondary presents (`REGISTRATION_TOKEN`).
pub const REGISTRATION_TOKEN_HEADER: &str = "X-Registration-Token";
/// Carries a join token on a registration, in place of `X-Registration-Token`.
pub const JOIN_TOKEN_HEADER: &str = "X-Join-Token";
/// A Cloudflare Access service token's two halves, as Access reads them.
pub const ACCESS_CLIENT_ID_HEADER: &str = "CF-Access-Client-Id";
pub const ACCESS_CLIENT_SECRET_HEADER: &str = "CF-Access-Client-Secret";

/// What every outgoing HTTP call of Fleetdeck starts from (node to node, GitHub, Cloudflare):
/// its user agent, redirects never followed (one could carry a node's key elsewhere),
/// `timeout` for a whole exchange, at most 5 s of it to connect and at most 5 s of silence
/// while waiting for the answer (a frozen peer that accepted the connection is given up
/// on in seconds, and a node fails over to its next primary).
pub fn http_client(timeout: Duration) -> reqwest::ClientBuilder {
    let patience = timeout.min(Duration::from_secs(5));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(patience)
        .read_timeout(patience)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("fleetdeck/", env!("CARGO_PKG_VERSION")))
}

/// The primaries a node sends to (`PRIMARY_NODE_URL`, one URL or several): all of them
/// serve one database and answer as one primary node ID, so any that answers will do.
///
/// Every sender uses [`current`](PrimaryUrls::current) and sticks to it while it answers.
/// When it does not ([`unanswered`]: no connection, a timeout, a 5xx), the sender reports
/// [`failed`](PrimaryUrls::failed) and its next attempt goes to the next URL, after the
/// last back to the first. A 4xx is a real answer and moves nothing. Clones share one
/// position, so the agent and the shipper fail over together.
#[derive(Debug, Clone)]
pub struct PrimaryUrls(Arc<Urls>);

#[derive(Debug)]
struct Urls {
    list: Vec<NodeUrl>,
    current: AtomicUsize,
    /// Shown on every request to them (`CF_ACCESS_CLIENT_ID` / `CF_ACCESS_CLIENT_SECRET`).
    access: Option<AccessServiceToken>,
}

impl PrimaryUrls {
    /// `None` for an empty list. A URL given twice counts once. `access`: the Cloudflare
    /// Access service token every request to them carries, if they sit behind Access.
    pub fn new(urls: Vec<NodeUrl>, access: Option<AccessServiceToken>) -> Option<PrimaryUrls> {
        let mut list: Vec<NodeUrl> = Vec::with_capacity(urls.len());
        for url in urls {
            if !list.contains(&url) {
                list.push(url);
            }
        }
        (!list.is_empty()).then(|| PrimaryUrls(Arc::new(Urls { list, current: AtomicUsize::new(0), access })))
    }

    /// A list of one (a primary reporting to itself).
    pub fn one(url: NodeUrl) -> PrimaryUrls {
        PrimaryUrls(Arc::new(Urls { list: vec![url], current: AtomicUsize::new(0), access: None }))
    }

    /// The HTTP client for requests to the primaries (`http_client(timeout)`), carrying the
    /// Access service token on every request when there is one (its secret marked
    /// sensitive, so it never shows in debug output).
    pub fn client(&self, timeout: Duration) -> anyhow::Result<reqwest::Client> {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut builder = http_client(timeout);
        if let Some(token) = &self.0.access {
            let mut secret = HeaderValue::from_str(token.client_secret.expose_secret())?;
            secret.set_sensitive(true);
            let mut headers = HeaderMap::new();
            headers.insert(ACCESS_CLIENT_ID_HEADER, HeaderValue::from_str(&token.client_id)?);
            headers.insert(ACCESS_CLIENT_SECRET_HEADER, secret);
            builder = builder.default_headers(headers);
        }
        Ok(builder.build()?)
    }

    /// The Cloudflare Access service token requests to the primaries carry, if any (for the
    /// outbound socket's upgrade request, which does not go through `client`).
    pub fn access(&self) -> Option<&AccessServiceToken> {
        self.0.access.as_ref()
    }

    /// Where the next request goes.
    pub fn current(&self) -> NodeUrl {
        self.0.list[self.0.current.load(Ordering::Acquire) % self.0.list.len()].clone()
    }

    /// Every URL, in the configured order.
    pub fn all(&self) -> &[NodeUrl] {
        &self.0.list
    }

    /// `url` did not answer: move on to the next URL, unless another sender already moved
    /// away from `url` (so several requests failing on the same primary move once).
    pub fn failed(&self, url: &NodeUrl) {
        let list = &self.0.list;
        if list.len() < 2 {
            return;
        }
        let Some(at) = list.iter().position(|u| u == url) else { return };
        let next = (at + 1) % list.len();
        if self.0.current.compare_exchange(at, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            tracing::warn!(failed = %url, next = %list[next], "the primary stopped answering; trying the next one in PRIMARY_NODE_URL");
        }
    }
}

/// Whether a request's outcome means the primary stopped answering (no connection, a
/// timeout, a 5xx: try another) rather than answered (anything else, a 4xx included).
pub fn unanswered(outcome: &reqwest::Result<reqwest::Response>) -> bool {
    outcome.as_ref().map_or(true, |r| r.status().is_server_error())
}

/// A secondary's heartbeat (SPEC §5).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    pub version: String,
    /// How the primaries reach this node (absent: inbound, as before `NODE_CONNECT`).
    #[serde(default)]
    pub connect: Connect,
    /// The node's `NODE_LABELS`, which replace its labels on the primary. Absent when the
    /// node does not set them: its labels are then the primary's to give (a join token,
    /// the UI, `PUT /api/nodes/:id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    pub max_jobs: u32,
    #[serde(default)]
    pub running_jobs: Vec<String>,
    #[serde(default)]
    pub stats: Option<SystemStats>,
    #[serde(default)]
    pub uptime_secs: u64,
}

/// How the primaries reach a node: at its `NODE_API_ENDPOINT` (inbound), or over the
/// WebSocket the node keeps open to a primary (outbound: `NODE_CONNECT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Connect {
    #[default]
    Inbound,
    Outbound,
}

impl Connect {
    pub fn as_str(self) -> &'static str {
        match self {
            Connect::Inbound => "inbound",
            Connect::Outbound => "outbound",
        }
    }

    /// As stored; anything unknown is inbound.
    pub fn from_db(raw: &str) -> Connect {
        if raw == "outbound" { Connect::Outbound } else { Connect::Inbound }
    }
}

/// What a primary asks of a node: over HTTP to an inbound node's internal API, over its
/// socket to an outbound one, relayed by the primary that holds that socket.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum NodeCall {
    /// The health probe (`GET /api/internal/system/stats`): the node's stats.
    Probe,
    /// Take a job (`POST /api/internal/jobs`).
    Dispatch { assignment: JobAssignment },
    /// Cancel a job running there (`POST /api/internal/jobs/:id/cancel`).
    Cancel { job_id: String },
}

/// A node's answer to a [`NodeCall`], as its HTTP API would give it: a status and the JSON
/// body (an error body for anything but 2xx).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeAnswer {
    pub status: u16,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// A text frame on an outbound node's socket (`/api/internal/nodes/:id/connect`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TunnelFrame {
    /// The primary's first frame: the ID the primaries answer as (checked by the node like
    /// a heartbeat reply's).
    Hello { primary_node_id: NodeId },
    /// Primary to node: a call; answered by the `Answer` with the same `id`.
    Call { id: u64, call: NodeCall },
    /// Node to primary.
    Answer { id: u64, answer: NodeAnswer },
}

/// The primary's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatReply {
    pub primary_node_id: NodeId,
    pub time: Timestamp,
}

/// A self-registration (`POST /api/internal/nodes/register`, with `X-Registration-Token` or
/// `X-Join-Token`).
/// Fields stay raw text here; the primary validates each and names the bad one.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registration {
    pub id: String,
    pub name: String,
    pub api_endpoint: String,
    pub api_key: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A job handed to a node (`POST /api/internal/jobs`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAssignment {
    pub job_id: String,
    /// Which dispatch of the job this is; every report names it.
    pub attempt: u32,
    pub command: String,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub timeout_sec: u64,
}

/// What a node says about a job it runs (`POST /api/internal/jobs/:id/status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct JobReport {
    pub attempt: u32,
    pub state: ReportedState,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub error: Option<String>,
    /// With a final state: the sequence number of the last log chunk (none if no output).
    #[serde(default)]
    pub last_seq: Option<u64>,
}

/// The states a node reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportedState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

/// Which output stream a log chunk holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    pub fn parse(raw: &str) -> Option<LogStream> {
        match raw {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }
}

/// Where a log chunk goes: `POST /api/internal/jobs/:id/logs?attempt=&seq=&stream=`, the
/// body being the raw bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChunkParams {
    pub attempt: u32,
    pub seq: u64,
    pub stream: LogStream,
}

/// The primary's answer to a self-registration (201 new, 200 already registered).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegistrationReply {
    pub node: crate::nodes::Node,
}

/// A node's answer to a dispatched job (202).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAccepted {
    pub accepted: String,
}

/// The primary's answer to a log chunk: `false` when it already had that `seq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChunkStored {
    pub stored: bool,
}

/// The primary's answer to a job report: `false` when it was stale (nothing changed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportApplied {
    pub applied: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> PrimaryUrls {
        PrimaryUrls::new(list.iter().map(|u| NodeUrl::parse(u).unwrap()).collect(), None).unwrap()
    }

    #[test]
    fn primary_urls_stick_to_one_and_move_once_per_failure() {
        let urls = urls(&["http://a:8080", "http://b:8080", "http://c:8080"]);
        let (a, b, c) = (urls.all()[0].clone(), urls.all()[1].clone(), urls.all()[2].clone());
        assert_eq!(urls.current(), a);
        assert_eq!(urls.current(), a, "no failure, no move");

        // Two senders failing on `a` at once move to `b`, not past it.
        let other = urls.clone();
        urls.failed(&a);
        other.failed(&a);
        assert_eq!(urls.current(), b);
        assert_eq!(other.current(), b, "clones share the position");

        // A late report about a URL no longer current changes nothing.
        urls.failed(&c);
        assert_eq!(urls.current(), b);

        urls.failed(&b);
        assert_eq!(urls.current(), c);
        urls.failed(&c);
        assert_eq!(urls.current(), a, "wraps around");
    }

    #[test]
    fn a_single_url_or_an_empty_list() {
        let one = urls(&["http://lb:8080"]);
        one.failed(&one.current());
        assert_eq!(one.current().as_str(), "http://lb:8080");
        assert!(PrimaryUrls::new(Vec::new(), None).is_none());
        assert_eq!(urls(&["http://a:1", "http://a:1/"]).all().len(), 1);
    }
}
