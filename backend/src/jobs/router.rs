//! The job router (SPEC §8): places queued jobs on nodes and dispatches them, on the
//! leading primary only (every write it makes is fenced by the leader's term). It runs when
//! woken (`JobService::wake`: a job queued or finished, here or on another primary; a
//! `NodeStatusChanged` or `NodeUpdated` event; a term beginning) and every `FALLBACK_TICK`
//! (2 s) regardless, the tick running housekeeping first.
//!
//! One pass ([`Router::run_once`]):
//!
//! - moves rolling runs along first (`RunService::advance`): their next nodes' jobs are
//!   queued in time to be placed in this pass.
//! - takes the oldest `BATCH` (500) queued jobs and the routable nodes (the primary, always,
//!   and the online secondaries), each with its `max_jobs` from the cache and its load from
//!   one query (jobs `dispatched` or `running` on it). A node whose dispatch failed within
//!   `COOL_DOWN` (3 s) takes nothing.
//! - places each job: one with a `node_id` on that node if it is routable and has a free
//!   slot; otherwise, among nodes holding all its labels with a free slot, the lowest
//!   `(running + 1) / max_jobs`, ties to the least recently assigned. A placed job counts
//!   against its node at once, so one pass spreads a batch. A job that must wait gets its
//!   reason written when it changed.
//! - marks the placed jobs `dispatched` in one transaction (a job changed meanwhile, say
//!   cancelled, is skipped), then hands them over, at most `DISPATCH_CONCURRENCY` (32) at
//!   once: to the local `Runner` for the primary, as `POST /api/internal/jobs` through
//!   `NodeClient` (10 s timeout) for a secondary. A job its node does not take goes back to
//!   the queue with the reason, and the node cools down.
//! - runs again at once if the whole batch was handled and some of it went out.
//!
//! Housekeeping, on every primary: its own jobs are noted from its local runner
//! (secondaries' come with the heartbeats it receives), then `JobService::reconcile` fails
//! the jobs their nodes no longer know; every other active job with a cancel requested, on
//! a node that has heartbeated to this primary since it started, gets the cancel sent
//! again ([`Router::cancel_on_node`]), so every 2 s until its node reports the end (a node
//! not online is sent nothing). A node's word judges only jobs given to it well before it
//! spoke, so a primary it no longer talks to cannot misjudge. Last, on the leader only,
//! `JobService::sweep_lost` declares jobs lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::{AppError, AppResult};
use crate::events::{Event, EventHub};
use crate::jobs::repo::JobRow;
use crate::jobs::runs::RunService;
use crate::jobs::service::JobService;
use crate::nodes::cache::CachedNode;
use crate::nodes::client::{NodeCallError, NodeClient};
use crate::nodes::{Labels, NodeId};
use crate::protocol::JobAssignment;
use crate::worker::runner::{Refusal, Runner};

const FALLBACK_TICK: Duration = Duration::from_secs(2);
const BATCH: i64 = 500;
const BATCH_LEN: usize = 500;
const DISPATCH_CONCURRENCY: usize = 32;
/// A node whose dispatch failed gets no jobs for this long.
const COOL_DOWN: Duration = Duration::from_secs(3);

/// A node as the router sees it in one pass.
struct Slot {
    node: Arc<CachedNode>,
    running: u32,
    /// Its last dispatch failed moments ago: it gets nothing for a short while.
    cooling: bool,
}

impl Slot {
    fn free(&self) -> bool {
        !self.cooling && self.running < self.node.max_jobs
    }

    /// Why this node cannot take a job now.
    fn busy_reason(&self) -> String {
        let (name, max) = (&self.node.name, self.node.max_jobs);
        if max == 0 {
            format!("node {name} takes no jobs (NODE_MAX_JOBS=0)")
        } else if self.cooling {
            format!("a dispatch to node {name} just failed; retrying shortly")
        } else {
            format!("node {name} is full ({}/{max} jobs)", self.running)
        }
    }
}

/// What the router did in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteReport {
    pub dispatched: usize,
    pub waiting: usize,
    pub failed_dispatches: usize,
}

/// Places and dispatches jobs.
#[derive(Debug)]
pub struct Router {
    jobs: Arc<JobService>,
    runs: Arc<RunService>,
    local: Arc<Runner>,
    client: NodeClient,
    /// Node changes wake the router: a node coming online may take waiting jobs.
    events: EventHub,
    /// Node ID → when it last got a job, as a running count (ties go to the smallest).
    last_assigned: Mutex<HashMap<String, u64>>,
    assignments: std::sync::atomic::AtomicU64,
    cooling: Mutex<HashMap<String, Instant>>,
}

impl Router {
    pub fn new(
        jobs: Arc<JobService>,
        runs: Arc<RunService>,
        local: Arc<Runner>,
        events: EventHub,
    ) -> anyhow::Result<Router> {
        let client = NodeClient::new(
            jobs.registry().clone(),
            Duration::from_secs(10),
            Duration::from_secs(3),
            DISPATCH_CONCURRENCY,
        )?;
        Ok(Router {
            jobs,
            runs,
            local,
            client,
            events,
            last_assigned: Mutex::default(),
            assignments: std::sync::atomic::AtomicU64::new(1),
            cooling: Mutex::default(),
        })
    }

