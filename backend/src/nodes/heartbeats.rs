//! The heartbeat buffer: heartbeats are not written one by one. Each node's latest is held
//! here (a newer one replaces it) until the once-a-second flush (`Registry::flush_heartbeats`)
//! takes everything ([`HeartbeatBuffer::take_due`]) for one transaction:
//!
//! - every node's last seen, version and `max_jobs`, sorted by node ID, the order the health
//!   sweep stores its probes in, so that on PostgreSQL, where the two may run at once, they
//!   take row locks in one order rather than deadlock (`nodes::repo::touch_heartbeats`
//!   locks each batch's rows in that order before its one `UPDATE … FROM (VALUES …)`).
//!   Nodes removed since are left out.
//! - a node's stats (its row's `last_stats` and a chart sample) at most once per
//!   [`SAMPLE_EVERY`]; if the flush fails they are due again with the node's next heartbeat
//!   ([`HeartbeatBuffer::unwritten`]).
//!
//! In between, the newest stats each node sent stay here for `Registry::latest_stats`: a
//! buffered heartbeat's, else those held since the last write, else (the caller's part) the
//! row's. A probe writes its stats to the row at once, so it drops the older ones held
//! ([`HeartbeatBuffer::superseded`]).
//!
//! Pure bookkeeping, no database: the registry asks it what to write and tells it what
//! happened.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::nodes::NodeId;
use crate::nodes::repo::{HeartbeatRecord, StatsSample};
use crate::stats::SystemStats;

/// Samples for the charts, and the stats kept in the node's row, are written at most this
/// often per node.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// A heartbeat waiting for the coalesced write.
#[derive(Debug, Clone)]
pub struct PendingHeartbeat {
    pub at: Timestamp,
    pub version: String,
    pub max_jobs: u32,
    pub stats: Option<SystemStats>,
}

/// When stats were last written for a node, and the heartbeat stats it sent since, if they
/// are newer than its row's (a probe's stats, written at once, supersede them).
#[derive(Debug)]
struct Reported {
    stats: Option<SystemStats>,
    written: Timestamp,
}

/// What one flush writes.
#[derive(Debug, Default)]
pub struct Due {
    /// Every buffered node's row update, in node-ID order (so that on PostgreSQL the flush
    /// and a health sweep lock shared rows in the same order).
    pub records: Vec<HeartbeatRecord>,
    /// A chart sample per node whose stats are due.
    pub samples: Vec<StatsSample>,
}

impl Due {
    /// The nodes whose stats this flush writes.
    pub fn with_stats(&self) -> Vec<NodeId> {
        self.records.iter().filter(|r| r.stats.is_some()).map(|r| r.id.clone()).collect()
    }
}

#[derive(Debug, Default)]
pub struct HeartbeatBuffer {
    // Two locks, taken one at a time, so a heartbeat never waits behind a reader of both.
    pending: Mutex<HashMap<NodeId, PendingHeartbeat>>,
    reported: Mutex<HashMap<NodeId, Reported>>,
}

impl HeartbeatBuffer {
    /// Holds a node's heartbeat for the next flush (a newer one replaces it).
    pub fn hold(&self, id: NodeId, heartbeat: PendingHeartbeat) {
        lock(&self.pending).insert(id, heartbeat);
    }

    /// Takes everything held, for nodes that `exists` still, as rows to write: stats and a
    /// sample for the nodes whose stats are due; every node's latest stats are kept.
    pub fn take_due(&self, exists: impl Fn(&NodeId) -> bool) -> Due {
        let mut pending: Vec<(NodeId, PendingHeartbeat)> = lock(&self.pending).drain().collect();
        pending.retain(|(id, _)| exists(id));
        pending.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut reported = lock(&self.reported);
        let mut samples = Vec::new();
        let records = pending
            .into_iter()
            .map(|(id, hb)| {
                let mut record = HeartbeatRecord {
                    id,
                    at: hb.at,
                    version: hb.version,
                    max_jobs: i32::try_from(hb.max_jobs).unwrap_or(i32::MAX),
                    stats: None,
                };
                let Some(stats) = hb.stats else { return record };
                let written = match reported.get(&record.id).map(|r| r.written) {
                    Some(at) if hb.at.since(at) < SAMPLE_EVERY => at,
                    _ => {
                        record.stats = serde_json::to_string(&stats).ok();
                        samples.push(StatsSample::of(&record.id, hb.at, &stats));
                        hb.at
                    }
                };
                reported.insert(record.id.clone(), Reported { stats: Some(stats), written });
                record
            })
            .collect();
        Due { records, samples }
    }

