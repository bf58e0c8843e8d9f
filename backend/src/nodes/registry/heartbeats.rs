//! What a heartbeat changes. If the cached node is not "online, 0 failures" or its labels
//! differ, one transaction sets it online (failures 0, last seen, labels; `last_error`
//! stays, so a node that heartbeats but cannot be probed shows why) and, if its status was
//! another, records the transition; then the cache is updated and any transition announced.
//! Everything else (last seen, version, `max_jobs`, stats) waits in the `HeartbeatBuffer`; a
//! new `max_jobs` reaches the cache, and so the router, at once. The primary sends itself no
//! heartbeats: each flush first holds its own stats there (`record_self`).
//!
//! `run_flush` writes the buffer every `HEARTBEAT_FLUSH_EVERY` (and once more at shutdown)
//! in one transaction, last-seen fields batched many nodes to a statement
//! (`nodes::repo::touch_heartbeats`); the buffer's docs say what is due and in which order.
//! Also here: the latest stats of every node (buffer first, then the row) and the hourly
//! retention of chart samples.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{HEARTBEAT_FLUSH_EVERY, RETENTION_EVERY, Registry, not_found};
use crate::error::{AppError, AppResult};
use crate::nodes::health::Health;
use crate::nodes::heartbeats::PendingHeartbeat;
use crate::nodes::repo::{self, NodeRow};
use crate::nodes::{Labels, Node, NodeId, NodeStatus, StatusChange};
use crate::protocol::{Heartbeat, HeartbeatReply};
use crate::stats::{StatsCollector, SystemStats};

impl Registry {
    /// Takes an authenticated heartbeat. A status (or label) change is written at once; the
    /// rest is buffered and written by `flush_heartbeats`.
    pub async fn heartbeat(&self, id: &NodeId, hb: Heartbeat) -> AppResult<HeartbeatReply> {
        let now = self.now();
        let cached = self.cache.get(id).ok_or_else(|| not_found(id))?;
        if cached.is_primary {
            return Err(AppError::Forbidden("primaries do not send heartbeats".into()));
        }
        let labels = match &hb.labels {
            Some(reported) => Labels::parse(reported).map_err(|e| AppError::validation("labels", e))?,
            None => cached.labels.clone(),
        };
        let healthy = Health { status: NodeStatus::Online, failures: 0 };
        let connect = hb.connect;
        if cached.health != healthy || cached.labels != labels || cached.connect != connect {
            let (id2, origin) = (id.clone(), self.own_id.clone());
            let labels2 = labels.clone();
            let before = self
                .db
                .write(move |conn| {
                    let before = repo::mark_online(conn, &id2, &labels2, connect, now)?;
                    let change =
                        before.as_ref().filter(|(b, _)| *b != NodeStatus::Online).map(|(from, name)| {
                            let change = StatusChange {
                                id: uuid::Uuid::now_v7().to_string(),
                                node_id: id2.clone(),
                                from: *from,
                                to: NodeStatus::Online,
                                reason: "heartbeat received".into(),
                                at: now,
                            };
                            (change, name.clone())
                        });
                    if let Some((change, _)) = &change {
                        repo::record_transition(conn, change)?;
                    }
                    if before.is_some() {
                        super::changed(conn, &id2, &origin)?;
                    }
                    Ok(before.map(|_| change))
                })
                .await?;
            let Some(change) = before else { return Err(not_found(id)) };
            self.cache.update(id, |n| {
                n.health = healthy;
                n.labels = labels;
                n.connect = connect;
            });
            if let Some((change, name)) = change {
                self.announce(change, name);
            }
        }
        if cached.max_jobs != hb.max_jobs {
            // The database learns it with the next flush; the router, now.
            self.cache.update(id, |n| n.max_jobs = hb.max_jobs);
        }
        let pending =
            PendingHeartbeat { at: now, version: hb.version, max_jobs: hb.max_jobs, stats: hb.stats };
        self.heartbeats.hold(id.clone(), pending);
        self.metrics.heartbeats_received.inc();
        Ok(HeartbeatReply { primary_node_id: self.primary_id.clone(), time: now })
    }