    /// Routes until `shutdown`: when woken, on node events, and every couple of seconds.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut events = self.events.subscribe();
        let mut leading = self.jobs.registry().cluster().leadership().watch();
        let mut tick = tokio::time::interval(FALLBACK_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let periodic = tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.jobs.wake.notified() => false,
                // A term began: what waits is routed now, not at the next tick.
                Ok(()) = leading.changed() => false,
                event = events.recv() => {
                    if !matches!(event, Ok(Event::NodeStatusChanged { .. } | Event::NodeUpdated { .. }) | Err(_)) {
                        continue;
                    }
                    false
                }
                _ = tick.tick() => true,
            };
            if periodic {
                self.housekeeping().await;
            }
            match self.run_once().await {
                // A full batch was placed: more may be waiting right behind it.
                Ok(report) if report.dispatched > 0 && report.dispatched + report.waiting >= BATCH_LEN => {
                    self.jobs.wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "routing jobs failed"),
            }
        }
    }

    async fn housekeeping(&self) {
        let primary = self.jobs.registry().own_id().clone();
        self.jobs.note_known_jobs(&primary, self.local.known_jobs());
        match self.jobs.reconcile().await {
            Ok(resend) => {
                for (node, job_id) in resend {
                    if let Err(reason) = self.cancel_on_node(&node, &job_id).await {
                        tracing::debug!(%job_id, %reason, "cancel not delivered yet");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "reconciling jobs with their nodes failed"),
        }
        match self.jobs.sweep_lost().await {
            Ok(0) | Err(AppError::NotLeader(_)) => {}
            Ok(n) => tracing::warn!(lost = n, "jobs lost with their nodes"),
            Err(e) => tracing::error!(error = %e, "looking for lost jobs failed"),
        }
    }

    /// One pass: place every queued job that fits somewhere, mark them dispatched (one
    /// transaction), and hand them to their nodes.
    pub async fn run_once(&self) -> AppResult<RouteReport> {
        let mut report = RouteReport::default();
        if !self.jobs.registry().cluster().leadership().is_leader() {
            return Ok(report);
        }
        // A run that cannot move on now must not hold up the other jobs.
        if let Err(e) = self.runs.advance().await {
            tracing::error!(error = %e, "moving rolling runs along failed");
        }
        let queued = self.jobs.queued(BATCH).await?;
        if queued.is_empty() {
            return Ok(report);
        }
        let mut slots = self.slots().await?;
        let mut plan = Vec::new();
        let mut waiting_reasons = Vec::new();
        for job in queued {
            match self.place(&job, &mut slots) {
                Ok(index) => {
                    slots[index].running += 1;
                    let order = self.assignments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.last_assigned().insert(slots[index].node.id.to_string(), order);
                    plan.push((job, slots[index].node.clone()));
                }
                Err(reason) => {
                    report.waiting += 1;
                    if job.queue_reason.as_deref() != Some(reason.as_str()) {
                        waiting_reasons.push((job.id.clone(), reason));
                    }
                }
            }
        }
        if plan.is_empty() && waiting_reasons.is_empty() {
            return Ok(report);
        }
        let marks: Vec<(String, u32, String)> =
            plan.iter().map(|(job, node)| (job.id.clone(), job.attempt() + 1, node.id.to_string())).collect();
        let applied = self.jobs.mark_dispatched(waiting_reasons, marks).await?;
        // A job whose mark did not apply changed meanwhile (e.g. it was cancelled).
        let plan: Vec<_> = plan.into_iter().zip(applied).filter_map(|(p, ok)| ok.then_some(p)).collect();
        let outcomes: Vec<bool> = futures_util::stream::iter(plan)
            .map(|(job, node)| async move { self.dispatch(&job, &node).await })
            .buffer_unordered(DISPATCH_CONCURRENCY)
            .collect()
            .await;
        report.dispatched = outcomes.iter().filter(|ok| **ok).count();
        report.failed_dispatches = outcomes.len() - report.dispatched;
        Ok(report)
    }

    fn last_assigned(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.last_assigned.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cooling(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.cooling.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The nodes jobs may go to, with their current load.
    async fn slots(&self) -> AppResult<Vec<Slot>> {
        let nodes = self.jobs.registry().routable_nodes();
        let running: HashMap<String, i64> = self.jobs.active_counts().await?.into_iter().collect();
        let cooling = {
            let mut cooling = self.cooling();
            cooling.retain(|_, until| until.elapsed() < COOL_DOWN);
            cooling.keys().cloned().collect::<Vec<_>>()
        };
        Ok(nodes
            .into_iter()
            .map(|node| Slot {
                running: running.get(node.id.as_str()).map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX)),
                cooling: cooling.iter().any(|c| c == node.id.as_str()),
                node,
            })
            .collect())
    }

    /// The slot a job goes to, or why it must wait.
    fn place(&self, job: &JobRow, slots: &mut [Slot]) -> Result<usize, String> {
        if let Some(node) = &job.node_id {
            return match slots.iter().position(|s| s.node.id.as_str() == node) {
                Some(i) if slots[i].free() => Ok(i),
                Some(i) => Err(slots[i].busy_reason()),
                None => Err("the chosen node is not online".into()),
            };
        }
        let required = Labels::from_db(&job.labels);
        let fitting: Vec<usize> =
            (0..slots.len()).filter(|&i| slots[i].node.labels.contains_all(&required)).collect();
        if fitting.is_empty() {
            return Err(if required.as_slice().is_empty() {
                "no node is online".into()
            } else {
                format!("no online node has labels {}", required.to_list())
            });
        }
        let last = self.last_assigned();
        fitting
            .into_iter()
            .filter(|&i| slots[i].free())
            .min_by(|&a, &b| {
                let (sa, sb) = (&slots[a], &slots[b]);
                // (running + 1) / max, compared without division.
                let load_a = u64::from(sa.running + 1) * u64::from(sb.node.max_jobs);
                let load_b = u64::from(sb.running + 1) * u64::from(sa.node.max_jobs);
                let last_a = last.get(sa.node.id.as_str()).copied().unwrap_or(0);
                let last_b = last.get(sb.node.id.as_str()).copied().unwrap_or(0);
                load_a.cmp(&load_b).then_with(|| last_a.cmp(&last_b))
            })
            .ok_or_else(|| "every fitting node is busy".into())
    }

    /// Hands a job, already marked dispatched, to its node; puts it back in the queue if
    /// the node does not take it. `true` if the node took it.
    async fn dispatch(&self, job: &JobRow, node: &CachedNode) -> bool {
        let attempt = job.attempt() + 1;
        let assignment = JobAssignment {
            job_id: job.id.clone(),
            attempt,
            command: job.command.clone(),
            env: serde_json::from_str(&job.env).unwrap_or_default(),
            working_dir: job.working_dir.clone(),
            timeout_sec: u64::try_from(job.timeout_sec).unwrap_or(1),
        };
        let started = Instant::now();
        let result = if &node.id == self.jobs.registry().own_id() {
            self.local.accept(assignment).map_err(|r| describe_refusal(r, &node.name))
        } else {
            let sent = self.client.dispatch(node, &assignment).await;
            sent.map_err(|e| format!("dispatch to node {} failed: {e}", node.name))
        };
        match result {
            Ok(()) => {
                self.jobs.registry().metrics().job_dispatch_duration.observe(started.elapsed().as_secs_f64());
                tracing::debug!(job_id = %job.id, node = %node.name, attempt, "job dispatched");
                true
            }
            Err(reason) => {
                tracing::warn!(job_id = %job.id, node = %node.name, %reason, "dispatch failed; job back in the queue");
                self.cooling().insert(node.id.to_string(), Instant::now());
                if let Err(e) = self.jobs.requeue(&job.id, attempt, &reason).await {
                    tracing::error!(error = %e, job_id = %job.id, "requeueing a job failed");
                }
                false
            }
        }
    }

    /// Tells each job's node to cancel it, a few at a time; one not delivered now is sent
    /// again by housekeeping until its node reports the end.
    pub async fn deliver_cancels(&self, jobs: impl IntoIterator<Item = (String, String)>) {
        futures_util::stream::iter(jobs)
            .for_each_concurrent(DISPATCH_CONCURRENCY, |(job, node)| async move {
                if let Err(reason) = self.cancel_on_node(&node, &job).await {
                    tracing::warn!(job_id = %job, %reason, "cancel not delivered to the node yet");
                }
            })
            .await;
    }

    /// Tells a node to cancel a job (best effort: the node's report settles the state).
    async fn cancel_on_node(&self, node_id: &str, job_id: &str) -> Result<(), String> {
        if node_id == self.jobs.registry().own_id().as_str() {
            self.local.cancel(job_id);
            return Ok(());
        }
        let registry = self.jobs.registry();
        let Some(node) = registry.cached(&NodeId::from_db_str(node_id)).filter(|n| n.is_routable()) else {
            return Err("the node is not online; the job will be marked lost if it does not come back".into());
        };
        match self.client.cancel(&node, job_id).await {
            // Not running there (any more): its report settles the state.
            Ok(()) | Err(NodeCallError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(format!("node {} did not take the cancel: {e}", node.name)),
        }
    }
}

fn describe_refusal(refusal: Refusal, name: &str) -> String {
    match refusal {
        Refusal::Full { running, max } => format!("node {name} is full ({running}/{max} jobs)"),
        Refusal::Draining => format!("node {name} is shutting down"),
        Refusal::Stale => format!("node {name} runs a later attempt of this job"),
    }
}
