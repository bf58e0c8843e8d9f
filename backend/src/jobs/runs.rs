//! Fleet-wide runs: one command on every matching node, one job per node.
//!
//! A run fixes its nodes when it starts (every node, those holding all of some labels, or a
//! list), in order. A node that is online and takes jobs gets a job at once, queued for
//! that node like any other; one that is not is listed as skipped, with the reason. With
//! `max_parallel`, only that many of the run's jobs are unfinished at a time: the rest of
//! the nodes wait their turn, and the leader's router starts the next ones as jobs end
//! ([`RunService::advance`], one fenced transaction per pass). With `stop_on_failure` the
//! first job that does not succeed stops the roll: the nodes still waiting are skipped.
//! Cancelling a run skips its waiting nodes and cancels every unfinished job.
//!
//! A run's status is derived from its nodes: `running` while a node waits or a job is
//! unfinished; then `failed` if a job failed, timed out or was lost; `cancelled` if it was
//! cancelled or a job was; `succeeded` otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use diesel::prelude::*;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::db::schema::{jobs, run_nodes, runs};
use crate::db::{Db, DbConnection};
use crate::error::{AppError, AppResult};
use crate::jobs::model::{JobState, NewJob, Placement};
use crate::jobs::repo::{self, JobRow, waiting};
use crate::jobs::service::JobService;
use crate::nodes::cache::CachedNode;
use crate::nodes::{Labels, NodeId};

/// Largest `max_parallel`.
pub const MAX_PARALLEL: u32 = 10_000;
/// Most nodes one `node_ids` may list.
pub const MAX_RUN_NODES: usize = 10_000;
/// How much of each node's output is compared when output is grouped.
pub const GROUP_BYTES: u64 = 64 * 1024;

/// Which nodes a run is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunTarget {
    All,
    Labels(Labels),
    Nodes(Vec<NodeId>),
}

/// A validated run request: what each node runs (`job`, whose placement is ignored) and where.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub job: NewJob,
    pub target: RunTarget,
    pub max_parallel: Option<u32>,
    pub stop_on_failure: bool,
}

/// A run's state, derived from its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// How a run's nodes stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RunTotals {
    pub nodes: u32,
    /// Not started yet: their turn has not come.
    pub waiting: u32,
    /// Not started, and will not be (see each node's `reason`).
    pub skipped: u32,
    /// Queued, dispatched or running.
    pub active: u32,
    pub succeeded: u32,
    /// Failed, timed out or lost.
    pub failed: u32,
    pub cancelled: u32,
}

impl RunTotals {
    fn count_job(&mut self, state: JobState, n: u32) {
        match state {
            JobState::Queued | JobState::Dispatched | JobState::Running => self.active += n,
            JobState::Succeeded => self.succeeded += n,
            JobState::Failed | JobState::TimedOut | JobState::Lost => self.failed += n,
            JobState::Cancelled => self.cancelled += n,
        }
    }

    fn state(&self, cancelled: bool) -> RunState {
        if self.waiting > 0 || self.active > 0 {
            RunState::Running
        } else if self.failed > 0 {
            RunState::Failed
        } else if cancelled || self.cancelled > 0 {
            RunState::Cancelled
        } else {
            RunState::Succeeded
        }
    }
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Run {
    pub id: String,
    pub name: Option<String>,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    #[cfg_attr(test, ts(type = "number"))]
    pub timeout_sec: u64,
    /// The target as asked: every node, or those holding all of `labels`, or `node_ids`.
    pub all: bool,
    pub labels: Labels,
    pub node_ids: Vec<String>,
    pub max_parallel: Option<u32>,
    pub stop_on_failure: bool,
    pub status: RunState,
    /// Why no more nodes are started, if the run was cancelled or stopped after a failure.
    pub stopped: Option<String>,
    pub submitted_by: String,
    pub created_at: Timestamp,
    pub totals: RunTotals,
}

/// One node of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RunNode {
    pub node_id: String,
    /// Its name when the run started (kept if the node is removed later).
    pub node_name: String,
    /// `waiting` (its turn has not come), `skipped`, or its job's state.
    #[cfg_attr(
        test,
        ts(
            type = r#""queued" | "dispatched" | "running" | "succeeded" | "failed" | "timed_out" | "cancelled" | "lost" | "waiting" | "skipped""#
        )
    )]
    pub status: String,
    pub job_id: Option<String>,
    pub exit_code: Option<i32>,
    /// Why it was skipped, or its job's error.
    pub reason: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    #[cfg_attr(test, ts(type = "number"))]
    pub log_bytes: u64,
}