    /// A flush failed: the stats of `ids` were not written after all, so they are due again
    /// with the nodes' next heartbeats.
    pub fn unwritten(&self, ids: &[NodeId]) {
        let mut reported = lock(&self.reported);
        for id in ids {
            reported.remove(id);
        }
    }

    /// A node removed: nothing of it is kept.
    pub fn forget(&self, id: &NodeId) {
        lock(&self.pending).remove(id);
        lock(&self.reported).remove(id);
    }

    /// A probe wrote `id`'s stats to its row: those held from heartbeats are older.
    pub fn superseded(&self, id: &NodeId) {
        if let Some(r) = lock(&self.reported).get_mut(id) {
            r.stats = None;
        }
    }

    /// The newest stats held for each of `ids`: a buffered heartbeat's, else those held since
    /// the last write; `None` where the node's row has the newest. A flush running meanwhile
    /// moves stats from one map to the other; caught in between, a node gets `None` for this
    /// one read.
    pub fn latest(&self, ids: &[&NodeId]) -> Vec<Option<SystemStats>> {
        let buffered: Vec<Option<SystemStats>> = {
            let pending = lock(&self.pending);
            ids.iter().map(|id| pending.get(*id).and_then(|h| h.stats.clone())).collect()
        };
        let reported = lock(&self.reported);
        ids.iter()
            .zip(buffered)
            .map(|(id, buffered)| buffered.or_else(|| reported.get(*id).and_then(|r| r.stats.clone())))
            .collect()
    }
}

/// A mutex's guard; a panic elsewhere while it was held leaves plain data, still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(at: Timestamp, cpu: f64) -> PendingHeartbeat {
        let stats = SystemStats { cpu_usage_percent: cpu, ..SystemStats::default() };
        PendingHeartbeat { at, version: "1".into(), max_jobs: 2, stats: Some(stats) }
    }

    fn cpu(stats: &Option<SystemStats>) -> Option<f64> {
        stats.as_ref().map(|s| s.cpu_usage_percent)
    }

    #[test]
    fn stats_are_due_once_a_minute_and_the_latest_are_held_in_between() {
        let buffer = HeartbeatBuffer::default();
        let (a, b, gone) = (NodeId::generate(), NodeId::generate(), NodeId::generate());
        let t0 = Timestamp(1_000_000);
        buffer.hold(b.clone(), beat(t0, 10.0));
        buffer.hold(a.clone(), beat(t0, 20.0));
        buffer.hold(gone.clone(), beat(t0, 30.0));
        assert_eq!(cpu(&buffer.latest(&[&a])[0]), Some(20.0), "buffered");

        let due = buffer.take_due(|id| *id != gone);
        let mut ids = vec![a.clone(), b];
        ids.sort();
        assert_eq!(
            due.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            ids,
            "in ID order, removed left out"
        );
        assert_eq!(due.samples.len(), 2);
        assert_eq!(due.with_stats().len(), 2);

        // Ten seconds later: last seen goes out, the stats only into memory.
        buffer.hold(a.clone(), beat(t0.plus(Duration::from_secs(10)), 25.0));
        let due = buffer.take_due(|_| true);
        assert_eq!(due.records.len(), 1);
        assert!(due.records[0].stats.is_none() && due.samples.is_empty());
        assert_eq!(cpu(&buffer.latest(&[&a])[0]), Some(25.0), "held since");

        // A probe wrote newer stats to the row: nothing held is newer any more.
        buffer.superseded(&a);
        assert_eq!(cpu(&buffer.latest(&[&a])[0]), None);

        // A minute after the last write: due again.
        buffer.hold(a.clone(), beat(t0.plus(Duration::from_secs(61)), 30.0));
        let due = buffer.take_due(|_| true);
        assert!(due.records[0].stats.is_some());
        assert_eq!(due.samples.len(), 1);

        // That write failed: due again with the next heartbeat, though less than a minute on.
        buffer.unwritten(&due.with_stats());
        buffer.hold(a, beat(t0.plus(Duration::from_secs(62)), 31.0));
        assert_eq!(buffer.take_due(|_| true).samples.len(), 1);
    }
}
