//! The health checker's side of the registry: which nodes to probe (every secondary; the
//! checker keeps the due ones), and storing what a sweep (or a "check now") found. The rules:
//!
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
use crate::error::AppResult;
use crate::nodes::StatusChange;
use crate::nodes::cache::CachedNode;
use crate::nodes::repo::{self, ProbeRecord};

impl Registry {
    /// The secondaries, with what the health checker needs.
    pub fn probe_targets(&self) -> Vec<Arc<CachedNode>> {
        let mut nodes = self.cache.all();
        nodes.retain(|n| !n.is_primary);
        nodes
    }

    /// Stores a batch of probe results in one transaction, then announces transitions.
    pub async fn store_probes(&self, mut probes: Vec<(Arc<CachedNode>, ProbeRecord)>) -> AppResult<()> {
        if probes.is_empty() {
            return Ok(());
        }
        // In ID order, as the heartbeat flush: on PostgreSQL the two may run at once.
        probes.sort_unstable_by(|a, b| a.1.id.cmp(&b.1.id));
        let changes = self
            .db
            .write(move |conn| {
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
