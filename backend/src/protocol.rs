//! The messages nodes exchange, shared by both ends: the secondary's `agent` sends them and
//! the primary's `api` receives them. Receivers ignore unknown fields, so a newer node can
//! talk to an older primary.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::nodes::NodeId;
use crate::stats::SystemStats;

/// Who is calling, on every node-to-node request: the caller's node ID...
pub const NODE_ID_HEADER: &str = "X-Node-ID";
/// ...and a key: the secondary's own, whichever way the call goes.
pub const NODE_KEY_HEADER: &str = "X-Node-API-Key";
/// What a self-registering secondary presents (`REGISTRATION_TOKEN`).
pub const REGISTRATION_TOKEN_HEADER: &str = "X-Registration-Token";

/// What every outgoing HTTP call of Fleetdeck starts from (node to node, GitHub, Cloudflare):
/// its user agent, redirects never followed (one could carry a node's key elsewhere),
/// `timeout` for a whole exchange, and at most 5 s of it to connect.
pub fn http_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("fleetdeck/", env!("CARGO_PKG_VERSION")))
}

/// A secondary's heartbeat (SPEC §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub version: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub max_jobs: u32,
    #[serde(default)]
    pub running_jobs: Vec<String>,
    #[serde(default)]
    pub stats: Option<SystemStats>,
    #[serde(default)]
    pub uptime_secs: u64,
}

/// The primary's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub primary_node_id: NodeId,
    pub time: Timestamp,
}

/// A self-registration (`POST /api/internal/nodes/register`, with `X-Registration-Token`).
/// Fields stay raw text here; the primary validates each and names the bad one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub name: String,
    pub api_endpoint: String,
    pub api_key: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A job handed to a node (`POST /api/internal/jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReportedState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

/// Which output stream a log chunk holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkParams {
    pub attempt: u32,
    pub seq: u64,
    pub stream: LogStream,
}

/// The primary's answer to a self-registration (201 new, 200 already registered).
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationReply {
    pub node: crate::nodes::Node,
}

/// A node's answer to a dispatched job (202).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobAccepted {
    pub accepted: String,
}

/// The primary's answer to a log chunk: `false` when it already had that `seq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChunkStored {
    pub stored: bool,
}

/// The primary's answer to a job report: `false` when it was stale (nothing changed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReportApplied {
    pub applied: bool,
}