/// `GET /api/runs/:id`: the run with every node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RunDetail {
    #[serde(flatten)]
    #[cfg_attr(test, ts(flatten))]
    pub run: Run,
    pub nodes: Vec<RunNode>,
}

/// Nodes whose output was the same.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct OutputGroup {
    /// The output (both streams as they came; the first `GROUP_BYTES` of it).
    pub text: String,
    /// Some node's output went on past what is compared.
    pub truncated: bool,
    pub node_ids: Vec<String>,
    pub job_ids: Vec<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = runs)]
struct RunRow {
    id: String,
    name: Option<String>,
    command: String,
    env: String,
    working_dir: Option<String>,
    timeout_sec: i64,
    target_all: bool,
    labels: String,
    node_ids: String,
    max_parallel: Option<i32>,
    stop_on_failure: bool,
    stopped: Option<String>,
    cancelled: bool,
    submitted_by: String,
    created_at: i64,
}

impl RunRow {
    fn to_run(&self, totals: RunTotals) -> Run {
        Run {
            id: self.id.clone(),
            name: self.name.clone(),
            command: self.command.clone(),
            env: serde_json::from_str(&self.env).unwrap_or_default(),
            working_dir: self.working_dir.clone(),
            timeout_sec: u64::try_from(self.timeout_sec).unwrap_or(0),
            all: self.target_all,
            labels: Labels::from_db(&self.labels),
            node_ids: serde_json::from_str(&self.node_ids).unwrap_or_default(),
            max_parallel: self.max_parallel.and_then(|n| u32::try_from(n).ok()),
            stop_on_failure: self.stop_on_failure,
            status: totals.state(self.cancelled),
            stopped: self.stopped.clone(),
            submitted_by: self.submitted_by.clone(),
            created_at: Timestamp(self.created_at),
            totals,
        }
    }

    /// What each of its nodes runs.
    fn job(&self, node: NodeId) -> NewJob {
        NewJob {
            name: self.name.clone(),
            command: self.command.clone(),
            env: serde_json::from_str(&self.env).unwrap_or_default(),
            working_dir: self.working_dir.clone(),
            timeout_sec: u64::try_from(self.timeout_sec).ok(),
            placement: Placement::Node(node),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = run_nodes)]
struct RunNodeRow {
    run_id: String,
    position: i32,
    node_id: String,
    node_name: String,
    job_id: Option<String>,
    skipped: Option<String>,
}

/// What a run shows of each of its jobs.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = jobs)]
struct RunJob {
    id: String,
    status: String,
    exit_code: Option<i32>,
    error: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    log_bytes: i64,
}

/// Runs: starting, rolling, cancelling, showing.
#[derive(Debug)]
pub struct RunService {
    db: Db,
    jobs: Arc<JobService>,
}

impl RunService {
    pub fn new(db: Db, jobs: Arc<JobService>) -> RunService {
        RunService { db, jobs }
    }

