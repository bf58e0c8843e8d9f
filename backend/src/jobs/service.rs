//! The primary's job rules: submitting, cancelling, taking nodes' reports (each a
//! conditional transition on state and attempt; the table is in `jobs::model`), reconciling
//! with heartbeats, declaring jobs lost, and retention.
//!
//! - Reconciliation (`reconcile`, from the router's housekeeping): a heartbeat only notes
//!   the node's `running_jobs` in memory (`note_known_jobs`). A job `dispatched` or
//!   `running` on a node, missing from that list and dispatched more than
//!   `RECONCILE_AFTER` (15 s) before it was noted, becomes `failed` ("the node no longer
//!   knows this job"); the 15 s cover a job dispatched after the heartbeat was assembled.
//! - Lost sweep (`sweep_lost`): a job `dispatched` or `running` on a node that is not
//!   routable (not the primary, not online) becomes `lost` once `JOB_LOST_AFTER` has passed
//!   since the later of the node's last seen and the job's dispatch; at once if its node
//!   was removed. Output sent for a lost job is refused; its reports apply nowhere. A job
//!   still queued for a node that was removed is cancelled ("its node was removed before
//!   it ran"): it could never run.
//! - Counts by state (`state_counts`, for `/metrics`): kept in memory, counted again (one
//!   grouped query) at most once per `RECOUNT_EVERY` while jobs change here or on another
//!   primary, and every `RECOUNT_ANYWAY` regardless.
//! - Retention (`run_retention`, at start and then every `RETENTION_EVERY`, 1 h): jobs
//!   finished more than `JOB_RETENTION` ago are deleted with their output; unfinished
//!   ones never are.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, Timestamp};
use crate::cluster::bus::Message;
use crate::cluster::lease::Fence;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventHub};
use crate::jobs::live::LogHub;
use crate::jobs::model::{DEFAULT_TIMEOUT_SEC, Job, JobState, LogChunk, NewJob, Placement};
use crate::jobs::repo::{self, JobFilter, JobRow, Transition};
use crate::nodes::{NodeId, NodeStatus, Registry};
use crate::protocol::{ChunkParams, JobReport, ReportedState};

/// How long after dispatch a node must know about a job before a heartbeat that does not
/// list it counts.
const RECONCILE_AFTER: Duration = Duration::from_secs(15);
/// How often finished jobs past their retention are removed.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Jobs are counted by state at most this often while they change...
const RECOUNT_EVERY: Duration = Duration::from_secs(1);
/// ...and this often when nothing seems to change.
const RECOUNT_ANYWAY: Duration = Duration::from_secs(60);

/// Job settings from `Config`.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub max_timeout_sec: u64,
    pub lost_after: Duration,
    pub retention: Duration,
}

/// Everything about jobs that the primary decides.
#[derive(Debug)]
pub struct JobService {
    db: Db,
    clock: SharedClock,
    registry: Arc<Registry>,
    events: EventHub,
    pub logs: LogHub,
    /// Wakes the router: a job was queued or a slot freed.
    pub wake: Arc<Notify>,
    pub settings: JobSettings,
    /// Node → the jobs its last heartbeat listed, and when.
    known: std::sync::Mutex<std::collections::HashMap<NodeId, (HashSet<String>, Timestamp)>>,
    /// Jobs by state, as last counted.
    counts: std::sync::Mutex<Vec<(JobState, i64)>>,
    /// Some job changed since the last count.
    recount: Notify,
}

