//! The health checker (SPEC §6), on the leading primary: every tick it probes each *due* secondary with
//! an authenticated `GET /api/internal/system/stats`, concurrently but bounded, and stores
//! the results in one transaction. A node is never probed twice at once; "Check now"
//! bypasses the backoff. The first sweep waits one full interval after start, so a primary
//! restart gives every node time to heartbeat before a missed check counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::{AppError, AppResult};
use crate::nodes::cache::CachedNode;
use crate::nodes::client::NodeClient;
use crate::nodes::health;
use crate::nodes::repo::ProbeRecord;
use crate::nodes::{Node, NodeId, Registry};

/// How the checker is set up.
#[derive(Debug, Clone)]
pub struct CheckerSettings {
    pub tick: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
}

/// Probes secondaries and records what it finds.
#[derive(Debug)]
pub struct HealthChecker {
    registry: Arc<Registry>,
    client: NodeClient,
    settings: CheckerSettings,
    /// One lock per node: a probe holds it, so a node is never probed twice at once.
    probing: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<()>>>>,
    /// Sweeps finished (stored or failed) since start.
    sweeps: AtomicU64,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub probed: usize,
    pub failed: usize,
    pub skipped_busy: usize,
}

impl HealthChecker {
    pub fn new(registry: Arc<Registry>, settings: CheckerSettings) -> anyhow::Result<HealthChecker> {
        let client = NodeClient::new(registry.clone(), settings.timeout, settings.timeout, 4)?;
        Ok(HealthChecker { registry, client, settings, probing: Mutex::default(), sweeps: AtomicU64::new(0) })
    }

    /// While this primary leads, until `shutdown`: sweeps every tick, starting one tick
    /// after its term began (the grace a restart or a new leader gives every node).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let leadership = self.registry.cluster().leadership();
        leadership
            .during_terms(&shutdown, || {
                crate::clock::every(self.settings.tick, self.settings.tick, &shutdown, || async {
                    match self.run_once().await {
                        Ok(report) => tracing::debug!(?report, "health sweep done"),
                        Err(AppError::NotLeader(reason)) => {
                            tracing::debug!(%reason, "health sweep not stored");
                        }
                        Err(e) => tracing::error!(error = %e, "health sweep failed"),
                    }
                })
            })
            .await;
    }

    /// One sweep, on the leader: probe every due node and store the results (`NotLeader`
    /// on a primary whose term is over).
    pub async fn run_once(&self) -> AppResult<SweepReport> {
        let fence = self.registry.leader_fence()?;
        let now = self.registry.now();
        let tick = self.settings.tick;
        let mut targets = self.registry.probe_targets();
        self.forget_removed(&targets);
        targets.retain(|node| health::is_due(node.health.failures, node.last_health_check, now, tick));
        let mut report = SweepReport::default();
        let results: Vec<Option<(Arc<CachedNode>, ProbeRecord)>> = futures_util::stream::iter(targets)
            .map(|node| async move {
                let lock = self.lock_for(&node.id);
                let _guard = lock.try_lock().ok()?;
                let record = self.probe_and_judge(&node).await;
                Some((node, record))
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut probes = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Some((row, record)) => {
                    report.probed += 1;
                    report.failed += usize::from(record.error.is_some());
                    probes.push((row, record));
                }
                None => report.skipped_busy += 1,
            }
        }
        let stored = self.registry.store_probes(probes, fence).await;
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        stored?;
        Ok(report)
    }

    /// How many sweeps have finished since start: a sweep that probed nothing counts too,
    /// so "two more sweeps and still no probe" shows a node is left alone.
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Relaxed)
    }

    /// "Check now": probes one node whatever its backoff, waiting for a probe already in
    /// flight to finish first. Returns the node after the check and the error, if any. The
    /// result is stored on the leader; a follower answers it and leaves the status to the
    /// leader's next sweep.
    pub async fn check_now(&self, id: &NodeId) -> AppResult<(Node, Option<String>)> {
        let node = self.registry.get(id).await?;
        if id == self.registry.own_id() {
            return Ok((node, None));
        }
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        // As it is now: a probe in flight may have changed it while we waited.
        let target =
            self.registry.cached(id).ok_or_else(|| AppError::NotFound(format!("no node with ID {id}")))?;
        let record = self.probe_and_judge(&target).await;
        let error = record.error.clone();
        if let Some(fence) = self.registry.fence() {
            self.registry.store_probes(vec![(target, record)], fence).await?;
        }
        Ok((self.registry.get(id).await?, error))
    }

    /// Drops the probe locks of nodes that no longer exist.
    fn forget_removed(&self, targets: &[Arc<CachedNode>]) {
        let ids: std::collections::HashSet<&NodeId> = targets.iter().map(|n| &n.id).collect();
        let mut map = self.probing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|id, _| ids.contains(id));
    }

    fn lock_for(&self, id: &NodeId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.probing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(id.clone()).or_default().clone()
    }

    async fn probe_and_judge(&self, node: &CachedNode) -> ProbeRecord {
        let before = node.health;
        let started = std::time::Instant::now();
        let outcome = self.probe(node).await;
        let result = if outcome.is_ok() { "success" } else { "failure" };
        let probe_duration = &self.registry.metrics().health_probe_duration;
        probe_duration.with_label_values(&[result]).observe(started.elapsed().as_secs_f64());
        let at = self.registry.now();
        let (health, error, stats) = match outcome {
            Ok(stats) => (before.after_success(), None, Some(stats)),
            Err(error) => (before.after_failure(), Some(error), None),
        };
        ProbeRecord { id: node.id.clone(), expected_failures: before.failures, health, at, error, stats }
    }

    /// Probes with the node's keys (`NodeClient`): its stats, or why not.
    async fn probe(&self, node: &CachedNode) -> Result<String, String> {
        self.client.probe(node).await.map_err(|e| e.to_string())
    }
}
