//! Node queries: plain synchronous functions over one connection, run through `Db`.

use diesel::prelude::*;

use crate::clock::Timestamp;
use crate::db::schema::{join_tokens, node_stats, node_status_history, nodes};
use crate::db::{DbConnection, label_patterns, like_escape, lower};
use crate::nodes::health::Health;
use crate::nodes::{Labels, Node, NodeId, NodeName, NodeStatus, NodeUrl, StatusChange};
use crate::protocol::Connect;

/// A full `nodes` row, key material included. Never leaves the domain.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = nodes, treat_none_as_null = true)]
pub struct NodeRow {
    pub id: String,
    pub name: String,
    pub api_endpoint: String,
    pub is_primary: bool,
    pub status: String,
    pub labels: String,
    pub api_key_hash: Vec<u8>,
    pub api_key_sealed: Vec<u8>,
    pub previous_key_hash: Option<Vec<u8>>,
    pub previous_key_sealed: Option<Vec<u8>>,
    pub previous_key_expires_at: Option<i64>,
    pub consecutive_failures: i32,
    pub last_seen: Option<i64>,
    pub last_health_check: Option<i64>,
    pub last_error: Option<String>,
    pub version: Option<String>,
    pub max_jobs: i32,
    pub last_stats: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `inbound` or `outbound` ([`Connect`]), as the node's heartbeats say.
    pub connect: String,
    /// The primary holding an outbound node's socket now.
    pub connected_via: Option<String>,
}

impl NodeRow {
    pub fn status(&self) -> NodeStatus {
        NodeStatus::parse(&self.status).unwrap_or(NodeStatus::Pending)
    }

    pub fn health(&self) -> Health {
        Health { status: self.status(), failures: u32::try_from(self.consecutive_failures).unwrap_or(0) }
    }

    pub fn to_node(&self) -> Node {
        Node {
            id: NodeId::from_db(self.id.clone()),
            name: NodeName::from_db(self.name.clone()),
            api_endpoint: NodeUrl::from_db(self.api_endpoint.clone()),
            is_primary: self.is_primary,
            status: self.status(),
            labels: Labels::from_db(&self.labels),
            consecutive_failures: self.health().failures,
            last_seen: self.last_seen.map(Timestamp),
            last_health_check: self.last_health_check.map(Timestamp),
            last_error: self.last_error.clone(),
            version: self.version.clone(),
            max_jobs: u32::try_from(self.max_jobs).unwrap_or(1),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            connect: Connect::from_db(&self.connect),
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &NodeRow) -> QueryResult<()> {
    diesel::insert_into(nodes::table).values(row).execute(conn).map(drop)
}

/// Replaces every column of an existing row.
pub fn replace(conn: &mut DbConnection, row: &NodeRow) -> QueryResult<usize> {
    diesel::update(nodes::table.find(&row.id)).set(row).execute(conn)
}

pub fn find(conn: &mut DbConnection, id: &NodeId) -> QueryResult<Option<NodeRow>> {
    nodes::table.find(id.as_str()).select(NodeRow::as_select()).first(conn).optional()
}

/// The node with this name, whatever its case (names are unique without regard to case:
/// "DB-01" beside "db-01" would be two names for one thing to a person).
pub fn find_by_name(conn: &mut DbConnection, name: &NodeName) -> QueryResult<Option<NodeRow>> {
    nodes::table
        .filter(lower(nodes::name).eq(name.as_str().to_ascii_lowercase()))
        .select(NodeRow::as_select())
        .first(conn)
        .optional()
}

pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<NodeRow>> {
    nodes::table.select(NodeRow::as_select()).load(conn)
}

/// The nodes added at `since` or later (for alerts).
pub fn added_since(conn: &mut DbConnection, since: Timestamp) -> QueryResult<Vec<NodeRow>> {
    nodes::table.filter(nodes::created_at.ge(since.0)).select(NodeRow::as_select()).load(conn)
}

/// Filters and keyset pagination (by name) of the node list.
#[derive(Debug, Clone, Default)]
pub struct NodeFilter {
    pub status: Option<NodeStatus>,
    pub label: Option<String>,
    pub text: Option<String>,
    pub after_name: Option<String>,
    pub limit: i64,
}

pub fn list(conn: &mut DbConnection, filter: &NodeFilter) -> QueryResult<Vec<NodeRow>> {
    let mut query = nodes::table.select(NodeRow::as_select()).order(nodes::name.asc()).into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(nodes::status.eq(status.as_str()));
    }
    if let Some(label) = &filter.label {
        let [first, last, middle] = label_patterns(label);
        query = query.filter(
            nodes::labels
                .eq(label.clone())
                .or(nodes::labels.like(first).escape('\\'))
                .or(nodes::labels.like(last).escape('\\'))
                .or(nodes::labels.like(middle).escape('\\')),
        );
    }
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", like_escape(&text.to_lowercase()));
        query = query.filter(
            lower(nodes::name)
                .like(pattern.clone())
                .escape('\\')
                .or(lower(nodes::api_endpoint).like(pattern).escape('\\')),
        );
    }
    if let Some(after) = &filter.after_name {
        query = query.filter(nodes::name.gt(after.clone()));
    }
    query.limit(filter.limit).load(conn)
}