impl JobService {
    pub fn new(
        db: Db,
        clock: SharedClock,
        registry: Arc<Registry>,
        events: EventHub,
        settings: JobSettings,
    ) -> JobService {
        JobService {
            db,
            clock,
            registry,
            events,
            logs: LogHub::default(),
            wake: Arc::new(Notify::new()),
            settings,
            known: std::sync::Mutex::default(),
            counts: std::sync::Mutex::new(JobState::ALL.map(|s| (s, 0)).to_vec()),
            recount: Notify::new(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Queues a job. An explicit node must exist and be online; labels must be held by
    /// some node (online or not), else no node could ever take the job.
    pub async fn submit(&self, new: NewJob, submitted_by: &str) -> AppResult<Job> {
        let timeout_sec = self.timeout_sec(new.timeout_sec)?;
        match &new.placement {
            Placement::Node(id) => {
                let node = self
                    .registry
                    .get(id)
                    .await
                    .map_err(|_| AppError::Unprocessable(format!("node_id: there is no node {id}")))?;
                if node.status != NodeStatus::Online {
                    return Err(AppError::Conflict(format!(
                        "node {} is {}; jobs go only to online nodes",
                        node.name, node.status
                    )));
                }
            }
            Placement::Labels(labels) => {
                if !labels.as_slice().is_empty() && !self.registry.any_node_has(labels) {
                    return Err(AppError::Unprocessable(format!(
                        "labels: no node has all of {}",
                        labels.to_list()
                    )));
                }
            }
        }
        let row = JobRow::queued(&new, timeout_sec, None, submitted_by, self.now());
        let job = row.to_job();
        self.db.write(move |conn| repo::insert(conn, &row)).await?;
        tracing::info!(job_id = %job.id, by = submitted_by, "job queued");
        self.announce(&job.id, JobState::Queued);
        self.wake.notify_one();
        Ok(job)
    }

    /// The timeout a job asked for (`None`: the default), checked against `JOB_MAX_TIMEOUT`.
    pub fn timeout_sec(&self, asked: Option<u64>) -> AppResult<u64> {
        let max = self.settings.max_timeout_sec;
        let timeout_sec = asked.unwrap_or(DEFAULT_TIMEOUT_SEC.min(max));
        if timeout_sec == 0 || timeout_sec > max {
            return Err(AppError::validation(
                "timeout_sec",
                format!("must be from 1 to {max} (JOB_MAX_TIMEOUT)"),
            ));
        }
        Ok(timeout_sec)
    }

    pub async fn get(&self, id: &str) -> AppResult<Job> {
        self.row(id).await.map(|r| r.to_job())
    }

    /// Jobs that failed, timed out or were lost at `since` or later, oldest first.
    pub async fn failed_since(&self, since: Timestamp, limit: i64) -> AppResult<Vec<Job>> {
        let rows = self.db.run(move |conn| repo::failed_since(conn, since, limit)).await?;
        Ok(rows.iter().map(JobRow::to_job).collect())
    }

    async fn row(&self, id: &str) -> AppResult<JobRow> {
        let key = id.to_owned();
        self.db
            .run(move |conn| repo::find(conn, &key))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no job with ID {id}")))
    }

    pub async fn list(&self, filter: JobFilter) -> AppResult<Vec<Job>> {
        let rows = self.db.run(move |conn| repo::list(conn, &filter)).await?;
        Ok(rows.iter().map(JobRow::to_job).collect())
    }

    pub async fn chunks(&self, id: &str, after: Option<u64>, limit: i64) -> AppResult<Vec<LogChunk>> {
        let id = id.to_owned();
        Ok(self.db.run(move |conn| repo::chunks(conn, &id, after, limit)).await?)
    }

    /// The chunks after `after`, in order, about `max_bytes` of output at most (at least one
    /// chunk however large): what a reader holds at a time.
    pub async fn chunk_page(&self, id: &str, after: Option<u64>, max_bytes: u64) -> AppResult<Vec<LogChunk>> {
        let id = id.to_owned();
        Ok(self.db.run(move |conn| repo::chunk_page(conn, &id, after, max_bytes)).await?)
    }

    /// Cancels a job: a queued one at once; a dispatched or running one through its node
    /// (the caller delivers that; see `Router::deliver_cancels`). Returns the job and, if it
    /// must be cancelled on a node, which.
    pub async fn cancel(&self, id: &str) -> AppResult<(Job, Option<String>)> {
        let row = self.row(id).await?;
        let state = row.state();
        if state.is_final() {
            return Err(AppError::Conflict(format!("job {id} already finished ({state})")));
        }
        let key = id.to_owned();
        let now = self.now();
        if state == JobState::Queued
            && self
                .db
                .write(move |conn| repo::cancel_queued(conn, &key, now, "cancelled before it ran"))
                .await?
        {
            self.announce(id, JobState::Cancelled);
            return Ok((self.get(id).await?, None));
        }
        let key = id.to_owned();
        self.db.write(move |conn| repo::request_cancel(conn, &key)).await?;
        let row = self.row(id).await?;
        let node = row.assigned_node_id.clone();
        Ok((row.to_job(), node))
    }

    /// Checks that `node` was given `job_id` at `attempt`.
    async fn check_assignment(&self, node: &NodeId, job_id: &str, attempt: u32) -> AppResult<JobRow> {
        let row = self.row(job_id).await?;
        if row.assigned_node_id.as_deref() != Some(node.as_str()) {
            return Err(AppError::Forbidden(format!("job {job_id} was not given to node {node}")));
        }
        if row.attempt() != attempt {
            return Err(AppError::Conflict(format!(
                "attempt {attempt} of job {job_id} is over (now at attempt {})",
                row.attempt()
            )));
        }
        Ok(row)
    }

    /// Stores a log chunk from the node running the job (idempotent by sequence number).
    /// Output for a job already declared lost is refused: that attempt is over.
    pub async fn record_chunk(
        &self,
        node: &NodeId,
        job_id: &str,
        params: &ChunkParams,
        data: bytes::Bytes,
    ) -> AppResult<bool> {
        if i64::try_from(params.seq).is_err() {
            return Err(AppError::validation("seq", format!("must be at most {}", i64::MAX)));
        }
        let row = self.check_assignment(node, job_id, params.attempt).await?;
        if row.state() == JobState::Lost {
            return Err(AppError::Conflict(format!(
                "job {job_id} was declared lost; its output is no longer taken"
            )));
        }
        let now = self.now();
        let key = job_id.to_owned();
        let seq = params.seq;
        let stream = params.stream.as_str();
        let (stored, data) = self
            .db
            .write(move |conn| repo::insert_chunk(conn, &key, seq, stream, &data, now).map(|s| (s, data)))
            .await?;
        if stored {
            self.registry.metrics().job_log_bytes.inc_by(data.len() as u64);
            self.logs.publish(job_id, || {
                // Followers are sent the text only: no copy of the bytes rides along.
                let text = String::from_utf8_lossy(&data).into_owned();
                LogChunk { seq, stream, text, at: now, data: Vec::new() }
            });
            // Followers on other primaries read it from the database.
            self.registry.cluster().bus().send(Message::Chunk { job: job_id.to_owned(), seq });
        }
        Ok(stored)
    }

    /// Another primary stored chunk `seq` of job `job_id`: this primary's followers of the
    /// job, if any, get it from the database.
    pub async fn relay_chunk(&self, job_id: &str, seq: u64) -> AppResult<()> {
        if !self.logs.is_followed(job_id) {
            return Ok(());
        }
        let chunk = self.chunks(job_id, seq.checked_sub(1), 1).await?.into_iter().find(|c| c.seq == seq);
        if let Some(chunk) = chunk {
            self.logs.publish(job_id, || LogChunk { data: Vec::new(), ..chunk });
        }
        Ok(())
    }

    /// Applies a node's report if it moves the job forward; `false` if it was stale. The
    /// usual case is one conditional write; only a report that does not apply is looked
    /// into, to tell a stale one (ignored) from one that is not the node's to make.
    pub async fn record_report(&self, node: &NodeId, job_id: &str, report: JobReport) -> AppResult<bool> {
        let to = JobState::from_report(report.state);
        let from: &'static [JobState] = if report.state == ReportedState::Running {
            &[JobState::Dispatched]
        } else {
            &[JobState::Dispatched, JobState::Running]
        };
        let change = Transition {
            id: job_id.to_owned(),
            attempt: report.attempt,
            node: node.to_string(),
            from,
            to,
            exit_code: report.exit_code,
            error: report.error,
            at: self.now(),
        };
        if self.transition(change, None).await? {
            return Ok(true);
        }
        self.check_assignment(node, job_id, report.attempt).await?;
        tracing::debug!(job_id, ?report.state, "stale job report ignored");
        Ok(false)
    }

    /// Applies a state change, if the job is still where it expects; tells the UI.
    /// Applies `change` if the job is where it expects; with a `fence`, only within that
    /// leader's term.
    async fn transition(&self, change: Transition, fence: Option<Fence>) -> AppResult<bool> {
        let (id, to) = (change.id.clone(), change.to);
        let applied = self
            .db
            .transaction(move |conn| fenced(conn, fence.as_ref(), |conn| repo::transition(conn, &change)))
            .await?;
        if applied {
            tracing::info!(job_id = %id, state = %to, "job state changed");
            self.announce(&id, to);
            if to.is_final() {
                self.wake.notify_one();
            }
        }
        Ok(applied)
    }

    /// An active job ended by the primary's judgement (not by its node's report).
    fn judged(&self, id: String, attempt: u32, node: String, to: JobState, error: &str) -> Transition {
        Transition {
            id,
            attempt,
            node,
            from: &JobState::ACTIVE,
            to,
            exit_code: None,
            error: Some(error.to_owned()),
            at: self.now(),
        }
    }

    /// The queued jobs, oldest first, at most `limit`.
    pub async fn queued(&self, limit: i64) -> AppResult<Vec<JobRow>> {
        Ok(self.db.run(move |conn| repo::queued(conn, limit)).await?)
    }

    /// Node ID → how many jobs count against it (dispatched or running).
    pub async fn active_counts(&self) -> AppResult<Vec<(String, i64)>> {
        Ok(self.db.run(repo::active_counts).await?)
    }

    /// One router pass's writes, in one transaction: why each job in `waiting` still waits,
    /// and each of `placed` (job, its next attempt, its node) marked dispatched. Returns, per
    /// placed job, whether the mark applied (a job changed meanwhile, e.g. cancelled, is left
    /// alone); those that did are announced.
    pub async fn mark_dispatched(
        &self,
        waiting: Vec<(String, String)>,
        placed: Vec<(String, u32, String)>,
    ) -> AppResult<Vec<bool>> {
        let now = self.now();
        let fence = self.registry.leader_fence()?;
        let (applied, placed) = self
            .db
            .transaction(move |conn| -> AppResult<_> {
                crate::cluster::check_fence(conn, &fence)?;
                for (id, reason) in &waiting {
                    repo::set_queue_reason(conn, id, reason)?;
                }
                let applied = placed
                    .iter()
                    .map(|(id, attempt, node)| repo::mark_dispatched(conn, id, *attempt, node, now))
                    .collect::<diesel::QueryResult<Vec<bool>>>()?;
                Ok((applied, placed))
            })
            .await?;
        for ((id, ..), ok) in placed.iter().zip(&applied) {
            if *ok {
                self.announce(id, JobState::Dispatched);
            }
        }
        Ok(applied)
    }

    /// A dispatch that failed: attempt `attempt` of the job goes back to the queue with
    /// `reason` (unless it moved on meanwhile).
    pub async fn requeue(&self, id: &str, attempt: u32, reason: &str) -> AppResult<bool> {
        let (key, reason) = (id.to_owned(), reason.to_owned());
        let fence = self.registry.leader_fence()?;
        let requeued = self
            .db
            .transaction(move |conn| {
                fenced(conn, Some(&fence), |conn| repo::requeue(conn, &key, attempt, &reason))
            })
            .await?;
        if requeued {
            self.announce(id, JobState::Queued);
        }
        Ok(requeued)
    }

    /// Tells the UI a job changed.
    pub fn announce(&self, id: &str, status: JobState) {
        self.note_changed();
        self.events.publish(Event::JobUpdated { job_id: id.to_owned(), status });
    }

    /// A job changed state (here or on another primary): count again soon.
    pub fn note_changed(&self) {
        self.recount.notify_one();
    }

    /// Jobs by state (every state named), as last counted: at most about a second old
    /// while jobs change.
    pub fn state_counts(&self) -> Vec<(JobState, i64)> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Keeps `state_counts` current until `shutdown`: counts at once, then after changes
    /// (at most once per `RECOUNT_EVERY`) and every `RECOUNT_ANYWAY`.
    pub async fn run_counts(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.db.run(repo::count_by_state).await {
                Ok(rows) => {
                    let counts = JobState::ALL.map(|s| {
                        (s, rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n))
                    });
                    *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = counts.to_vec();
                }
                Err(e) => tracing::warn!(error = %e, "counting jobs by state failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.recount.notified() => {}
                () = tokio::time::sleep(RECOUNT_ANYWAY) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RECOUNT_EVERY) => {}
            }
        }
    }

