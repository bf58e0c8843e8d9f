//! The primary's in-memory view of every node: what the hot paths (heartbeat
//! authentication, the health checker, the job router) need without a database read. An
//! entry ([`CachedNode`]) holds:
//!
//! - the SHA-256 of the node's key, and the key itself sealed under the master key (what
//!   the primary presents when it calls the node); the same for the previous key while a
//!   rotation's grace lasts. A presented key is compared with both in constant time, and
//!   an unknown ID pays the same two comparisons against a dummy hash
//!   ([`unknown_node_key_check`]), so timing does not tell which IDs exist.
//! - `current_key_proven`: whether the node has shown its current key since a rotation;
//!   until it has, the previous key is presented first (`Registry::keys_for`).
//! - health (status, consecutive failures) and the last check: whether a heartbeat changes
//!   anything that must be written at once, and which nodes a sweep is due to probe.
//! - name, endpoint, labels and `max_jobs` (a heartbeat's new value lands here before the
//!   database has it): where jobs may go, and how to reach each node.
//!
//! Loaded whole at start and kept current by every write the registry makes; there is no
//! lookup on a miss, since a node not here does not exist. Entries are shared (`Arc`): a
//! read copies a pointer, a change copies the entry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::clock::Timestamp;
use crate::nodes::health::Health;
use crate::nodes::repo::NodeRow;
use crate::nodes::{Labels, NodeId, NodeStatus, NodeUrl};
use crate::protocol::Connect;
use crate::secrets::KeyHash;

/// A node's previous key during a rotation's grace period.
#[derive(Debug, Clone)]
pub struct PreviousKey {
    pub hash: KeyHash,
    pub sealed: Vec<u8>,
    pub expires: Timestamp,
}

/// What the cache keeps of one node.
#[derive(Debug, Clone)]
pub struct CachedNode {
    pub id: NodeId,
    pub name: String,
    pub endpoint: NodeUrl,
    pub is_primary: bool,
    pub labels: Labels,
    pub max_jobs: u32,
    pub health: Health,
    pub last_health_check: Option<Timestamp>,
    pub key: KeyHash,
    /// The key itself, sealed under the master key: what the primary presents to the node.
    pub sealed_key: Vec<u8>,
    pub previous_key: Option<PreviousKey>,
    /// How the primaries reach it; for an outbound node, which primary holds its socket.
    pub connect: Connect,
    pub connected_via: Option<NodeId>,
    /// Whether the node has shown it holds its current key. Until it has (after a
    /// rotation, while the previous key is in its grace period), the primary presents the
    /// previous key first: that is the one the node still has.
    pub current_key_proven: bool,
}

/// Which of a node's keys a presented key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    Current,
    /// The previous key, within its grace period.
    Previous,
    None,
}

impl CachedNode {
    pub fn from_row(row: &NodeRow) -> Option<CachedNode> {
        let previous_key =
            match (&row.previous_key_hash, &row.previous_key_sealed, row.previous_key_expires_at) {
                (Some(hash), Some(sealed), Some(expires)) => Some(PreviousKey {
                    hash: KeyHash::from_bytes(hash)?,
                    sealed: sealed.clone(),
                    expires: Timestamp(expires),
                }),
                _ => None,
            };
        Some(CachedNode {
            id: NodeId::from_db(row.id.clone()),
            name: row.name.clone(),
            endpoint: NodeUrl::from_db(row.api_endpoint.clone()),
            is_primary: row.is_primary,
            labels: Labels::from_db(&row.labels),
            max_jobs: u32::try_from(row.max_jobs).unwrap_or(0),
            health: row.health(),
            last_health_check: row.last_health_check.map(Timestamp),
            key: KeyHash::from_bytes(&row.api_key_hash)?,
            sealed_key: row.api_key_sealed.clone(),
            current_key_proven: previous_key.is_none(),
            previous_key,
            connect: Connect::from_db(&row.connect),
            connected_via: row.connected_via.clone().map(NodeId::from_db),
        })
    }