/// What an operator may change.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = nodes)]
pub struct NodeChanges {
    pub name: Option<String>,
    pub api_endpoint: Option<String>,
    pub labels: Option<String>,
    pub updated_at: i64,
}

pub fn update(conn: &mut DbConnection, id: &NodeId, changes: &NodeChanges) -> QueryResult<usize> {
    diesel::update(nodes::table.find(id.as_str())).set(changes).execute(conn)
}

pub fn delete(conn: &mut DbConnection, id: &NodeId) -> QueryResult<usize> {
    diesel::delete(nodes::table.find(id.as_str())).execute(conn)
}

/// New key material; the previous key stays valid until `previous_expires_at`.
pub struct KeyRotation {
    pub hash: Vec<u8>,
    pub sealed: Vec<u8>,
    pub previous_hash: Vec<u8>,
    pub previous_sealed: Vec<u8>,
    pub previous_expires_at: Timestamp,
}

pub fn rotate_key(
    conn: &mut DbConnection,
    id: &NodeId,
    r: KeyRotation,
    now: Timestamp,
) -> QueryResult<usize> {
    diesel::update(nodes::table.find(id.as_str()))
        .set((
            nodes::api_key_hash.eq(r.hash),
            nodes::api_key_sealed.eq(r.sealed),
            nodes::previous_key_hash.eq(Some(r.previous_hash)),
            nodes::previous_key_sealed.eq(Some(r.previous_sealed)),
            nodes::previous_key_expires_at.eq(Some(r.previous_expires_at.0)),
            nodes::updated_at.eq(now.0),
        ))
        .execute(conn)
}

pub fn record_transition(conn: &mut DbConnection, change: &StatusChange) -> QueryResult<()> {
    diesel::insert_into(node_status_history::table)
        .values((
            node_status_history::id.eq(&change.id),
            node_status_history::node_id.eq(change.node_id.as_str()),
            node_status_history::from_status.eq(change.from.as_str()),
            node_status_history::to_status.eq(change.to.as_str()),
            node_status_history::reason.eq(&change.reason),
            node_status_history::at.eq(change.at.0),
        ))
        .execute(conn)
        .map(drop)
}