    /// Starts a run: its nodes fixed, jobs queued for those that can take one now (all, or
    /// the first `max_parallel`), the others listed as skipped.
    pub async fn submit(&self, new: NewRun, submitted_by: &str) -> AppResult<RunDetail> {
        let timeout_sec = self.jobs.timeout_sec(new.job.timeout_sec)?;
        let nodes = self.matching(&new.target)?;
        if !nodes.iter().any(|n| skip_reason(n).is_none()) {
            const NAMED: usize = 10;
            let mut list: Vec<String> = nodes
                .iter()
                .take(NAMED)
                .map(|n| format!("{} ({})", n.name, skip_reason(n).unwrap_or_default()))
                .collect();
            if nodes.len() > NAMED {
                list.push(format!("and {} more", nodes.len() - NAMED));
            }
            return Err(AppError::Conflict(format!(
                "no matching node can take a job now: {}",
                list.join(", ")
            )));
        }
        let now = self.jobs.now();
        let run = RunRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.job.name.clone(),
            command: new.job.command.clone(),
            env: serde_json::to_string(&new.job.env).unwrap_or_else(|_| "{}".into()),
            working_dir: new.job.working_dir.clone(),
            timeout_sec: i64::try_from(timeout_sec).unwrap_or(i64::MAX),
            target_all: new.target == RunTarget::All,
            labels: match &new.target {
                RunTarget::Labels(labels) => labels.to_list(),
                _ => String::new(),
            },
            node_ids: match &new.target {
                RunTarget::Nodes(ids) => {
                    serde_json::to_string(&ids.iter().map(NodeId::as_str).collect::<Vec<_>>())
                        .unwrap_or_else(|_| "[]".into())
                }
                _ => "[]".into(),
            },
            max_parallel: new.max_parallel.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            stop_on_failure: new.stop_on_failure,
            stopped: None,
            cancelled: false,
            submitted_by: submitted_by.to_owned(),
            created_at: now.millis(),
        };
        let mut window = new.max_parallel.map_or(usize::MAX, |n| n as usize);
        let mut members = Vec::with_capacity(nodes.len());
        let mut jobs = Vec::new();
        for (position, node) in nodes.iter().enumerate() {
            let skipped = skip_reason(node).map(|why| format!("{why} when the run started"));
            let job = (skipped.is_none() && window > 0).then(|| {
                window -= 1;
                JobRow::queued(&run.job(node.id.clone()), timeout_sec, Some(&run.id), submitted_by, now)
            });
            members.push(RunNodeRow {
                run_id: run.id.clone(),
                position: i32::try_from(position).unwrap_or(i32::MAX),
                node_id: node.id.to_string(),
                node_name: node.name.clone(),
                job_id: job.as_ref().map(|j| j.id.clone()),
                skipped,
            });
            jobs.extend(job);
        }
        let queued: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let id = run.id.clone();
        self.db
            .write(move |conn| {
                diesel::insert_into(runs::table).values(&run).execute(conn)?;
                // One row at a time: batch inserts are not there for both backends at once.
                for member in &members {
                    diesel::insert_into(run_nodes::table).values(member).execute(conn)?;
                }
                for job in &jobs {
                    repo::insert(conn, job)?;
                }
                Ok(())
            })
            .await?;
        tracing::info!(run_id = %id, nodes = nodes.len(), started = queued.len(), by = submitted_by, "run started");
        self.announce_queued(&queued);
        self.get(&id).await
    }

    /// The nodes a target names, in the run's order: by name, or as listed.
    fn matching(&self, target: &RunTarget) -> AppResult<Vec<Arc<CachedNode>>> {
        let registry = self.jobs.registry();
        let mut nodes = match target {
            RunTarget::Nodes(ids) => {
                let mut seen = HashSet::new();
                let mut nodes = Vec::new();
                for id in ids.iter().filter(|id| seen.insert(*id)) {
                    let node = registry
                        .cached(id)
                        .ok_or_else(|| AppError::Unprocessable(format!("node_ids: there is no node {id}")))?;
                    nodes.push(node);
                }
                return Ok(nodes);
            }
            RunTarget::All => registry.nodes(),
            RunTarget::Labels(labels) => {
                let mut nodes = registry.nodes();
                nodes.retain(|n| n.labels.contains_all(labels));
                if nodes.is_empty() {
                    return Err(AppError::Unprocessable(format!(
                        "labels: no node has all of {}",
                        labels.to_list()
                    )));
                }
                nodes
            }
        };
        nodes.sort_by_cached_key(|n| (n.name.to_lowercase(), n.id.to_string()));
        Ok(nodes)
    }

