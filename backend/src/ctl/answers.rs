//! The API's answers as `ctl` reads them for its tables. The server's DTOs only serialize
//! (their fields are checked newtypes built from the database, not from JSON), so these are
//! the client's own, holding just what the tables show; the status enums are shared.
//! `--json` prints the answers as they came instead.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ctl::client::CtlError;
use crate::jobs::JobState;
use crate::nodes::NodeStatus;

/// An answer kept as JSON (to print with `--json`) read as `T` (for a table).
pub fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, CtlError> {
    serde_json::from_value(value)
        .map_err(|e| CtlError::Local(format!("the primary's answer is not what this client expects: {e}")))
}

/// `GET /api/nodes/{id}`, an item of `GET /api/nodes`.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub api_endpoint: String,
    pub is_primary: bool,
    pub status: NodeStatus,
    pub labels: Vec<String>,
    pub consecutive_failures: u32,
    pub last_seen: Option<String>,
    pub last_health_check: Option<String>,
    pub last_error: Option<String>,
    pub version: Option<String>,
    pub max_jobs: u32,
    pub created_at: String,
}

/// `POST /api/nodes` and `POST /api/nodes/{id}/rotate-key`: a key shown once.
#[derive(Debug, Deserialize)]
pub struct IssuedKey {
    pub node: Node,
    /// The `.env` to put on the secondary.
    pub env: String,
    pub previous_key_valid_until: Option<String>,
}

/// `POST /api/nodes/{id}/check`.
#[derive(Debug, Deserialize)]
pub struct CheckResult {
    pub node: Node,
    pub error: Option<String>,
}

/// `GET /api/jobs/{id}`, an item of `GET /api/jobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub id: String,
    pub name: Option<String>,
    pub command: String,
    pub status: JobState,
    pub timeout_sec: u64,
    pub node_id: Option<String>,
    pub labels: Vec<String>,
    pub assigned_node_id: Option<String>,
    pub queue_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub submitted_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// An item of `GET /api/jobs/{id}/logs`, and a `chunk` of the live stream.
#[derive(Debug, Deserialize)]
pub struct LogChunk {
    pub seq: u64,
    pub stream: OutputStream,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// `GET /api/jobs/{id}/logs`: a page of stored output.
#[derive(Debug, Deserialize)]
pub struct LogPage {
    pub items: Vec<LogChunk>,
    pub next_after_seq: Option<u64>,
}

/// What `GET /api/jobs/{id}/logs/ws` sends (`api::jobs::LogMessage`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogMessage {
    Chunk(LogChunk),
    End { status: JobState, exit_code: Option<i32> },
    Resync,
}

/// `GET /api/runs/{id}`: a fleet-wide run and its nodes.
#[derive(Debug, Deserialize)]
pub struct Run {
    pub id: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub nodes: Vec<RunNode>,
}

#[derive(Debug, Deserialize)]
pub struct RunNode {
    pub node_name: String,
    /// `waiting`, `skipped`, or its job's state.
    pub status: String,
    pub job_id: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// An item of `GET /api/tokens`.
#[derive(Debug, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// `POST /api/tokens`: the secret is shown once.
#[derive(Debug, Deserialize)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

/// `GET /api/me`.
#[derive(Debug, Deserialize)]
pub struct Me {
    pub auth: String,
    pub user: Option<Principal>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    User { login: String, provider: String },
    Token { name: String },
    Anonymous,
}

/// `GET /api/health`.
#[derive(Debug, Deserialize)]
pub struct Health {
    pub version: String,
}

/// An item of `GET /api/system/stats`: every node, unpaged.
#[derive(Debug, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub status: NodeStatus,
}
