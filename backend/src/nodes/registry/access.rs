//! Who a node is: authenticating its key (from the node cache, uniform in cost whether or
//! not the ID exists), the keys the primary presents when calling it, and self-registration
//! with `REGISTRATION_TOKEN`.

use secrecy::ExposeSecret as _;

use super::{NewNode, Registered, Registry, not_found};
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::nodes::cache::{CachedNode, KeyMatch, unknown_node_key_check};
use crate::nodes::repo::{self, NodeChanges, NodeRow};
use crate::nodes::{Node, NodeId};
use crate::secrets::ApiKey;
use crate::secrets::secrets_equal;

impl Registry {
    /// Whether `key` authenticates node `id` (its key, or its previous one within grace).
    /// Answered from the node cache, which holds every node: an unknown ID costs the same
    /// two key comparisons as a known one, and no database read, so timing does not tell
    /// whether an ID exists. The first time a node shows its current key after a rotation
    /// is remembered: from then on the primary presents that key first (`keys_for`).
    pub fn authenticate(&self, id: &NodeId, key: &str) -> bool {
        let now = self.now();
        let Some(node) = self.cache.get(id) else {
            return unknown_node_key_check(key) != KeyMatch::None;
        };
        let verdict = node.key_match(key, now);
        if verdict == KeyMatch::Current && !node.current_key_proven {
            self.cache.update(id, |n| n.current_key_proven = true);
        }
        verdict != KeyMatch::None
    }

    /// Whether self-registration is on and `token` is its token: checked before a
    /// registration's body is even read.
    pub fn check_registration_token(&self, token: Option<&str>) -> AppResult<()> {
        let Some(expected) = &self.registration_token else {
            return Err(AppError::Forbidden(
                "self-registration is disabled on this primary (set REGISTRATION_TOKEN to enable it)".into(),
            ));
        };
        if secrets_equal(expected.expose_secret(), token.unwrap_or_default()) {
            Ok(())
        } else {
            Err(AppError::Unauthorized("invalid registration token".into()))
        }
    }

    /// Self-registration (`POST /api/internal/nodes/register`).
    pub async fn register(&self, token: Option<&str>, new: NewNode) -> AppResult<(Node, Registered)> {
        self.check_registration_token(token)?;
        let (id, key) = id_and_key(&new)?;
        if id == self.primary_id {
            return Err(AppError::Conflict("that ID is the primary's own".into()));
        }
        let now = self.now();
        let origin = self.own_id.clone();
        let fresh = self.new_row(&id, &new.name, &new.api_endpoint, &key, &new.labels, now);
        let (row, outcome) = self
            .db
            .transaction(move |conn| insert_or_confirm(conn, &fresh, &key, &new, now, &origin))
            .await?;
        self.cache.put_row(&row);
        let node = row.to_node();
        tracing::info!(node_id = %node.id, name = %node.name, ?outcome, "node self-registered");
        if outcome == Registered::Created {
            self.events.publish(Event::NodeUpdated { node_id: node.id.clone() });
        }
        Ok((node, outcome))
    }

    /// The keys to present when calling a node, the one it most likely holds first: during
    /// a rotation's grace period the previous key until the node has shown the new one
    /// (a node refuses a key it does not hold, and counts the refusal against the caller).
    pub fn keys_for(&self, node: &CachedNode) -> Vec<String> {
        let now = self.now();
        let current = self.master_key.open(&node.sealed_key);
        let previous = node
            .previous_key
            .as_ref()
            .filter(|p| now < p.expires)
            .and_then(|p| self.master_key.open(&p.sealed));
        if node.previous_key_first(now) {
            previous.into_iter().chain(current).collect()
        } else {
            current.into_iter().chain(previous).collect()
        }
    }
}

/// A registration's ID and key, both required.
pub(super) fn id_and_key(new: &NewNode) -> AppResult<(NodeId, ApiKey)> {
    let Some(id) = new.id.clone() else {
        return Err(AppError::validation("id", "is required"));
    };
    let Some(key) = new.api_key.clone() else {
        return Err(AppError::validation("api_key", "is required"));
    };
    Ok((id, key))
}

/// Inside a registration's transaction: inserts `fresh`, or, when its ID is registered
/// already with the same key, takes the new endpoint (not the labels: those are the
/// primary's, or come with the node's heartbeats when it sets `NODE_LABELS`). Another key, the primary's
/// row, or the name taken by another ID is a conflict: nothing is overwritten.
pub(super) fn insert_or_confirm(
    conn: &mut DbConnection,
    fresh: &NodeRow,
    key: &ApiKey,
    new: &NewNode,
    now: Timestamp,
    origin: &NodeId,
) -> AppResult<(NodeRow, Registered)> {
    let id = NodeId::from_db(fresh.id.clone());
    if let Some(existing) = repo::find(conn, &id)? {
        let same_key = crate::secrets::KeyHash::from_bytes(&existing.api_key_hash)
            .is_some_and(|h| h.matches(key.expose()));
        if !same_key || existing.is_primary {
            return Err(AppError::Conflict(format!("node {id} is already registered with a different key")));
        }
        let changes = NodeChanges {
            api_endpoint: Some(new.api_endpoint.to_string()),
            updated_at: now.0,
            ..NodeChanges::default()
        };
        repo::update(conn, &id, &changes)?;
        super::changed(conn, &id, origin)?;
        let row = repo::find(conn, &id)?.ok_or_else(|| not_found(&id))?;
        return Ok((row, Registered::AlreadyRegistered));
    }
    if repo::find_by_name(conn, &new.name)?.is_some() {
        return Err(AppError::Conflict(format!("a node named {} already exists with another ID", new.name)));
    }
    repo::insert(conn, fresh)?;
    super::changed(conn, &id, origin)?;
    Ok((fresh.clone(), Registered::Created))
}