/// Status transitions, newest first: one node's, or (with `None`) the whole fleet's.
/// `before` is the `id` of the last item of the previous page.
pub fn history(
    conn: &mut DbConnection,
    node: Option<&NodeId>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<StatusChange>> {
    let mut query = node_status_history::table.order(node_status_history::id.desc()).into_boxed();
    if let Some(node) = node {
        query = query.filter(node_status_history::node_id.eq(node.as_str().to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(node_status_history::id.lt(before.to_owned()));
    }
    let rows: Vec<(String, String, String, String, String, i64)> = query
        .select((
            node_status_history::id,
            node_status_history::node_id,
            node_status_history::from_status,
            node_status_history::to_status,
            node_status_history::reason,
            node_status_history::at,
        ))
        .limit(limit)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, node_id, from, to, reason, at)| StatusChange {
            id,
            node_id: NodeId::from_db(node_id),
            from: NodeStatus::parse(&from).unwrap_or(NodeStatus::Pending),
            to: NodeStatus::parse(&to).unwrap_or(NodeStatus::Pending),
            reason,
            at: Timestamp(at),
        })
        .collect())
}

/// The result of one health probe, to be stored.
#[derive(Debug, Clone)]
pub struct ProbeRecord {
    pub id: NodeId,
    /// The failure count the probe started from: the write is skipped if a heartbeat (or
    /// another primary) changed it meanwhile, since that news is fresher.
    pub expected_failures: u32,
    pub health: Health,
    pub at: Timestamp,
    pub error: Option<String>,
    pub stats: Option<String>,
}

/// Stores a probe result; `true` when it applied.
pub fn store_probe(conn: &mut DbConnection, p: &ProbeRecord) -> QueryResult<bool> {
    let target = nodes::table
        .find(p.id.as_str())
        .filter(nodes::consecutive_failures.eq(i32::try_from(p.expected_failures).unwrap_or(i32::MAX)));
    let failures = i32::try_from(p.health.failures).unwrap_or(i32::MAX);
    let n = if p.error.is_none() {
        diesel::update(target)
            .set((
                nodes::status.eq(p.health.status.as_str()),
                nodes::consecutive_failures.eq(failures),
                nodes::last_health_check.eq(Some(p.at.0)),
                nodes::last_seen.eq(Some(p.at.0)),
                nodes::last_error.eq(None::<String>),
                nodes::last_stats.eq(p.stats.clone()),
            ))
            .execute(conn)?
    } else {
        diesel::update(target)
            .set((
                nodes::status.eq(p.health.status.as_str()),
                nodes::consecutive_failures.eq(failures),
                nodes::last_health_check.eq(Some(p.at.0)),
                nodes::last_error.eq(p.error.clone()),
            ))
            .execute(conn)?
    };
    Ok(n == 1)
}

/// A heartbeat's news for the coalesced write (status changes are written at once by
/// `mark_online`).
#[derive(Debug, Clone)]
pub struct HeartbeatRecord {
    pub id: NodeId,
    pub at: Timestamp,
    pub version: String,
    pub max_jobs: i32,
    /// The stats as JSON, when they are due to be kept; `None` leaves the stored ones.
    pub stats: Option<String>,
}