    /// Which key `presented` is: this node's key, its previous key still in its grace
    /// period, or neither. Both comparisons always run, so timing does not tell which.
    pub fn key_match(&self, presented: &str, now: Timestamp) -> KeyMatch {
        let current = self.key.matches(presented);
        let previous = match &self.previous_key {
            Some(previous) => previous.hash.matches(presented) && now < previous.expires,
            None => dummy_key_check(presented),
        };
        match (current, previous) {
            (true, _) => KeyMatch::Current,
            (false, true) => KeyMatch::Previous,
            (false, false) => KeyMatch::None,
        }
    }

    /// Whether the primary should present the previous key before the current one.
    pub fn previous_key_first(&self, now: Timestamp) -> bool {
        !self.current_key_proven && self.previous_key.as_ref().is_some_and(|p| now < p.expires)
    }

    /// Online: jobs may go there. (A primary is online to itself from its start; the
    /// leader probes the other primaries like any node.)
    pub fn is_routable(&self) -> bool {
        self.health.status == NodeStatus::Online
    }
}

/// Compared against when there is nothing real to compare, to keep timing uniform.
static DUMMY: std::sync::LazyLock<KeyHash> =
    std::sync::LazyLock::new(|| KeyHash::of("fleetdeck-no-such-key"));

/// Checks a presented key against nothing, taking the time one real comparison takes;
/// always false.
pub fn dummy_key_check(presented: &str) -> bool {
    std::hint::black_box(DUMMY.matches(presented));
    false
}

/// What checking a key against an unknown node costs: the two comparisons a known node's
/// check makes (`CachedNode::key_match`). Always `KeyMatch::None`.
pub fn unknown_node_key_check(presented: &str) -> KeyMatch {
    std::hint::black_box(dummy_key_check(presented) | dummy_key_check(presented));
    KeyMatch::None
}

/// Node ID → what the hot paths need.
#[derive(Debug, Default)]
pub struct NodeCache {
    nodes: RwLock<HashMap<NodeId, Arc<CachedNode>>>,
}

impl NodeCache {
    pub fn load(rows: &[NodeRow]) -> NodeCache {
        let nodes = rows
            .iter()
            .filter_map(CachedNode::from_row)
            .map(|node| (node.id.clone(), Arc::new(node)))
            .collect();
        NodeCache { nodes: RwLock::new(nodes) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeId, Arc<CachedNode>>> {
        self.nodes.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<NodeId, Arc<CachedNode>>> {
        self.nodes.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, id: &NodeId) -> Option<Arc<CachedNode>> {
        self.read().get(id).cloned()
    }

    /// Every node, as it is now.
    pub fn all(&self) -> Vec<Arc<CachedNode>> {
        self.read().values().cloned().collect()
    }

    /// Whether some node (online or not) holds all of `labels`.
    pub fn any_has_labels(&self, labels: &Labels) -> bool {
        self.read().values().any(|n| n.labels.contains_all(labels))
    }

    /// Adds or replaces a node. What the node has proven about its keys is kept while its
    /// keys stay the same.
    pub fn put(&self, mut node: CachedNode) -> Arc<CachedNode> {
        let mut nodes = self.write();
        if let Some(old) = nodes.get(&node.id)
            && old.key == node.key
        {
            node.current_key_proven |= old.current_key_proven;
        }
        let node = Arc::new(node);
        nodes.insert(node.id.clone(), node.clone());
        node
    }

    pub fn put_row(&self, row: &NodeRow) {
        if let Some(node) = CachedNode::from_row(row) {
            self.put(node);
        }
    }

    pub fn remove(&self, id: &NodeId) {
        self.write().remove(id);
    }

    /// Changes a cached node in place, if present.
    pub fn update(&self, id: &NodeId, f: impl FnOnce(&mut CachedNode)) {
        if let Some(node) = self.write().get_mut(id) {
            f(Arc::make_mut(node));
        }
    }
}
