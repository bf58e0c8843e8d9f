//! What a job is: its request (validated at the edge), its states and their order.
//!
//! Every state change is one conditional update in `jobs::repo`, on the job's state and
//! attempt (and, for `repo::Transition`, the node it was given to), made through
//! `JobService`. One that matches no row did not happen: no log line, no event.
//!
//! | change | from | applies if (and sets) | made by |
//! |---|---|---|---|
//! | dispatch | `queued` | attempt n − 1 (attempt n, node, `dispatched_at`) | router: `mark_dispatched` |
//! | requeue | `dispatched` | attempt n (clears node, `dispatched_at`; a `queue_reason`) | router: `requeue` |
//! | `running` | `dispatched` | the report's attempt and node (`started_at`) | node's report |
//! | a final state | `dispatched`, `running` | the report's attempt and node (`exit_code`, `error`, `finished_at`) | node's report |
//! | `failed` | `dispatched`, `running` | the current attempt and node | `reconcile` |
//! | `lost` | `dispatched`, `running` | the current attempt and node | `sweep_lost` |
//! | `cancelled` | `queued` | — (`cancel_requested`, `finished_at`) | `cancel` |
//!
//! The final states a node reports are `succeeded`, `failed`, `timed_out` and `cancelled`.
//!
//! A report that applies nowhere is looked into: for a job not given to that node it is a
//! 403, for an attempt that is over a 409, otherwise stale and ignored. No report names
//! `queued` or `lost`, so none sends a job back or revives it. Cancelling a dispatched or
//! running job only sets `cancel_requested`; its node's report ends it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{AppError, AppResult};
use crate::nodes::{Labels, NodeId};
use crate::protocol::ReportedState;

/// Default and largest timeout a job may ask for.
pub const DEFAULT_TIMEOUT_SEC: u64 = 1800;
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
pub const MAX_ENV_VARS: usize = 100;
pub const MAX_ENV_BYTES: usize = 32 * 1024;

/// A job's state. `queued → dispatched → running → succeeded | failed | timed_out |
/// cancelled`, plus `lost` when its node went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Lost,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Dispatched,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
        JobState::Lost,
    ];
    pub const ACTIVE: [JobState; 2] = [JobState::Dispatched, JobState::Running];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Dispatched => "dispatched",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Cancelled => "cancelled",
            JobState::Lost => "lost",
        }
    }

    pub fn parse(raw: &str) -> Result<JobState, String> {
        JobState::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            "must be one of queued, dispatched, running, succeeded, failed, timed_out, cancelled, lost"
                .to_string()
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Dispatched | JobState::Running)
    }

    pub fn from_report(state: ReportedState) -> JobState {
        match state {
            ReportedState::Running => JobState::Running,
            ReportedState::Succeeded => JobState::Succeeded,
            ReportedState::Failed => JobState::Failed,
            ReportedState::TimedOut => JobState::TimedOut,
            ReportedState::Cancelled => JobState::Cancelled,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Node(NodeId),
    Labels(Labels),
}

/// A validated job request.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub name: Option<String>,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    /// `None`: the default (30 minutes, or `JOB_MAX_TIMEOUT` if that is shorter).
    pub timeout_sec: Option<u64>,
    pub placement: Placement,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Job {
    pub id: String,
    pub name: Option<String>,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    #[cfg_attr(test, ts(type = "number"))]
    pub timeout_sec: u64,
    /// The node asked for, if any.
    pub node_id: Option<String>,
    /// The labels asked for.
    pub labels: Labels,
    pub status: JobState,
    pub attempt: u32,
    /// The node it was given to.
    pub assigned_node_id: Option<String>,
    /// Why it is still queued.
    pub queue_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub submitted_by: String,
    pub created_at: Timestamp,
    pub dispatched_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    #[cfg_attr(test, ts(type = "number"))]
    pub log_bytes: u64,
    /// The fleet-wide run it is part of, if any.
    pub run_id: Option<String>,
}

/// One stored chunk of a job's output.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LogChunk {
    #[cfg_attr(test, ts(type = "number"))]
    pub seq: u64,
    #[cfg_attr(test, ts(type = "\"stdout\" | \"stderr\""))]
    pub stream: &'static str,
    /// The bytes as text (invalid UTF-8 replaced); `GET /api/jobs/:id/logs/raw` gives them exactly.
    pub text: String,
    pub at: Timestamp,
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Checks an environment: names are shell-style identifiers, sizes bounded (413 past them).
pub fn check_env(env: &BTreeMap<String, String>) -> AppResult<()> {
    if env.len() > MAX_ENV_VARS {
        return Err(AppError::PayloadTooLarge(format!("env: at most {MAX_ENV_VARS} variables")));
    }
    let total: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ENV_BYTES {
        return Err(AppError::PayloadTooLarge(format!("env: at most {MAX_ENV_BYTES} bytes in all")));
    }
    for (name, value) in env {
        let ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(AppError::validation(
                "env",
                format!(
                    "{name:?} is not a valid variable name (letters, digits, _; not starting with a digit)"
                ),
            ));
        }
        if value.contains('\0') {
            return Err(AppError::validation(&format!("env.{name}"), "must not contain NUL characters"));
        }
    }
    Ok(())
}