    pub async fn get(&self, id: &str) -> AppResult<RunDetail> {
        let key = id.to_owned();
        let found = self
            .db
            .run(move |conn| {
                let Some(run) = runs::table.find(&key).select(RunRow::as_select()).first(conn).optional()?
                else {
                    return Ok(None);
                };
                let members = members(conn, &key)?;
                let jobs: Vec<RunJob> =
                    jobs::table.filter(jobs::run_id.eq(&key)).select(RunJob::as_select()).load(conn)?;
                let totals = totals_of(conn, std::slice::from_ref(&key))?.remove(&key).unwrap_or_default();
                Ok(Some((run, members, jobs, totals)))
            })
            .await?;
        let (run, members, jobs, totals) =
            found.ok_or_else(|| AppError::NotFound(format!("no run with ID {id}")))?;
        let mut jobs: HashMap<String, RunJob> = jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
        let nodes = members
            .into_iter()
            .map(|m| {
                let job = m.job_id.as_ref().and_then(|id| jobs.remove(id));
                let status = match (&job, &m.skipped) {
                    (Some(job), _) => JobState::parse(&job.status).unwrap_or(JobState::Failed).as_str(),
                    (None, Some(_)) => "skipped",
                    (None, None) => "waiting",
                };
                RunNode {
                    node_id: m.node_id,
                    node_name: m.node_name,
                    status: status.to_owned(),
                    job_id: m.job_id,
                    exit_code: job.as_ref().and_then(|j| j.exit_code),
                    reason: m.skipped.or_else(|| job.as_ref().and_then(|j| j.error.clone())),
                    started_at: job.as_ref().and_then(|j| j.started_at).map(Timestamp),
                    finished_at: job.as_ref().and_then(|j| j.finished_at).map(Timestamp),
                    log_bytes: job.as_ref().map_or(0, |j| u64::try_from(j.log_bytes).unwrap_or(0)),
                }
            })
            .collect();
        Ok(RunDetail { run: run.to_run(totals), nodes })
    }

    /// Where run `id` stands, without loading its nodes.
    async fn state(&self, id: &str) -> AppResult<RunState> {
        let key = id.to_owned();
        let found = self
            .db
            .run(move |conn| {
                let Some(cancelled) =
                    runs::table.find(&key).select(runs::cancelled).first(conn).optional()?
                else {
                    return Ok(None);
                };
                let totals = totals_of(conn, std::slice::from_ref(&key))?.remove(&key).unwrap_or_default();
                Ok(Some(totals.state(cancelled)))
            })
            .await?;
        found.ok_or_else(|| AppError::NotFound(format!("no run with ID {id}")))
    }

    /// Runs, newest first, after the run `before` (a cursor), at most `limit`.
    pub async fn list(&self, before: Option<String>, limit: i64) -> AppResult<Vec<Run>> {
        let (rows, counts) = self
            .db
            .run(move |conn| {
                let mut query =
                    runs::table.select(RunRow::as_select()).order(runs::id.desc()).limit(limit).into_boxed();
                if let Some(before) = before {
                    query = query.filter(runs::id.lt(before));
                }
                let rows = query.load(conn)?;
                let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
                let counts = totals_of(conn, &ids)?;
                Ok((rows, counts))
            })
            .await?;
        Ok(rows.iter().map(|r| r.to_run(counts.get(&r.id).copied().unwrap_or_default())).collect())
    }

    /// Cancels a run: its waiting nodes are skipped and every unfinished job is cancelled.
    /// Returns the run and the jobs to cancel on their nodes (job, node).
    ///
    /// One transaction, holding the run's row first as `advance` does: no job of the run is
    /// queued meanwhile that the cancel would miss.
    pub async fn cancel(&self, id: &str, by: &str) -> AppResult<(RunDetail, Vec<(String, String)>)> {
        let state = self.state(id).await?;
        if state != RunState::Running {
            return Err(AppError::Conflict(format!("run {id} already finished ({state:?})")));
        }
        let (key, stopped, now) = (id.to_owned(), format!("cancelled by {by}"), self.jobs.now());
        let (cancelled, on_nodes) = self
            .db
            .write(move |conn| {
                diesel::update(runs::table.find(&key))
                    .set((runs::cancelled.eq(true), runs::stopped.eq(Some(stopped))))
                    .execute(conn)?;
                skip_waiting(conn, &key, "the run was cancelled")?;
                let of_run = jobs::run_id.eq(key.clone());
                let queued: Vec<String> = jobs::table
                    .filter(of_run.clone().and(jobs::status.eq(JobState::Queued.as_str())))
                    .select(jobs::id)
                    .load(conn)?;
                for job in &queued {
                    repo::cancel_queued(conn, job, now, "cancelled before it ran")?;
                }
                let active = jobs::table
                    .filter(of_run.and(jobs::status.eq_any(JobState::ACTIVE.map(JobState::as_str))));
                diesel::update(active.clone()).set(jobs::cancel_requested.eq(true)).execute(conn)?;
                let on_nodes: Vec<(String, Option<String>)> =
                    active.select((jobs::id, jobs::assigned_node_id)).load(conn)?;
                Ok((queued, on_nodes))
            })
            .await?;
        for job in &cancelled {
            self.jobs.announce(job, JobState::Cancelled);
        }
        tracing::info!(run_id = id, by, "run cancelled");
        let on_nodes = on_nodes.into_iter().filter_map(|(job, node)| Some((job, node?))).collect();
        Ok((self.get(id).await?, on_nodes))
    }