/// Sets a node online with no failures and the given labels. `last_error` stays: a node
/// that heartbeats but cannot be probed shows why. Returns its status before and its name,
/// or `None` if there is no such node.
pub fn mark_online(
    conn: &mut DbConnection,
    id: &NodeId,
    labels: &Labels,
    connect: Connect,
    at: Timestamp,
) -> QueryResult<Option<(NodeStatus, String)>> {
    let before: Option<(String, String)> =
        nodes::table.find(id.as_str()).select((nodes::status, nodes::name)).first(conn).optional()?;
    if before.is_some() {
        diesel::update(nodes::table.find(id.as_str()))
            .set((
                nodes::status.eq(NodeStatus::Online.as_str()),
                nodes::consecutive_failures.eq(0),
                nodes::last_seen.eq(Some(at.0)),
                nodes::labels.eq(labels.to_list()),
                nodes::connect.eq(connect.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(before.map(|(s, name)| (NodeStatus::parse(&s).unwrap_or(NodeStatus::Pending), name)))
}

/// Records which primary holds an outbound node's socket (`None`: none); `false` if the
/// node does not exist. Closing only clears the holder it names (a newer socket elsewhere
/// may have taken over).
pub fn set_connected_via(
    conn: &mut DbConnection,
    id: &NodeId,
    via: Option<&NodeId>,
    closing: Option<&NodeId>,
) -> QueryResult<bool> {
    let target = nodes::table.find(id.as_str());
    let updated = match closing {
        Some(holder) => diesel::update(target.filter(nodes::connected_via.eq(holder.as_str())))
            .set(nodes::connected_via.eq(via.map(NodeId::as_str)))
            .execute(conn)?,
        None => diesel::update(target).set(nodes::connected_via.eq(via.map(NodeId::as_str))).execute(conn)?,
    };
    Ok(updated == 1)
}

/// Forgets every socket `primary` held (it is starting: it holds none).
pub fn clear_connected_via(conn: &mut DbConnection, primary: &NodeId) -> QueryResult<Vec<String>> {
    diesel::update(nodes::table.filter(nodes::connected_via.eq(primary.as_str())))
        .set(nodes::connected_via.eq(None::<String>))
        .returning(nodes::id)
        .get_results(conn)
}

/// Writes what a batch of heartbeats reported: last seen, version, capacity, the stats due
/// to be kept, and the samples for the charts (only for nodes that still exist).
pub fn touch_heartbeats(
    conn: &mut DbConnection,
    records: &[HeartbeatRecord],
    samples: &[StatsSample],
) -> QueryResult<()> {
    for batch in records.chunks(SEEN_BATCH) {
        // One `UPDATE … FROM (VALUES …)` locks its rows in the order the planner's join
        // yields them; PostgreSQL takes them first in ID order, the order of every other
        // write of many nodes (the health sweep), so that two never wait on each other.
        if let DbConnection::Postgres(pg) = conn {
            nodes::table
                .select(nodes::id)
                .filter(nodes::id.eq_any(batch.iter().map(|h| h.id.as_str())))
                .order(nodes::id)
                .for_update()
                .load::<String>(pg)?;
        }
        SeenBatch(batch).execute(conn)?;
    }
    let mut present = std::collections::HashSet::new();
    for h in records {
        let Some(stats) = &h.stats else { continue };
        let updated = diesel::update(nodes::table.find(h.id.as_str()))
            .set(nodes::last_stats.eq(Some(stats.as_str())))
            .execute(conn)?;
        if updated == 1 {
            present.insert(h.id.as_str());
        }
    }
    for sample in samples.iter().filter(|s| present.contains(s.node_id.as_str())) {
        diesel::insert_into(node_stats::table).values(sample).execute(conn)?;
    }
    Ok(())
}

/// Nodes per batched last-seen `UPDATE` (four binds each: far under every backend's limit).
const SEEN_BATCH: usize = 256;

/// Last seen, version and capacity of many nodes in one
/// `UPDATE nodes … FROM (VALUES …)`. Diesel prepares every `UPDATE` it builds afresh, which
/// one statement per node would pay thousands of times a second in a large fleet.
#[derive(Debug)]
struct SeenBatch<'a>(&'a [HeartbeatRecord]);

impl diesel::query_builder::QueryId for SeenBatch<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for SeenBatch<'_>
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Integer, Text};
        // Its text depends on the batch's length: not one for the statement cache.
        out.unsafe_to_cache_prepared();
        out.push_sql(
            "UPDATE nodes SET last_seen = v.column2, version = v.column3, max_jobs = v.column4 FROM (VALUES ",
        );
        for (i, h) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, str>(h.id.as_str())?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, i64>(&h.at.0)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(h.version.as_str())?;
            out.push_sql(", ");
            out.push_bind_param::<Integer, i32>(&h.max_jobs)?;
            out.push_sql(")");
        }
        out.push_sql(") AS v WHERE nodes.id = v.column1");
        Ok(())
    }
}

impl RunQueryDsl<DbConnection> for SeenBatch<'_> {}