    /// Keeps what a node's heartbeat says it is responsible for (no database work: the
    /// heartbeat path stays cheap); `reconcile` acts on it.
    pub fn note_known_jobs(&self, node: &NodeId, known: Vec<String>) {
        let mut map = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(node.clone(), (known.into_iter().collect(), self.now()));
    }

    /// Compares active jobs with what their nodes last said: a job its node no longer
    /// knows (dispatched a while before that word) has failed. Returns the jobs whose cancel
    /// is not confirmed yet, with their nodes, to be sent again.
    pub async fn reconcile(&self) -> AppResult<Vec<(String, String)>> {
        let rows = self.db.run(repo::active).await?;
        let mut resend = Vec::new();
        let mut stale = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for row in &rows {
                let Some(node) = row.assigned_node_id.as_deref() else { continue };
                let Some((jobs, said_at)) = known.get(&NodeId::from_db_str(node)) else { continue };
                let dispatched = row.dispatched_at.unwrap_or(i64::MAX);
                if !jobs.contains(&row.id) && said_at.minus(RECONCILE_AFTER).millis() > dispatched {
                    stale.push((row.id.clone(), row.attempt(), node.to_owned()));
                } else if row.cancel_requested {
                    resend.push((node.to_owned(), row.id.clone()));
                }
            }
        }
        for (id, attempt, node) in stale {
            let error = "the node no longer knows this job (it may have restarted)";
            self.transition(self.judged(id, attempt, node, JobState::Failed, error), None).await?;
        }
        Ok(resend)
    }

    /// Queued jobs of removed nodes are cancelled; active jobs whose node has not been seen
    /// for `lost_after` become `lost` (leader only:
    /// `NotLeader` otherwise). This primary's own jobs are never lost.
    pub async fn sweep_lost(&self) -> AppResult<usize> {
        let fence = self.registry.leader_fence()?;
        self.cancel_orphans().await?;
        let rows = self.db.run(repo::active).await?;
        let now = self.now();
        // Each node that is not online now: when it was last seen, or `None` if it is gone.
        let mut last_seen: HashMap<String, Option<Option<Timestamp>>> = HashMap::new();
        for node in rows.iter().filter_map(|r| r.assigned_node_id.as_deref()) {
            if last_seen.contains_key(node) {
                continue;
            }
            let id = NodeId::from_db_str(node);
            if &id == self.registry.own_id() || self.registry.cached(&id).is_some_and(|n| n.is_routable()) {
                continue;
            }
            let seen = match self.registry.get(&id).await {
                Ok(n) => Some(n.last_seen),
                Err(AppError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            last_seen.insert(node.to_owned(), seen);
        }
        let mut lost = 0;
        for row in rows {
            let Some(node) = row.assigned_node_id.clone() else { continue };
            let Some(seen) = last_seen.get(&node) else { continue };
            let gone = match seen {
                None => true,
                // Counted from its last word, and never from before the job was given to it.
                Some(seen) => {
                    let since = (*seen).max(row.dispatched_at.map(Timestamp)).unwrap_or(now);
                    now.since(since) > self.settings.lost_after
                }
            };
            if gone {
                let attempt = row.attempt();
                let change = self.judged(row.id, attempt, node, JobState::Lost, "the node stopped answering");
                if self.transition(change, Some(fence.clone())).await? {
                    lost += 1;
                }
            }
        }
        Ok(lost)
    }

    /// Jobs still queued for a node that was removed will never run: cancelled, saying so.
    async fn cancel_orphans(&self) -> AppResult<()> {
        let pinned = self.db.run(repo::queued_for_nodes).await?;
        let now = self.now();
        for (id, node) in pinned {
            if self.registry.cached(&NodeId::from_db_str(&node)).is_some() {
                continue;
            }
            let key = id.clone();
            let why = "its node was removed before it ran";
            if self.db.write(move |conn| repo::cancel_queued(conn, &key, now, why)).await? {
                tracing::info!(job_id = %id, node = %node, "queued job of a removed node cancelled");
                self.announce(&id, JobState::Cancelled);
            }
        }
        Ok(())
    }

    /// Removes finished jobs older than the retention period (leader only).
    pub async fn prune(&self) -> AppResult<usize> {
        let before = self.now().minus(self.settings.retention);
        let fence = self.registry.leader_fence()?;
        let removed = self
            .db
            .transaction(move |conn| fenced(conn, Some(&fence), |conn| repo::prune(conn, before)))
            .await?;
        self.note_changed();
        Ok(removed)
    }

    /// On the leader, at its start and every hour until `shutdown`: removes finished jobs
    /// past their retention.
    pub async fn run_retention(self: Arc<Self>, shutdown: CancellationToken) {
        let leadership = self.registry.cluster().leadership();
        leadership
            .during_terms(&shutdown, || {
                crate::clock::every(Duration::ZERO, RETENTION_EVERY, &shutdown, || async {
                    match self.prune().await {
                        Ok(0) | Err(AppError::NotLeader(_)) => {}
                        Ok(removed) => tracing::info!(removed, "finished jobs past their retention removed"),
                        Err(e) => tracing::error!(error = %e, "removing old jobs failed"),
                    }
                })
            })
            .await;
    }
}

/// Runs `write` in the caller's transaction, after checking `fence`'s term if there is one.
fn fenced<T>(
    conn: &mut crate::db::DbConnection,
    fence: Option<&Fence>,
    write: impl FnOnce(&mut crate::db::DbConnection) -> diesel::QueryResult<T>,
) -> AppResult<T> {
    if let Some(fence) = fence {
        crate::cluster::check_fence(conn, fence)?;
    }
    Ok(write(conn)?)
}
