//! The audit log: who did what to which target, when and from where. Written for every
//! administrative action; read through `GET /api/audit`.

use std::net::IpAddr;

use diesel::prelude::*;
use serde::Serialize;

use crate::clock::{SharedClock, Timestamp};
use crate::db::schema::audit_log;
use crate::db::{Db, DbConnection};
use crate::error::AppResult;

/// What was done. Stored and sent as its snake_case name (`node_added`); the UI's filter
/// lists every variant (its TypeScript type is generated from this enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum AuditAction {
    NodeAdded,
    NodeUpdated,
    NodeRemoved,
    NodeChecked,
    NodeKeyRotated,
    NodeRegistered,
    JobSubmitted,
    JobCancelled,
    RunSubmitted,
    RunCancelled,
    Login,
    LoginRefused,
    LoginFailed,
    Logout,
    TokenCreated,
    TokenRevoked,
    JoinTokenCreated,
    JoinTokenRevoked,
    /// A primary took the leadership (several primaries on one database).
    LeaderElected,
    AlertChannelAdded,
    AlertChannelUpdated,
    AlertChannelRemoved,
    AlertChannelTested,
    AlertRuleAdded,
    AlertRuleUpdated,
    AlertRuleRemoved,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::NodeAdded => "node_added",
            AuditAction::NodeUpdated => "node_updated",
            AuditAction::NodeRemoved => "node_removed",
            AuditAction::NodeChecked => "node_checked",
            AuditAction::NodeKeyRotated => "node_key_rotated",
            AuditAction::NodeRegistered => "node_registered",
            AuditAction::JobSubmitted => "job_submitted",
            AuditAction::JobCancelled => "job_cancelled",
            AuditAction::RunSubmitted => "run_submitted",
            AuditAction::RunCancelled => "run_cancelled",
            AuditAction::Login => "login",
            AuditAction::LoginRefused => "login_refused",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Logout => "logout",
            AuditAction::TokenCreated => "token_created",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::JoinTokenCreated => "join_token_created",
            AuditAction::JoinTokenRevoked => "join_token_revoked",
            AuditAction::LeaderElected => "leader_elected",
            AuditAction::AlertChannelAdded => "alert_channel_added",
            AuditAction::AlertChannelUpdated => "alert_channel_updated",
            AuditAction::AlertChannelRemoved => "alert_channel_removed",
            AuditAction::AlertChannelTested => "alert_channel_tested",
            AuditAction::AlertRuleAdded => "alert_rule_added",
            AuditAction::AlertRuleUpdated => "alert_rule_updated",
            AuditAction::AlertRuleRemoved => "alert_rule_removed",
        }
    }
}

/// One audit row.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, Insertable, utoipa::ToSchema)]
#[diesel(table_name = audit_log)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AuditEntry {
    pub id: String,
    #[serde(serialize_with = "as_timestamp")]
    #[cfg_attr(test, ts(type = "string"))]
    #[schema(value_type = Timestamp)]
    pub at: i64,
    pub actor: String,
    /// An `AuditAction`'s name.
    #[cfg_attr(test, ts(as = "AuditAction"))]
    #[schema(value_type = AuditAction)]
    pub action: String,
    pub target: Option<String>,
    pub source_ip: Option<String>,
    pub details: Option<String>,
    /// The target's name when the row was written (a node's, a job's or run's name), kept
    /// after the target is renamed or removed.
    pub target_name: Option<String>,
}

fn as_timestamp<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    Timestamp(*ms).serialize(s)
}

/// Filters and keyset pagination (newest first) of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub target: Option<String>,
    /// The `id` of the last entry of the previous page.
    pub before: Option<String>,
    pub limit: i64,
}

/// Writes and reads the audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    db: Db,
    clock: SharedClock,
}

impl AuditLog {
    pub fn new(db: Db, clock: SharedClock) -> AuditLog {
        AuditLog { db, clock }
    }

    /// Records an action. A failure to write is logged, not returned: the action itself
    /// already happened.
    pub async fn record(
        &self,
        actor: &str,
        action: AuditAction,
        target: Option<&str>,
        source: Option<IpAddr>,
        details: Option<String>,
    ) {
        self.record_named(actor, action, target.map(|id| (id, None)), source, details).await;
    }

    /// Records an action on a target that has a name: `(its ID, its name now)`.
    pub async fn record_named(
        &self,
        actor: &str,
        action: AuditAction,
        target: Option<(&str, Option<&str>)>,
        source: Option<IpAddr>,
        details: Option<String>,
    ) {
        let entry = AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.clock.now().millis(),
            actor: actor.to_owned(),
            action: action.as_str().to_owned(),
            target: target.map(|(id, _)| id.to_owned()),
            source_ip: source.map(|ip| ip.to_string()),
            details,
            target_name: target.and_then(|(_, name)| name).map(str::to_owned),
        };
        let target = target.map(|(id, _)| id);
        tracing::info!(actor, action = action.as_str(), target = target.unwrap_or("-"), "audit");
        if let Err(e) = self.db.write(move |conn| insert(conn, &entry)).await {
            tracing::error!(error = %e, "writing the audit log failed");
        }
    }

    pub async fn list(&self, filter: AuditFilter) -> AppResult<Vec<AuditEntry>> {
        Ok(self.db.run(move |conn| list(conn, &filter)).await?)
    }
}

fn insert(conn: &mut DbConnection, entry: &AuditEntry) -> QueryResult<()> {
    diesel::insert_into(audit_log::table).values(entry).execute(conn).map(drop)
}

fn list(conn: &mut DbConnection, f: &AuditFilter) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table.select(AuditEntry::as_select()).order(audit_log::id.desc()).into_boxed();
    if let Some(actor) = &f.actor {
        query = query.filter(audit_log::actor.eq(actor.clone()));
    }
    if let Some(action) = f.action {
        query = query.filter(audit_log::action.eq(action.as_str()));
    }
    if let Some(target) = &f.target {
        query = query.filter(audit_log::target.eq(target.clone()));
    }
    if let Some(before) = &f.before {
        query = query.filter(audit_log::id.lt(before.clone()));
    }
    query.limit(f.limit).load(conn)
}
