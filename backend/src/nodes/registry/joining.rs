//! Join tokens (SPEC §15): single-use, expiring tokens an operator creates so that a machine
//! joins with one command (`curl -fsSL <primary>/install.sh | sh -s -- --join <token>`). The
//! machine generates its own ID and key and registers with the token, which is spent in the
//! same transaction that creates the node. Only the token's SHA-256 is stored.

use std::time::Duration;

use serde::Serialize;

use super::{NewNode, Registered, Registry};
use crate::clock::Timestamp;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::nodes::repo::{self, JoinTokenRow};
use crate::nodes::{Labels, Node, NodeId, NodeName};
use crate::secrets::{KeyHash, random_token};

/// What every join token starts with (so it is recognisable, and told apart from other secrets).
pub const JOIN_TOKEN_PREFIX: &str = "fdj_";
/// How long a join token lasts unless asked otherwise.
pub const DEFAULT_JOIN_TTL: Duration = Duration::from_secs(3600);
/// The shortest a join token may last.
pub const MIN_JOIN_TTL: Duration = Duration::from_secs(60);
/// The longest a join token may last.
pub const MAX_JOIN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a used or expired token's record stays listed.
const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A join token to create, already validated.
#[derive(Debug, Clone, Default)]
pub struct NewJoinToken {
    /// The joining node's name; `None`: the machine's own (`NODE_NAME` or its host name).
    pub name: Option<NodeName>,
    /// Given to the joining node (else the labels it reports).
    pub labels: Labels,
    pub expires_in: Option<Duration>,
}

/// Where a join token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JoinTokenState {
    /// Can still be used.
    Active,
    /// A node joined with it.
    Used,
    /// Expired unused.
    Expired,
}

/// A join token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JoinToken {
    pub id: String,
    /// The name the joining node gets, if set.
    pub name: Option<String>,
    pub labels: Labels,
    pub state: JoinTokenState,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// The node that joined with it.
    pub used_by: Option<NodeId>,
}

impl JoinToken {
    fn of(row: JoinTokenRow, now: Timestamp) -> JoinToken {
        let state = if row.used_at.is_some() {
            JoinTokenState::Used
        } else if now.millis() >= row.expires_at {
            JoinTokenState::Expired
        } else {
            JoinTokenState::Active
        };
        JoinToken {
            id: row.id,
            name: row.name,
            labels: Labels::from_db(&row.labels),
            state,
            created_by: row.created_by,
            created_at: Timestamp(row.created_at),
            expires_at: Timestamp(row.expires_at),
            used_at: row.used_at.map(Timestamp),
            used_by: row.used_by.map(NodeId::from_db),
        }
    }
}

/// A new join token: the token itself is shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IssuedJoinToken {
    #[serde(flatten)]
    pub join_token: JoinToken,
    pub token: String,
    /// The command that joins a machine: `curl -fsSL <primary>/install.sh | sh -s -- --join <token>`.
    pub command: String,
}

/// The one command that installs Fleetdeck on a machine and joins it to the primary at `url`
/// (its public URL, configured: never taken from a request, whose `Host` a client chooses).
fn join_command(url: &str, token: &str) -> String {
    format!("curl -fsSL {url}/install.sh | sh -s -- --join {token}")
}