    /// Each node's output, grouped where it is the same (the first `GROUP_BYTES` compared),
    /// the largest group first; nodes not started are left out.
    pub async fn output(&self, id: &str) -> AppResult<Vec<OutputGroup>> {
        let run = self.get(id).await?;
        let mut groups: Vec<OutputGroup> = Vec::new();
        // Keyed by a digest of the text: each distinct output is held once, in its group.
        let mut index: HashMap<[u8; 32], usize> = HashMap::new();
        for node in &run.nodes {
            let Some(job) = &node.job_id else { continue };
            let mut bytes = Vec::new();
            for chunk in self.jobs.chunk_page(job, None, GROUP_BYTES).await? {
                bytes.extend_from_slice(&chunk.data);
                if bytes.len() as u64 >= GROUP_BYTES {
                    break;
                }
            }
            bytes.truncate(usize::try_from(GROUP_BYTES).unwrap_or(usize::MAX));
            let truncated = node.log_bytes > bytes.len() as u64;
            let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
            let at = *index.entry(digest).or_insert_with(|| {
                groups.push(OutputGroup {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    truncated: false,
                    node_ids: Vec::new(),
                    job_ids: Vec::new(),
                });
                groups.len() - 1
            });
            let group = &mut groups[at];
            group.truncated |= truncated;
            group.node_ids.push(node.node_id.clone());
            group.job_ids.push(job.clone());
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.node_ids.len()));
        Ok(groups)
    }

    /// On the leader: moves every rolling run along — the next waiting nodes get their jobs
    /// while the run has fewer than `max_parallel` unfinished, or are skipped (not online
    /// now; the run stopped or was cancelled). Returns how many jobs it queued.
    pub async fn advance(&self) -> AppResult<usize> {
        let registry = self.jobs.registry();
        let fence = registry.leader_fence()?;
        let ready: HashMap<String, Option<String>> = registry
            .nodes()
            .iter()
            .map(|n| (n.id.to_string(), skip_reason(n).map(|why| format!("{why} when its turn came"))))
            .collect();
        let now = self.jobs.now();
        let queued = self
            .db
            .transaction(move |conn| -> AppResult<Vec<String>> {
                crate::cluster::check_fence(conn, &fence)?;
                let rolling: Vec<String> =
                    run_nodes::table.filter(waiting()).select(run_nodes::run_id).distinct().load(conn)?;
                let mut queued = Vec::new();
                for id in rolling {
                    queued.extend(advance_run(conn, &id, &ready, now)?);
                }
                Ok(queued)
            })
            .await?;
        self.announce_queued(&queued);
        Ok(queued.len())
    }

    fn announce_queued(&self, ids: &[String]) {
        for id in ids {
            self.jobs.announce(id, JobState::Queued);
        }
        if !ids.is_empty() {
            self.jobs.wake.notify_one();
        }
    }
}

/// Why a node cannot take a run's job now, if it cannot.
fn skip_reason(node: &CachedNode) -> Option<String> {
    if !node.is_routable() {
        Some(node.health.status.to_string())
    } else if node.max_jobs == 0 {
        Some("taking no jobs (NODE_MAX_JOBS=0)".into())
    } else {
        None
    }
}

fn members(conn: &mut DbConnection, run: &str) -> QueryResult<Vec<RunNodeRow>> {
    run_nodes::table
        .filter(run_nodes::run_id.eq(run))
        .order(run_nodes::position)
        .select(RunNodeRow::as_select())
        .load(conn)
}

