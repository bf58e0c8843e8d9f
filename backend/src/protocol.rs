//! The messages nodes exchange, shared by both ends: the secondary's `agent` sends them and
//! the primary's `api` receives them. Receivers ignore unknown fields, so a newer node can
//! talk to an older primary.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::nodes::NodeId;
use crate::stats::SystemStats;

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
