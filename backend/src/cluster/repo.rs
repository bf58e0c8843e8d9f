//! The cluster's queries: the shared `cluster` row, each primary's row, the leader's lease
//! (read and locked with the database's time) and the change log. Times written here are
//! the database's, never a primary's.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::cluster::lease::{Fence, Lease};
use crate::db::DbConnection;
use crate::db::schema::{change_log, cluster, leader_lease, primaries};

/// The database's time now, in Unix ms, as SQL of the connection's backend.
fn now_sql(conn: &DbConnection) -> &'static str {
    match conn {
        DbConnection::Postgres(_) => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        DbConnection::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = BigInt)]
    now: i64,
}

/// The database's time now (Unix ms).
pub fn db_now(conn: &mut DbConnection) -> QueryResult<i64> {
    let sql = format!("SELECT {} AS now", now_sql(conn));
    diesel::sql_query(sql).get_result::<Now>(conn).map(|n| n.now)
}

#[derive(QueryableByName)]
struct LeaseAt {
    #[diesel(sql_type = Nullable<Text>)]
    holder: Option<String>,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    since: i64,
    #[diesel(sql_type = BigInt)]
    expires_at: i64,
    #[diesel(sql_type = BigInt)]
    now: i64,
}

/// The lease and the database's time, the row locked until the transaction ends (on
/// SQLite the one writer already serializes every write).
pub fn lock_lease(conn: &mut DbConnection) -> QueryResult<(Lease, i64)> {
    let lock = if matches!(conn, DbConnection::Postgres(_)) { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT holder, epoch, since, expires_at, {} AS now FROM leader_lease WHERE id = 1{lock}",
        now_sql(conn)
    );
    let row = diesel::sql_query(sql).get_result::<LeaseAt>(conn)?;
    Ok((
        Lease { holder: row.holder, epoch: row.epoch, since: row.since, expires_at: row.expires_at },
        row.now,
    ))
}

/// The lease as it is (no lock).
pub fn lease(conn: &mut DbConnection) -> QueryResult<Lease> {
    let (holder, epoch, since, expires_at) = leader_lease::table
        .find(1)
        .select((leader_lease::holder, leader_lease::epoch, leader_lease::since, leader_lease::expires_at))
        .first::<(Option<String>, i64, i64, i64)>(conn)?;
    Ok(Lease { holder, epoch, since, expires_at })
}

pub fn write_lease(conn: &mut DbConnection, lease: &Lease) -> QueryResult<()> {
    diesel::update(leader_lease::table.find(1))
        .set((
            leader_lease::holder.eq(&lease.holder),
            leader_lease::epoch.eq(lease.epoch),
            leader_lease::since.eq(lease.since),
            leader_lease::expires_at.eq(lease.expires_at),
        ))
        .execute(conn)
        .map(drop)
}

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    one: i64,
}

/// Whether `fence`'s term is still the lease's, unexpired. On PostgreSQL the row stays
/// share-locked until the transaction ends, so no take-over can slip in before it commits.
pub fn fence_holds(conn: &mut DbConnection, fence: &Fence) -> QueryResult<bool> {
    let lock = if matches!(conn, DbConnection::Postgres(_)) { " FOR SHARE" } else { "" };
    let sql = format!(
        "SELECT CAST(1 AS BIGINT) AS one FROM leader_lease WHERE id = 1 AND holder = $1 AND epoch = $2 \
         AND expires_at > {}{lock}",
        now_sql(conn)
    );
    let sql = match conn {
        DbConnection::Postgres(_) => sql,
        DbConnection::Sqlite(_) => sql.replace("$1", "?").replace("$2", "?"),
    };
    let rows = diesel::sql_query(sql)
        .bind::<Text, _>(&fence.holder)
        .bind::<BigInt, _>(fence.epoch)
        .load::<One>(conn)?;
    Ok(!rows.is_empty())
}

/// The shared row: the ID nodes know the primaries by, and the master key's check value.
#[derive(Debug, Clone, Queryable)]
pub struct ClusterRow {
    pub primary_node_id: String,
    pub key_check: Option<Vec<u8>>,
}

pub fn cluster_row(conn: &mut DbConnection) -> QueryResult<Option<ClusterRow>> {
    cluster::table
        .find(1)
        .select((cluster::primary_node_id, cluster::key_check))
        .first::<ClusterRow>(conn)
        .optional()
}