impl Registry {
    /// Creates a join token for a primary reached at `primary_url`.
    pub async fn create_join_token(
        &self,
        new: NewJoinToken,
        created_by: &str,
        primary_url: &str,
    ) -> AppResult<IssuedJoinToken> {
        let token = format!("{JOIN_TOKEN_PREFIX}{}", random_token(32));
        let now = self.now();
        let row = JoinTokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            token_hash: KeyHash::of(&token).as_bytes().to_vec(),
            name: new.name.map(|n| n.to_string()),
            labels: new.labels.to_list(),
            created_by: created_by.to_owned(),
            created_at: now.millis(),
            expires_at: now.plus(new.expires_in.unwrap_or(DEFAULT_JOIN_TTL)).millis(),
            used_at: None,
            used_by: None,
        };
        let stored = row.clone();
        self.db.write(move |conn| repo::insert_join_token(conn, &stored)).await?;
        let command = join_command(primary_url, &token);
        Ok(IssuedJoinToken { join_token: JoinToken::of(row, now), token, command })
    }

    /// Every join token kept (newest first); used and expired ones for a week after expiry.
    pub async fn join_tokens(&self) -> AppResult<Vec<JoinToken>> {
        let now = self.now();
        let rows = self.db.run(repo::join_tokens).await?;
        Ok(rows.into_iter().map(|r| JoinToken::of(r, now)).collect())
    }

    /// Revokes (removes) a join token; what it was, for the audit log.
    pub async fn revoke_join_token(&self, id: &str) -> AppResult<JoinToken> {
        let now = self.now();
        let id = id.to_owned();
        let row = self
            .db
            .write(move |conn| {
                let row = repo::join_token(conn, &id)?;
                if row.is_some() {
                    repo::delete_join_token(conn, &id)?;
                }
                Ok(row)
            })
            .await?;
        let row = row.ok_or_else(|| AppError::NotFound("no such join token".into()))?;
        Ok(JoinToken::of(row, now))
    }

    /// Removes the records of join tokens that expired over a week ago.
    pub async fn prune_join_tokens(&self) -> AppResult<usize> {
        let before = self.now().minus(KEEP_AFTER_EXPIRY).millis();
        Ok(self.db.write(move |conn| repo::prune_join_tokens(conn, before)).await?)
    }

    /// Registration with a join token (`X-Join-Token`): the node is created and the token
    /// spent in one transaction. The token's name and labels, when set, win over the node's.
    /// The same node registering again with its spent token (its answer was lost) is told it
    /// is registered; anyone else is refused (401), as for an expired or unknown token.
    pub async fn join(&self, token: &str, mut new: NewNode) -> AppResult<(Node, Registered, String)> {
        if !token.starts_with(JOIN_TOKEN_PREFIX) || token.len() > 200 {
            return Err(AppError::Unauthorized("malformed join token".into()));
        }
        let (id, key) = super::access::id_and_key(&new)?;
        if id == self.primary_id {
            return Err(AppError::Conflict("that ID is the primary's own".into()));
        }
        let hash = KeyHash::of(token).as_bytes().to_vec();
        let now = self.now();
        let row = self.db.run(move |conn| repo::join_token_by_hash(conn, &hash)).await?;
        let row = row.ok_or_else(|| {
            AppError::Unauthorized(
                "unknown join token (never issued, or revoked): create a new one on the primary".into(),
            )
        })?;
        if let Some(name) = &row.name {
            new.name = NodeName::from_db(name.clone());
        }
        let labels = Labels::from_db(&row.labels);
        if !labels.as_slice().is_empty() {
            new.labels = labels;
        }
        let token_id = row.id.clone();
        let spent_by_this_node = row.used_by.as_deref() == Some(id.as_str());
        if row.used_at.is_some() && !spent_by_this_node {
            return Err(AppError::Unauthorized(
                "this join token was already used by another node: create a new one on the primary".into(),
            ));
        }
        if row.used_at.is_none() && now.millis() >= row.expires_at {
            return Err(AppError::Unauthorized(format!(
                "this join token expired at {}: create a new one on the primary",
                Timestamp(row.expires_at)
            )));
        }
        let fresh = self.new_row(&id, &new.name, &new.api_endpoint, &key, &new.labels, now);
        let origin = self.own_id.clone();
        let spend_id = token_id.clone();
        let (row, outcome) = self
            .db
            .transaction(move |conn| {
                let found = super::access::insert_or_confirm(conn, &fresh, &key, &new, now, &origin)?;
                // Only one registration spends the token, whoever commits first; a spent
                // token never creates a node again (its node was removed since).
                let spent_now = repo::spend_join_token(conn, &spend_id, &id, now)? == 1;
                let confirmed = spent_by_this_node && found.1 == Registered::AlreadyRegistered;
                if !(spent_now || confirmed) {
                    return Err(AppError::Unauthorized(
                        "this join token was already used: create a new one on the primary".into(),
                    ));
                }
                Ok(found)
            })
            .await?;
        self.cache.put_row(&row);
        let node = row.to_node();
        tracing::info!(node_id = %node.id, name = %node.name, ?outcome, join_token = %token_id, "node joined with a join token");
        if outcome == Registered::Created {
            self.events.publish(Event::NodeUpdated { node_id: node.id.clone() });
        }
        Ok((node, outcome, token_id))
    }
}
