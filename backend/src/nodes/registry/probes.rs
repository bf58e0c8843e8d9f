//! The health checker's side of the registry: which nodes to probe (every secondary; the
//! checker keeps the due ones), and storing what a sweep (or a "check now") found. The rules:
//!
//! - Only the leader stores results: the transaction first checks its term (fencing), so
//!   a primary that lost the lease mid-sweep writes nothing.
//! - All of a sweep's results go in one transaction, sorted by node ID, the order the
//!   heartbeat flush writes in (on PostgreSQL the two may run at once).
//! - A result is stale, and skipped, when the node's failure count is no longer the one the
//!   probe started from (`ProbeRecord::expected_failures`): a heartbeat that arrived
//!   meanwhile is fresher news.
//! - Success: online, failures 0, last seen, last check and `last_stats` written, `last_error`
//!   cleared (nothing else clears it); the stats held from heartbeats are dropped as older.
//!   Failure: the failure count and status from `nodes::health` (a never-reached `pending`
//!   node stays `pending`), last check, and `last_error` in an operator's words.
//! - A result whose status differs from the one the probe started from is a transition,
//!   recorded in `node_status_history` in the same transaction. Once it commits, every
//!   applied result updates the cache (health, last check) and every transition is
//!   announced (log line and `EventHub`).

use std::sync::Arc;

use super::{Probed, Registry};
use crate::cluster::lease::Fence;
use crate::error::AppResult;
use crate::nodes::StatusChange;
use crate::nodes::cache::CachedNode;
use crate::nodes::repo::{self, ProbeRecord};

impl Registry {
    /// Every node but this primary (other primaries too), with what the health checker
    /// needs.
    pub fn probe_targets(&self) -> Vec<Arc<CachedNode>> {
        let mut nodes = self.cache.all();
        nodes.retain(|n| n.id != self.own_id);
        nodes
    }

    /// Stores a batch of probe results in one transaction, then announces transitions.
    /// Leader only: the transaction first checks `fence`'s term (`NotLeader` otherwise).
    pub async fn store_probes(
        &self,
        mut probes: Vec<(Arc<CachedNode>, ProbeRecord)>,
        fence: Fence,
    ) -> AppResult<()> {
        if probes.is_empty() {
            return Ok(());
        }
        // In ID order, as the heartbeat flush: on PostgreSQL the two may run at once.
        probes.sort_unstable_by(|a, b| a.1.id.cmp(&b.1.id));
        let origin = self.own_id.clone();
        let changes = self
            .db
            .transaction(move |conn| -> AppResult<_> {
                crate::cluster::check_fence(conn, &fence)?;
                let mut applied = Vec::new();
                for (node, probe) in probes {
                    if !repo::store_probe(conn, &probe)? {
                        continue;
                    }
                    let from = node.health.status;
                    let change = (from != probe.health.status).then(|| StatusChange {
                        id: uuid::Uuid::now_v7().to_string(),
                        node_id: probe.id.clone(),
                        from,
                        to: probe.health.status,
                        reason: probe.error.clone().unwrap_or_else(|| "health check succeeded".into()),
                        at: probe.at,
                    });
                    if let Some(change) = &change {
                        repo::record_transition(conn, change)?;
                    }
                    super::changed(conn, &probe.id, &origin)?;
                    let probed = Probed { health: probe.health, at: probe.at, stats: probe.stats.is_some() };
                    applied.push((probe.id, probed, change.map(|c| (c, node.name.clone()))));
                }
                Ok(applied)
            })
            .await?;
        for (id, probed, change) in changes {
            self.cache.update(&id, |n| {
                n.health = probed.health;
                n.last_health_check = Some(probed.at);
            });
            if probed.stats {
                self.heartbeats.superseded(&id);
            }
            if let Some((change, name)) = change {
                self.announce(change, name);
            }
        }
        Ok(())
    }
}