fn skip_waiting(conn: &mut DbConnection, run: &str, why: &str) -> QueryResult<usize> {
    diesel::update(run_nodes::table.filter(run_nodes::run_id.eq(run).and(waiting())))
        .set(run_nodes::skipped.eq(Some(why)))
        .execute(conn)
}

/// A job in one of these did not succeed (for `stop_on_failure`).
const NOT_SUCCEEDED: [JobState; 4] =
    [JobState::Failed, JobState::TimedOut, JobState::Cancelled, JobState::Lost];
/// A job in one of these holds a place in a rolling run.
const UNFINISHED: [JobState; 3] = [JobState::Queued, JobState::Dispatched, JobState::Running];

/// One rolling run's next step (in the caller's transaction); the jobs it queued. It holds
/// the run's row first, as `RunService::cancel` does, so the two never interleave.
fn advance_run(
    conn: &mut DbConnection,
    id: &str,
    ready: &HashMap<String, Option<String>>,
    now: Timestamp,
) -> AppResult<Vec<String>> {
    diesel::update(runs::table.find(id)).set(runs::cancelled.eq(runs::cancelled)).execute(conn)?;
    let Some(run) = runs::table.find(id).select(RunRow::as_select()).first(conn).optional()? else {
        return Ok(Vec::new());
    };
    if run.cancelled {
        skip_waiting(conn, id, "the run was cancelled")?;
        return Ok(Vec::new());
    }
    let of_run = jobs::run_id.eq(id);
    if run.stop_on_failure {
        let failed: Option<String> = jobs::table
            .inner_join(run_nodes::table.on(run_nodes::job_id.eq(jobs::id.nullable())))
            .filter(of_run)
            .filter(jobs::status.eq_any(NOT_SUCCEEDED.map(JobState::as_str)))
            .select(run_nodes::node_name)
            .first(conn)
            .optional()?;
        if let Some(node) = failed {
            let why = format!("node {node} did not succeed");
            diesel::update(runs::table.find(id))
                .set(runs::stopped.eq(Some(format!("stopped: {why}"))))
                .execute(conn)?;
            skip_waiting(conn, id, &format!("not started: the run stopped ({why})"))?;
            return Ok(Vec::new());
        }
    }
    let unfinished: i64 = jobs::table
        .filter(of_run.and(jobs::status.eq_any(UNFINISHED.map(JobState::as_str))))
        .count()
        .get_result(conn)?;
    let limit = run.max_parallel.map_or(i64::MAX, i64::from);
    let mut room = limit.saturating_sub(unfinished);
    let mut queued = Vec::new();
    while room > 0 {
        // The next few in order (some may be skipped on the way).
        let next: Vec<RunNodeRow> = run_nodes::table
            .filter(run_nodes::run_id.eq(id).and(waiting()))
            .order(run_nodes::position)
            .limit(room)
            .select(RunNodeRow::as_select())
            .load(conn)?;
        if next.is_empty() {
            break;
        }
        for member in next {
            let at = run_nodes::table.find((id, member.position));
            match ready.get(&member.node_id) {
                Some(None) => {
                    let node = NodeId::from_db_str(&member.node_id);
                    let timeout = u64::try_from(run.timeout_sec).unwrap_or(1);
                    let job = JobRow::queued(&run.job(node), timeout, Some(id), &run.submitted_by, now);
                    repo::insert(conn, &job)?;
                    diesel::update(at).set(run_nodes::job_id.eq(Some(&job.id))).execute(conn)?;
                    queued.push(job.id);
                    room -= 1;
                }
                Some(Some(why)) => {
                    diesel::update(at).set(run_nodes::skipped.eq(Some(why))).execute(conn)?;
                }
                None => {
                    diesel::update(at)
                        .set(run_nodes::skipped.eq(Some("removed before its turn came")))
                        .execute(conn)?;
                }
            }
        }
    }
    Ok(queued)
}