/// One stats sample for the charts.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = node_stats)]
pub struct StatsSample {
    pub node_id: String,
    pub at: i64,
    pub cpu_percent: f64,
    pub load_one: f64,
    pub memory_used: i64,
    pub memory_total: i64,
    pub disk_used: i64,
    pub disk_total: i64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub disk_read: f64,
    pub disk_write: f64,
    pub temperature: Option<f64>,
}

impl StatsSample {
    /// The chart sample of one snapshot.
    pub fn of(id: &NodeId, at: Timestamp, stats: &crate::stats::SystemStats) -> StatsSample {
        let (disk_used, disk_total) = stats.data_disk();
        let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        StatsSample {
            node_id: id.to_string(),
            at: at.0,
            cpu_percent: stats.cpu_usage_percent,
            load_one: stats.load_average.one,
            memory_used: bytes(stats.memory.used_bytes),
            memory_total: bytes(stats.memory.total_bytes),
            disk_used: bytes(disk_used),
            disk_total: bytes(disk_total),
            net_rx: stats.network.rx_bytes_per_sec,
            net_tx: stats.network.tx_bytes_per_sec,
            disk_read: stats.disk_io.read_bytes_per_sec,
            disk_write: stats.disk_io.write_bytes_per_sec,
            temperature: stats.hottest(),
        }
    }
}

pub fn prune_samples(conn: &mut DbConnection, before: Timestamp) -> QueryResult<usize> {
    diesel::delete(node_stats::table.filter(node_stats::at.lt(before.0))).execute(conn)
}

/// One node's stats samples from `since` on, oldest first, at most `limit`.
pub fn samples_since(
    conn: &mut DbConnection,
    id: &NodeId,
    since: Timestamp,
    limit: i64,
) -> QueryResult<Vec<StatsSample>> {
    node_stats::table
        .filter(node_stats::node_id.eq(id.as_str()))
        .filter(node_stats::at.ge(since.0))
        .order(node_stats::at.asc())
        .select(StatsSample::as_select())
        .limit(limit)
        .load(conn)
}

/// A `join_tokens` row: the token itself is kept only as its SHA-256.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = join_tokens)]
pub struct JoinTokenRow {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub name: Option<String>,
    pub labels: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
}

pub fn insert_join_token(conn: &mut DbConnection, row: &JoinTokenRow) -> QueryResult<()> {
    diesel::insert_into(join_tokens::table).values(row).execute(conn).map(drop)
}

/// Every join token, newest first.
pub fn join_tokens(conn: &mut DbConnection) -> QueryResult<Vec<JoinTokenRow>> {
    join_tokens::table
        .order((join_tokens::created_at.desc(), join_tokens::id.desc()))
        .select(JoinTokenRow::as_select())
        .load(conn)
}

pub fn join_token(conn: &mut DbConnection, id: &str) -> QueryResult<Option<JoinTokenRow>> {
    join_tokens::table.find(id).select(JoinTokenRow::as_select()).first(conn).optional()
}

pub fn join_token_by_hash(conn: &mut DbConnection, hash: &[u8]) -> QueryResult<Option<JoinTokenRow>> {
    join_tokens::table
        .filter(join_tokens::token_hash.eq(hash))
        .select(JoinTokenRow::as_select())
        .first(conn)
        .optional()
}

/// Marks a join token used by `node`, unless it is used already: 1 if this call spent it.
pub fn spend_join_token(
    conn: &mut DbConnection,
    id: &str,
    node: &NodeId,
    now: Timestamp,
) -> QueryResult<usize> {
    diesel::update(join_tokens::table.find(id).filter(join_tokens::used_at.is_null()))
        .set((join_tokens::used_at.eq(now.0), join_tokens::used_by.eq(node.as_str())))
        .execute(conn)
}

pub fn delete_join_token(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(join_tokens::table.find(id)).execute(conn)
}

/// Removes the join tokens that expired before `before`.
pub fn prune_join_tokens(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(join_tokens::table.filter(join_tokens::expires_at.lt(before))).execute(conn)
}