    /// Records the primary's own liveness and stats, as a heartbeat would (it is always
    /// online to itself).
    pub fn record_self(&self, stats: SystemStats) {
        let pending = PendingHeartbeat {
            at: self.now(),
            version: crate::VERSION.to_owned(),
            max_jobs: stats.max_jobs,
            stats: Some(stats),
        };
        self.heartbeats.hold(self.own_id.clone(), pending);
    }

    /// Writes buffered heartbeats in one transaction; returns how many. Every node's last
    /// seen time is written; its stats (row and chart sample) only once per `SAMPLE_EVERY`,
    /// the latest staying in memory for `latest_stats` in between.
    pub async fn flush_heartbeats(&self) -> AppResult<usize> {
        let due = self.heartbeats.take_due(|id| self.cache.get(id).is_some());
        let n = due.records.len();
        if n == 0 {
            return Ok(0);
        }
        let with_stats = due.with_stats();
        if let Err(e) =
            self.db.write(move |conn| repo::touch_heartbeats(conn, &due.records, &due.samples)).await
        {
            self.heartbeats.unwritten(&with_stats);
            return Err(e.into());
        }
        Ok(n)
    }

    /// Removes stats samples older than `retention` (leader only: `NotLeader` otherwise).
    pub async fn prune_samples(&self, retention: Duration) -> AppResult<usize> {
        let before = self.now().minus(retention);
        let fence = self.leader_fence()?;
        self.db
            .transaction(move |conn| {
                crate::cluster::check_fence(conn, &fence)?;
                Ok(repo::prune_samples(conn, before)?)
            })
            .await
    }

    /// Writes buffered heartbeats (the primary's own included, from `own_stats`) every
    /// `HEARTBEAT_FLUSH_EVERY` until `shutdown`, then once more.
    pub async fn run_flush(self: Arc<Self>, own_stats: StatsCollector, shutdown: CancellationToken) {
        let flush = || async {
            self.record_self(own_stats.latest());
            if let Err(e) = self.flush_heartbeats().await {
                tracing::error!(error = %e, "writing heartbeats failed");
            }
        };
        crate::clock::every(HEARTBEAT_FLUSH_EVERY, HEARTBEAT_FLUSH_EVERY, &shutdown, &flush).await;
        flush().await;
    }

    /// On the leader, at its start and every hour until `shutdown`: removes chart samples
    /// older than `retention`, join tokens a week past their expiry, and the cluster's rows
    /// of primaries long gone and old change-log entries.
    pub async fn run_retention(self: Arc<Self>, retention: Duration, shutdown: CancellationToken) {
        let leadership = self.cluster.leadership();
        leadership
            .during_terms(&shutdown, || {
                crate::clock::every(Duration::ZERO, RETENTION_EVERY, &shutdown, || async {
                    match self.prune_samples(retention).await {
                        Ok(0) | Err(AppError::NotLeader(_)) => {}
                        Ok(removed) => tracing::info!(removed, "old stats samples removed"),
                        Err(e) => tracing::error!(error = %e, "removing old stats samples failed"),
                    }
                    if let Err(e) = self.prune_join_tokens().await {
                        tracing::error!(error = %e, "removing old join tokens failed");
                    }
                    if let Some(fence) = self.fence()
                        && let Err(e) = self.cluster.prune(fence).await
                        && !matches!(e, AppError::NotLeader(_))
                    {
                        tracing::error!(error = %e, "removing old cluster rows failed");
                    }
                })
            })
            .await;
    }

    /// The latest stats of every node (the primary's own is filled in by the caller): a
    /// buffered heartbeat's, else those held since the last write, else the row's.
    pub async fn latest_stats(&self) -> AppResult<Vec<(Node, Option<SystemStats>)>> {
        let rows = self.db.run(repo::all).await?;
        let nodes: Vec<Node> = rows.iter().map(NodeRow::to_node).collect();
        let ids: Vec<&NodeId> = nodes.iter().map(|n| &n.id).collect();
        let fresh = self.heartbeats.latest(&ids);
        Ok(nodes
            .into_iter()
            .zip(fresh)
            .zip(&rows)
            .map(|((node, fresh), row)| {
                let stats =
                    fresh.or_else(|| row.last_stats.as_deref().and_then(|s| serde_json::from_str(s).ok()));
                (node, stats)
            })
            .collect())
    }
}
