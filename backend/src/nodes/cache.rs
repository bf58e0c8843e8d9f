//! The primary's in-memory view of what the hot paths need per node: key hashes (to
//! authenticate heartbeats without a database read) and health (to tell whether a heartbeat
//! changes anything that must be written at once). Loaded at start, kept current by every
//! write the primary makes, and filled from the database on a miss.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clock::Timestamp;
use crate::nodes::health::Health;
use crate::nodes::repo::NodeRow;
use crate::nodes::{Labels, NodeId};
use crate::secrets::KeyHash;

/// What the cache keeps of one node.
#[derive(Debug, Clone)]
pub struct CachedNode {
    pub key: KeyHash,
    pub previous_key: Option<(KeyHash, Timestamp)>,
    pub health: Health,
    pub labels: Labels,
    pub is_primary: bool,
}

impl CachedNode {
    pub fn from_row(row: &NodeRow) -> Option<CachedNode> {
        let previous_key = match (&row.previous_key_hash, row.previous_key_expires_at) {
            (Some(hash), Some(expires)) => KeyHash::from_bytes(hash).map(|h| (h, Timestamp(expires))),
            _ => None,
        };
        Some(CachedNode {
            key: KeyHash::from_bytes(&row.api_key_hash)?,
            previous_key,
            health: row.health(),
            labels: Labels::from_db(&row.labels),
            is_primary: row.is_primary,
        })
    }

    /// Whether `presented` is this node's key, or its previous key still in its grace period.
    /// Both comparisons always run, so timing does not reveal which matched.
    pub fn key_matches(&self, presented: &str, now: Timestamp) -> bool {
        let current = self.key.matches(presented);
        let previous = match self.previous_key {
            Some((hash, expires)) => hash.matches(presented) && now < expires,
            None => dummy_key_check(presented),
        };
        current | previous
    }
}

/// Compared against when there is nothing real to compare, to keep timing uniform.
static DUMMY: std::sync::LazyLock<KeyHash> =
    std::sync::LazyLock::new(|| KeyHash::of("fleetdeck-no-such-key"));

/// Checks a presented key against nothing, taking the time a real check takes; always false.
pub fn dummy_key_check(presented: &str) -> bool {
    std::hint::black_box(DUMMY.matches(presented));
    false
}

/// Node ID → what the hot paths need.
#[derive(Debug, Default)]
pub struct NodeCache {
    nodes: RwLock<HashMap<NodeId, CachedNode>>,
}

impl NodeCache {
    pub fn load(rows: &[NodeRow]) -> NodeCache {
        let nodes = rows
            .iter()
            .filter_map(|row| Some((NodeId::from_db(row.id.clone()), CachedNode::from_row(row)?)))
            .collect();
        NodeCache { nodes: RwLock::new(nodes) }
    }

    pub fn get(&self, id: &NodeId) -> Option<CachedNode> {
        self.nodes.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }

    pub fn put(&self, id: NodeId, node: CachedNode) {
        self.nodes.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, node);
    }

    pub fn put_row(&self, row: &NodeRow) {
        if let Some(node) = CachedNode::from_row(row) {
            self.put(NodeId::from_db(row.id.clone()), node);
        }
    }

    pub fn remove(&self, id: &NodeId) {
        self.nodes.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }

    /// Changes a cached node in place, if present.
    pub fn update(&self, id: &NodeId, f: impl FnOnce(&mut CachedNode)) {
        if let Some(node) = self.nodes.write().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id)
        {
            f(node);
        }
    }
}