/// Creates the shared row unless it exists: of primaries starting at the same instant, the
/// first to commit wins and the others keep its row.
pub fn create_cluster_row(
    conn: &mut DbConnection,
    primary_node_id: &str,
    key_check: &[u8],
    at: i64,
) -> QueryResult<()> {
    let sql = match conn {
        DbConnection::Postgres(_) => {
            "INSERT INTO cluster (id, primary_node_id, key_check, created_at) \
                                      VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING"
        }
        DbConnection::Sqlite(_) => {
            "INSERT INTO cluster (id, primary_node_id, key_check, created_at) \
                                    VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
        }
    };
    diesel::sql_query(sql)
        .bind::<Text, _>(primary_node_id)
        .bind::<diesel::sql_types::Binary, _>(key_check)
        .bind::<BigInt, _>(at)
        .execute(conn)
        .map(drop)
}

/// One node key sealed under the master key, if any node exists: what an installation from
/// before the check value can check a master key against.
pub fn any_sealed_node_key(conn: &mut DbConnection) -> QueryResult<Option<Vec<u8>>> {
    use crate::db::schema::nodes;
    nodes::table.select(nodes::api_key_sealed).first(conn).optional()
}

/// Writes the check value where there is none yet (an installation from before it).
pub fn fill_key_check(conn: &mut DbConnection, key_check: &[u8]) -> QueryResult<()> {
    diesel::update(cluster::table.find(1).filter(cluster::key_check.is_null()))
        .set(cluster::key_check.eq(key_check))
        .execute(conn)
        .map(drop)
}

/// One primary's row.
#[derive(Debug, Clone, Queryable)]
pub struct PrimaryRow {
    pub id: String,
    pub name: String,
    pub url: String,
    pub started_at: i64,
    pub last_seen: i64,
}

/// Writes this primary's row at its start (a restart replaces it).
pub fn start_primary(conn: &mut DbConnection, id: &str, name: &str, url: &str) -> QueryResult<()> {
    let now = db_now(conn)?;
    diesel::delete(primaries::table.find(id)).execute(conn)?;
    diesel::insert_into(primaries::table)
        .values((
            primaries::id.eq(id),
            primaries::name.eq(name),
            primaries::url.eq(url),
            primaries::started_at.eq(now),
            primaries::last_seen.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// This primary is alive at database time `now`.
pub fn touch_primary(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<()> {
    diesel::update(primaries::table.find(id)).set(primaries::last_seen.eq(now)).execute(conn).map(drop)
}

/// When primary `id` was last seen (database time), if it has a row.
pub fn primary_last_seen(conn: &mut DbConnection, id: &str) -> QueryResult<Option<i64>> {
    primaries::table.find(id).select(primaries::last_seen).first(conn).optional()
}

pub fn remove_primary(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(primaries::table.find(id)).execute(conn).map(drop)
}

/// Removes the rows of primaries not seen since `before` (database time).
pub fn prune_primaries(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(primaries::table.filter(primaries::last_seen.lt(before))).execute(conn)
}

pub fn all_primaries(conn: &mut DbConnection) -> QueryResult<Vec<PrimaryRow>> {
    primaries::table
        .select((primaries::id, primaries::name, primaries::url, primaries::started_at, primaries::last_seen))
        .order(primaries::started_at.asc())
        .load(conn)
}

/// One entry of the change log.
#[derive(Debug, Clone, Queryable)]
pub struct ChangeRow {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub origin: String,
    pub at: i64,
}

/// Appends to the change log at the database's time; returns the entry's ID.
pub fn append_change(conn: &mut DbConnection, kind: &str, subject: &str, origin: &str) -> QueryResult<i64> {
    let now = db_now(conn)?;
    diesel::insert_into(change_log::table)
        .values((
            change_log::kind.eq(kind),
            change_log::subject.eq(subject),
            change_log::origin.eq(origin),
            change_log::at.eq(now),
        ))
        .returning(change_log::id)
        .get_result(conn)
}

/// The entries written at or after `since` (database time), oldest first.
pub fn changes_since(conn: &mut DbConnection, since: i64) -> QueryResult<Vec<ChangeRow>> {
    change_log::table
        .filter(change_log::at.ge(since))
        .select((change_log::id, change_log::kind, change_log::subject, change_log::origin, change_log::at))
        .order(change_log::id.asc())
        .load(conn)
}

pub fn prune_changes(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(change_log::table.filter(change_log::at.lt(before))).execute(conn)
}

/// `SELECT pg_notify(channel, payload)`: delivered to every listener when the
/// transaction commits (PostgreSQL only).
pub fn notify(conn: &mut PgConnection, channel: &str, payloads: &[String]) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_notify($1, p) FROM unnest($2) AS p")
        .bind::<Text, _>(channel)
        .bind::<diesel::sql_types::Array<Text>, _>(payloads)
        .execute(conn)
        .map(drop)
}