/// Totals of several runs at once.
fn totals_of(conn: &mut DbConnection, ids: &[String]) -> QueryResult<HashMap<String, RunTotals>> {
    use diesel::dsl::count_star;
    let mut totals: HashMap<String, RunTotals> = HashMap::new();
    let members: Vec<(String, i64)> = run_nodes::table
        .filter(run_nodes::run_id.eq_any(ids))
        .group_by(run_nodes::run_id)
        .select((run_nodes::run_id, count_star()))
        .load(conn)?;
    let skipped: Vec<(String, i64)> = run_nodes::table
        .filter(run_nodes::run_id.eq_any(ids).and(run_nodes::skipped.is_not_null()))
        .group_by(run_nodes::run_id)
        .select((run_nodes::run_id, count_star()))
        .load(conn)?;
    let waiting: Vec<(String, i64)> = run_nodes::table
        .filter(run_nodes::run_id.eq_any(ids).and(waiting()))
        .group_by(run_nodes::run_id)
        .select((run_nodes::run_id, count_star()))
        .load(conn)?;
    let jobs: Vec<(Option<String>, String, i64)> = jobs::table
        .filter(jobs::run_id.eq_any(ids))
        .group_by((jobs::run_id, jobs::status))
        .select((jobs::run_id, jobs::status, count_star()))
        .load(conn)?;
    let n = |count: i64| u32::try_from(count).unwrap_or(u32::MAX);
    for (run, count) in members {
        totals.entry(run).or_default().nodes = n(count);
    }
    for (run, count) in skipped {
        totals.entry(run).or_default().skipped = n(count);
    }
    for (run, count) in waiting {
        totals.entry(run).or_default().waiting = n(count);
    }
    for (run, status, count) in jobs {
        let Some(run) = run else { continue };
        totals
            .entry(run)
            .or_default()
            .count_job(JobState::parse(&status).unwrap_or(JobState::Failed), n(count));
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DatabaseUrl;

    fn run_row(id: &str) -> RunRow {
        RunRow {
            id: id.into(),
            name: None,
            command: "true".into(),
            env: "{}".into(),
            working_dir: None,
            timeout_sec: 60,
            target_all: true,
            labels: String::new(),
            node_ids: "[]".into(),
            max_parallel: None,
            stop_on_failure: false,
            stopped: None,
            cancelled: false,
            submitted_by: "test".into(),
            created_at: 1,
        }
    }

    /// Run `run`'s job on node `node`, finished at `finished` (or unfinished).
    fn job_of(conn: &mut DbConnection, run: &str, node: i32, finished: Option<i64>) -> QueryResult<()> {
        let new = NewJob {
            name: None,
            command: "true".into(),
            env: BTreeMap::new(),
            working_dir: None,
            timeout_sec: None,
            placement: Placement::Labels(Labels::default()),
        };
        let mut job = JobRow::queued(&new, 60, Some(run), "test", Timestamp(1));
        if let Some(at) = finished {
            job.status = JobState::Succeeded.as_str().into();
            job.finished_at = Some(at);
        }
        repo::insert(conn, &job)?;
        let member = RunNodeRow {
            run_id: run.into(),
            position: node,
            node_id: format!("n{node}"),
            node_name: format!("n{node}"),
            job_id: Some(job.id),
            skipped: None,
        };
        diesel::insert_into(run_nodes::table).values(&member).execute(conn).map(drop)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_is_pruned_whole_once_its_last_job_is_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseUrl::Sqlite(dir.path().join("t.db"))).unwrap();
        let counts = db
            .write(|c| {
                diesel::insert_into(runs::table).values(&run_row("r")).execute(c)?;
                job_of(c, "r", 0, Some(10))?;
                job_of(c, "r", 1, Some(500))?;
                let left = |c: &mut DbConnection| -> QueryResult<(i64, i64, i64)> {
                    Ok((
                        runs::table.count().get_result(c)?,
                        run_nodes::table.count().get_result(c)?,
                        jobs::table.count().get_result(c)?,
                    ))
                };
                // One job is old, the other not: nothing of the run goes.
                let first = (repo::prune(c, Timestamp(100))?, left(c)?);
                // Both old: all of it goes.
                let second = (repo::prune(c, Timestamp(1000))?, left(c)?);
                Ok((first, second))
            })
            .await
            .unwrap();
        assert_eq!(counts, ((0, (1, 2, 2)), (2, (0, 0, 0))));
    }
}
